//! The control API: HTTP/JSON on a loopback address, for the CLI (and later the web UI).
//!
//! Every request carries `Authorization: Bearer <token>` with the token from `<home>/api.token`
//! (compared in constant time). Errors are `{"error": cause, "hint": fix}` with a fitting
//! status. Routes (version 1):
//! ```text
//! GET  /v1/status               this node
//! GET  /v1/peers                paired peers (online state, address, round trip, usage), nearby nodes
//! POST /v1/peers/add            {"addr"} → a static address to look for paired peers at
//! POST /v1/invite               {"valid_for_secs"?} → {"code", "expires", "valid_for_secs"}
//! POST /v1/join                 {"code"} → {"peer"}
//! POST /v1/shutdown             stop the node (requests in flight finish)
//! POST /v1/login                {"user", "password"} → unlocks the account's vault
//! POST /v1/logout               {"user"?} → locks it (every account without "user")
//! POST /v1/put                  {"paths" | "paths_hex", "as"?, "shares"?: "K/N", "move"?, "user"?} → {"job"}
//! POST /v1/get                  {"name" | "name_hex", "version"?, "at"?, "out", "force"?, "user"?} → {"job"}
//! GET  /v1/jobs/{id}            progress; once ended, the result or the error
//! GET  /v1/jobs/{id}/events     the same as server-sent events
//! POST /v1/upload?name=&shares=&user=   the body (streamed) stored as NAME → {"job", "bytes"}
//! GET  /v1/download?name=&version=&at=&user= a stored file's bytes (`at`: out of a backup
//!                               snapshot, `name=JOB/path&at=N` as `get JOB@N/path`)
//! POST /v1/download              the same from a form (name, version, at; the web UI's session
//!                               key rides in its `csrf` field, as a link cannot carry it)
//! GET  /v1/picture?name=&version=&user=  its chunks, each share's node and state
//! GET  /v1/ls?prefix=&user=     newest version of each name, versions, health
//! POST /v1/rm                   {"name" | "name_hex", "now"?, "user"?} → to the trash (or, with
//!                               now, removed for good: deleted shares)
//! GET  /v1/trash?user=          what is in the trash, by name, and how long it stays
//! POST /v1/trash/restore        {"name" | "name_hex", "user"?} → brought back
//! POST /v1/trash/empty          {"name" | "name_hex" | "all": true, "user"?} → deleted for good
//! POST /v1/recover              {"code", "password", "user"?} → the vault rebuilt from the peers
//! POST /v1/check               {"names"?, "read_fraction"?: 0..1, "user"?} → {"job"}: files by health
//! POST /v1/repair              {"names"?, "user"?} → {"job"}: missing and bad shares rebuilt
//! POST /v1/prune               {"dead_percent"?, "user"?} → {"job"}: packs with dead blobs rewritten
//! POST /v1/backup/add          {"path", "name"?, "every"?, "keep"?, "exclude"?, "shares"?, "user"?}
//!                               → the job (a web session's folder must lie under [web] node_paths)
//! GET  /v1/backup/ls?user=      jobs: folder, period, last run, next run, snapshots kept
//! POST /v1/backup/run          {"name", "user"?} → {"job"}: a run now, its report at the end
//! POST /v1/backup/rm           {"name", "forget_snapshots"?, "user"?} → what was removed
//! GET  /v1/snapshots?name=&user=   a job's snapshots, oldest first
//! GET  /v1/snapshot/ls?name=&at=&path=&offset=&limit=&user=   one folder of snapshot `at`
//!                               (number or day; default the newest): {"total", "entries"},
//!                               a page of at most 1000 (default 500) from `offset`
//! GET  /v1/diff?name=&from=&to=&user=   paths added, removed and changed between two snapshots
//! POST /v1/peers/rm            {"id", "now"?} → unpairs (after moving its shares unless now)
//! GET  /v1/accounts              accounts: name, files, unlocked, failed logins
//! POST /v1/accounts/rm          {"user", "purge"?} → removes the account (and, with purge, its files)
//! POST /v1/ui-link              {"url", "setup"}: the web UI's address; while the node has no
//!                               account, with a one-time setup token in its fragment
//! ```
//! Names and paths travel as UTF-8 strings, or hex (`*_hex`) for any other bytes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use tokio::net::TcpListener;

use shard_node::node::Node;

use crate::types::{
    AccountRemoved, AccountRmBody, Accounts, AddPeer, BackupAddBody, BackupJobs, BackupNameBody,
    BackupRmBody, DiffQuery, GetBody, HealthBody, Invitation, InviteBody, JobStarted, JoinBody,
    Joined, LoggedIn, LoggedOut, LoginBody, LsQuery, NodeStatus, PeerAdded, PeerRemoval,
    PeerRmBody, Peers, Proof, PruneBody, PutBody, RecoverBody, RmBody, SnapshotLsQuery, Snapshots,
    SnapshotsQuery, Trash, TrashBody, UiLink, UserBody, UserQuery,
};
use shard_node::Error;

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) node: Arc<Node>,
    pub(crate) token: Arc<String>,
    pub(crate) ui: Arc<crate::sessions::UiSessions>,
    /// Where the web UI answers, if it runs (for `shard ui-link`).
    pub(crate) ui_addr: Option<std::net::SocketAddr>,
    /// Downloads under way: each holds a whole file in the spool until it is sent, so only
    /// [`DOWNLOADS_AT_ONCE`] run at a time (the disk is the store's too), at most
    /// [`DOWNLOADS_PER_ACCOUNT`] of them one account's (one account's slow downloads must
    /// not keep the others from theirs).
    pub(crate) downloads: Arc<tokio::sync::Semaphore>,
    downloads_by: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// How many downloads run at once; more are refused with 503 and a hint to wait.
pub(crate) const DOWNLOADS_AT_ONCE: usize = 8;
/// How many of them one account may have.
pub(crate) const DOWNLOADS_PER_ACCOUNT: usize = 2;

/// A download's place: given back when dropped (when the last byte is sent, or the download
/// is given up).
struct DownloadPlace {
    _permit: tokio::sync::OwnedSemaphorePermit,
    user: String,
    by: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl Drop for DownloadPlace {
    fn drop(&mut self) {
        let mut by = self
            .by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = by.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                by.remove(&self.user);
            }
        }
    }
}

impl ApiState {
    /// A download place for `user`, or the 503 that says why there is none.
    fn download_place(&self, user: &str) -> Result<DownloadPlace, ApiError> {
        let busy = |why: String| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                why,
                "wait for one to finish and try again",
            )
        };
        let mut by = self
            .downloads_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = by.get(user).copied().unwrap_or(0);
        if mine >= DOWNLOADS_PER_ACCOUNT {
            return Err(busy(format!(
                "{DOWNLOADS_PER_ACCOUNT} of this account's downloads are under way already"
            )));
        }
        let permit = self.downloads.clone().try_acquire_owned().map_err(|_| {
            busy(format!(
                "{DOWNLOADS_AT_ONCE} downloads are under way already in this web UI"
            ))
        })?;
        by.insert(user.to_string(), mine + 1);
        Ok(DownloadPlace {
            _permit: permit,
            user: user.to_string(),
            by: self.downloads_by.clone(),
        })
    }
}

impl ApiState {
    pub(crate) fn new(
        node: Arc<Node>,
        token: String,
        ui: Arc<crate::sessions::UiSessions>,
        ui_addr: Option<std::net::SocketAddr>,
    ) -> Self {
        Self {
            node,
            token: Arc::new(token),
            ui,
            ui_addr,
            downloads: Arc::new(tokio::sync::Semaphore::new(DOWNLOADS_AT_ONCE)),
            downloads_by: Arc::default(),
        }
    }
}

/// The account a request acts for when it comes from a web UI session (set by [`crate::ui`]):
/// the request may name no other.
#[derive(Clone, Debug)]
pub(crate) struct Acting(pub String);

/// Whether the request comes from a web UI session (not the token-holding CLI).
fn acting_is_session(acting: &Option<Extension<Acting>>) -> bool {
    acting.is_some()
}

/// What a browser session wants to do with a path on the node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Store it (it must exist).
    Read,
    /// Restore into it (its folder must exist; it need not).
    Write,
}

/// `path` as the node's file system resolves it, if it lies under one of the folders listed in
/// `[web] node_paths`; otherwise the refusal. Symbolic links are resolved first, so a link
/// cannot lead out; a restore target that is itself a link is refused.
fn confine(
    node: &Node,
    path: &std::path::Path,
    reach: Reach,
) -> Result<std::path::PathBuf, ApiError> {
    let roots: Vec<std::path::PathBuf> = node
        .web_config()
        .node_paths
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let refused = |why: String| {
        tracing::warn!("refused a web session's path on the node: {why}");
        ApiError::new(
            StatusCode::FORBIDDEN,
            why,
            "store by upload and restore by download, or ask the node's administrator to list the folder in [web] node_paths (config.toml)",
        )
    };
    if roots.is_empty() {
        return Err(refused(
            "a web session may not reach paths on the node: no folder is open to it".into(),
        ));
    }
    let resolved = match reach {
        Reach::Read => std::fs::canonicalize(path).ok(),
        Reach::Write => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            let name = path.file_name().filter(|n| *n != "..");
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            match (
                is_link,
                name,
                parent.and_then(|p| std::fs::canonicalize(p).ok()),
            ) {
                (false, Some(name), Some(dir)) => Some(dir.join(name)),
                _ => None,
            }
        }
    };
    match resolved {
        Some(p) if roots.iter().any(|r| p.starts_with(r)) => Ok(p),
        _ => Err(refused(format!(
            "{} is not under a folder open to web sessions",
            path.display()
        ))),
    }
}

/// The account to act for: the session's (web UI), or the one the request names (CLI).
fn acting_user(
    acting: Option<Extension<Acting>>,
    requested: Option<String>,
) -> Result<Option<String>, ApiError> {
    match acting {
        None => Ok(requested),
        Some(Extension(Acting(user))) => match requested {
            Some(other) if other != user => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this session acts for another account",
                "log out and log in as that account",
            )),
            _ => Ok(Some(user)),
        },
    }
}

pub use crate::error::ApiError;

/// Serves the API on `listener` until the node shuts down.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    token: String,
    ui_addr: Option<std::net::SocketAddr>,
) {
    let state = ApiState::new(node.clone(), token, Arc::default(), ui_addr);
    let api_addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!("control API not started: {e}");
            return;
        }
    };
    let hosts = Arc::new(crate::hosts::Hosts::new(api_addr, false));
    let router = routes()
        .layer(middleware::from_fn(crate::listener::bodies_in_time))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        // The one route without the token: the server proves it holds it (see crate::proof).
        .route(
            "/v1/proof",
            get(move |state: State<ApiState>, query: Query<ProofQuery>| {
                proof(state, query, api_addr)
            }),
        )
        .layer(middleware::from_fn_with_state(hosts, crate::hosts::guard))
        .with_state(state);
    crate::listener::serve(listener, router, &node, "control API").await;
}

/// The version 1 routes, without authorization (each listener adds its own).
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/peers/add", post(peers_add))
        .route("/v1/invite", post(invite))
        .route("/v1/join", post(join))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route("/v1/put", post(put))
        .route("/v1/get", post(get_file))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/upload", post(upload))
        .route("/v1/download", get(download).post(download_form))
        .route("/v1/picture", get(picture))
        .route("/v1/ls", get(ls))
        .route("/v1/rm", post(rm))
        .route("/v1/trash", get(trash))
        .route("/v1/trash/restore", post(trash_restore))
        .route("/v1/trash/empty", post(trash_empty))
        .route("/v1/recover", post(recover))
        .route("/v1/check", post(check))
        .route("/v1/repair", post(repair))
        .route("/v1/prune", post(prune))
        .route("/v1/backup/add", post(backup_add))
        .route("/v1/backup/ls", get(backup_ls))
        .route("/v1/backup/run", post(backup_run))
        .route("/v1/backup/rm", post(backup_rm))
        .route("/v1/snapshots", get(snapshots))
        .route("/v1/snapshot/ls", get(snapshot_ls))
        .route("/v1/diff", get(diff))
        .route("/v1/peers/rm", post(peers_rm))
        .route("/v1/accounts", get(accounts))
        .route("/v1/accounts/rm", post(account_rm))
        .route("/v1/ui-link", post(ui_link))
}

async fn authorize(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if shard_crypto::ct_eq(presented.as_bytes(), state.token.as_bytes()) {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token",
            "the CLI reads the token from <home>/api.token; use the same --home as the node",
        )
        .into_response()
    }
}

#[derive(Deserialize)]
struct ProofQuery {
    nonce: String,
}

/// Answers the CLI's nonce with proof that this server holds the token.
async fn proof(
    State(state): State<ApiState>,
    Query(q): Query<ProofQuery>,
    api_addr: std::net::SocketAddr,
) -> Result<Json<Proof>, ApiError> {
    let nonce = hex::decode(&q.nonce)
        .ok()
        .and_then(|n| <[u8; crate::proof::NONCE_LEN]>::try_from(n).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "the nonce must be 32 bytes in hex",
                "the CLI sends a fresh one with every command",
            )
        })?;
    let answer = crate::proof::answer(&state.token, &nonce, api_addr);
    Ok(Json(Proof {
        proof: hex::encode(answer),
    }))
}

/// The web UI's address, with a fresh one-time setup token while the node has no account.
async fn ui_link(State(state): State<ApiState>) -> Result<Json<UiLink>, ApiError> {
    let url = match state.ui_addr {
        Some(addr) => Some(crate::sessions::link(&state.node, addr)?),
        None => None,
    };
    let setup = url.as_deref().is_some_and(|u| u.contains("#setup="));
    Ok(Json(UiLink { url, setup }))
}

async fn status(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
) -> Result<Json<NodeStatus>, ApiError> {
    let mut status = state.node.status()?;
    // A web session sees its own account's backups only (their names are its business).
    if let Some(Extension(Acting(user))) = &acting {
        status.backups.retain(|a| &a.user == user);
    }
    Ok(Json(status))
}

async fn peers(State(state): State<ApiState>) -> Json<Peers> {
    Json(Peers {
        peers: state.node.peers(),
        nearby: state.node.nearby(),
    })
}

async fn peers_add(
    State(state): State<ApiState>,
    Json(body): Json<AddPeer>,
) -> Result<Json<PeerAdded>, ApiError> {
    state.node.add_static_addr(&body.addr)?;
    Ok(Json(PeerAdded { added: body.addr }))
}

async fn invite(
    State(state): State<ApiState>,
    body: Option<Json<InviteBody>>,
) -> Result<Json<Invitation>, ApiError> {
    let ttl = body
        .and_then(|Json(b)| b.valid_for_secs)
        .map(Duration::from_secs);
    let invite = state.node.invite(ttl)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(Json(Invitation {
        code: invite.encode().as_str().to_string(),
        expires: invite.expires,
        valid_for_secs: invite.expires.saturating_sub(now),
    }))
}

async fn join(
    State(state): State<ApiState>,
    Json(body): Json<JoinBody>,
) -> Result<Json<Joined>, ApiError> {
    let peer = state.node.join(&body.code).await?;
    Ok(Json(Joined { peer }))
}

async fn shutdown(State(state): State<ApiState>) -> StatusCode {
    state.node.shutdown();
    StatusCode::ACCEPTED
}

/// A name or path given as UTF-8 or as hex.
fn bytes_of(
    text: Option<String>,
    hex_text: Option<String>,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    match (text, hex_text) {
        (Some(t), _) => Ok(t.into_bytes()),
        (None, Some(h)) => hex::decode(h).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{what}_hex is not hex"),
                "send hex digits",
            )
        }),
        (None, None) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("no {what} given"),
            "name what to act on",
        )),
    }
}

async fn login(
    State(state): State<ApiState>,
    Json(body): Json<LoginBody>,
) -> Result<Json<LoggedIn>, ApiError> {
    let passphrase = zeroize::Zeroizing::new(body.password.into_bytes());
    state.node.login_as_owner(&body.user, passphrase).await?;
    Ok(Json(LoggedIn {
        user: body.user,
        unlocked: true,
    }))
}

async fn logout(
    State(state): State<ApiState>,
    body: Option<Json<UserBody>>,
) -> Result<Json<LoggedOut>, ApiError> {
    let user = body.and_then(|Json(b)| b.user);
    if let Some(name) = &user
        && !state.node.accounts()?.iter().any(|a| &a.name == name)
    {
        return Err(Error::Store(shard_store::Error::NoSuchAccount(name.clone())).into());
    }
    let locked = state.node.logout(user.as_deref());
    Ok(Json(LoggedOut { locked }))
}

fn parse_shares(text: &str) -> Result<(u8, u8), ApiError> {
    let redundancy: shard_store::Redundancy = text.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("--shares {text:?}: {e}"),
            "for example --shares 3/5",
        )
    })?;
    Ok((redundancy.k(), redundancy.n()))
}

async fn put(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<PutBody>,
) -> Result<Json<JobStarted>, ApiError> {
    let browser = acting_is_session(&acting);
    let user = acting_user(acting, body.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let paths: Vec<std::path::PathBuf> = match (body.paths, body.paths_hex) {
        (Some(p), _) => p.into_iter().map(Into::into).collect(),
        (None, Some(h)) => h
            .into_iter()
            .map(|h| {
                hex::decode(h).map(|b| {
                    std::path::PathBuf::from(
                        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(b),
                    )
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "paths_hex is not hex",
                    "send hex digits",
                )
            })?,
        (None, None) => Vec::new(),
    };
    if paths.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no path to store",
            "name one or more files or folders",
        ));
    }
    // A browser session reads only under the folders the administrator opened to it, and
    // deletes nothing there: those folders may hold other accounts' files.
    if browser && body.move_original {
        tracing::warn!("refused a web session's --move of paths on the node");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a web session may not delete files on the node (--move)",
            "store without --move, or use the CLI on the node",
        ));
    }
    let paths = if browser {
        paths
            .iter()
            .map(|p| confine(&state.node, p, Reach::Read))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        paths
    };
    let request = shard_node::put::PutRequest {
        paths,
        name: body.name.map(String::into_bytes),
        redundancy: body.shares.as_deref().map(parse_shares).transpose()?,
        move_original: body.move_original,
    };
    let job = state.node.jobs().create_for("put", Some(&session.user));
    let (node, j) = (state.node.clone(), job.clone());
    tokio::spawn(async move {
        let result = shard_node::put::run(node.clone(), session.clone(), request, j.clone()).await;
        if result.is_ok() {
            node.catalog_changed(&session);
        }
        finish(&j, result);
    });
    Ok(Json(JobStarted {
        job: job.id,
        bytes: None,
    }))
}

async fn get_file(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<GetBody>,
) -> Result<Json<JobStarted>, ApiError> {
    let browser = acting_is_session(&acting);
    let user = acting_user(acting, body.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let out: std::path::PathBuf = body.out.into();
    // A browser session writes only under the folders the administrator opened to it, and
    // never a setuid, setgid or sticky file.
    let out = if browser {
        // Nor overwrites what is there: the folder may hold other accounts' files.
        if body.force {
            tracing::warn!("refused a web session's overwriting restore on the node");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a web session may not overwrite files on the node (force)",
                "restore to a new name, download it instead, or use the CLI on the node",
            ));
        }
        confine(&state.node, &out, Reach::Write)?
    } else {
        out
    };
    let request = shard_node::get::GetRequest {
        name: bytes_of(body.name, body.name_hex, "name")?,
        version: body.version,
        at: body.at.clone(),
        out,
        force: body.force,
        keep_special_bits: body.keep_special_bits && !browser,
    };
    let job = state.node.jobs().create_for("get", Some(&session.user));
    let (node, j) = (state.node.clone(), job.clone());
    tokio::spawn(async move {
        let result = shard_node::get::run(node, session, request, j.clone()).await;
        finish(&j, result);
    });
    Ok(Json(JobStarted {
        job: job.id,
        bytes: None,
    }))
}

/// Ends `job` with what the operation returned: its report (serialized when the job is
/// asked about, at this edge), or its error with the hint.
fn finish<T: Into<shard_node::jobs::JobResult>>(
    job: &shard_node::jobs::Job,
    result: shard_node::Result<T>,
) {
    match result {
        Ok(report) => job.finish(report),
        Err(e) => {
            let api = ApiError::from(e);
            job.fail(api.error, api.hint);
        }
    }
}

async fn job(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    UrlPath(id): UrlPath<u64>,
) -> Result<Response, ApiError> {
    // A web UI session sees only its own account's jobs.
    let mine = |job: &shard_node::jobs::Job| match &acting {
        Some(Extension(Acting(user))) => job.user.as_deref() == Some(user.as_str()),
        None => true,
    };
    match state.node.jobs().get(id).filter(|j| mine(j)) {
        Some(job) => Ok(crate::stream::json_value(job.status()).await),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no job {id}"),
            job_gone(),
        )),
    }
}

/// Why a job id may not be found.
fn job_gone() -> String {
    format!(
        "a job's result is kept for {} minutes after it ends, and until the node stops",
        shard_node::jobs::KEEP_ENDED.as_secs() / 60
    )
}

/// Streamed as it is read from the catalog (`crate::stream`): a vault of 10⁵ files is never
/// held whole, neither as a listing nor as its JSON.
async fn ls(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<LsQuery>,
) -> Result<Response, ApiError> {
    let user = acting_user(acting, q.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let node = state.node.clone();
    let prefix = q.prefix.unwrap_or_default().into_bytes();
    crate::stream::json_list("files", move |each| {
        shard_node::files::ls_each(&node, &session, &prefix, each).map(drop)
    })
    .await
}

async fn rm(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<RmBody>,
) -> Result<Json<shard_node::report::Removal>, ApiError> {
    let user = acting_user(acting, body.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let name = bytes_of(body.name, body.name_hex, "name")?;
    let how = if body.now {
        shard_node::files::Removing::Now
    } else {
        shard_node::files::Removing::ToTrash
    };
    let removed = shard_node::files::rm(&state.node, &session, &name, how).await?;
    state.node.catalog_changed(&session);
    Ok(Json(removed))
}

async fn trash(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<UserQuery>,
) -> Result<Json<Trash>, ApiError> {
    let user = acting_user(acting, q.user)?;
    Ok(Json(Trash {
        items: state.node.trash(user.as_deref())?,
        trash_days: state.node.vault_config().trash_days,
    }))
}

async fn trash_restore(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<TrashBody>,
) -> Result<Json<shard_node::report::TrashRestore>, ApiError> {
    let user = acting_user(acting, body.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let name = bytes_of(body.name, body.name_hex, "name")?;
    let restored = state.node.trash_restore(Some(&session.user), &name).await?;
    state.node.catalog_changed(&session);
    Ok(Json(restored))
}

async fn trash_empty(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<TrashBody>,
) -> Result<Json<shard_node::report::Removal>, ApiError> {
    let user = acting_user(acting, body.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let name = if body.all && body.name.is_none() && body.name_hex.is_none() {
        None
    } else {
        Some(bytes_of(body.name, body.name_hex, "name")?)
    };
    let removed = state
        .node
        .trash_empty(Some(&session.user), name.as_deref())
        .await?;
    state.node.catalog_changed(&session);
    Ok(Json(removed))
}

async fn recover(
    State(state): State<ApiState>,
    Json(body): Json<RecoverBody>,
) -> Result<Json<shard_node::report::Recovery>, ApiError> {
    let passphrase = zeroize::Zeroizing::new(body.password.into_bytes());
    let code = zeroize::Zeroizing::new(body.code);
    Ok(Json(
        shard_node::recover::recover(
            &state.node,
            &code,
            body.user.as_deref(),
            passphrase,
            body.head,
        )
        .await?,
    ))
}

async fn check(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<HealthBody>,
) -> Result<Json<JobStarted>, ApiError> {
    let user = acting_user(acting, body.user.clone())?;
    if !(0.0..=1.0).contains(&body.read_fraction) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "read_fraction {} is not between 0 and 1",
                body.read_fraction
            ),
            "give a share of the data to read, e.g. --read-data=10%",
        ));
    }
    let session = state.node.session(user.as_deref())?;
    let names = body.names.into_iter().map(String::into_bytes).collect();
    let job = state.node.jobs().create_for("check", Some(&session.user));
    let (node, j) = (state.node.clone(), job.clone());
    tokio::spawn(async move {
        let result =
            shard_node::health::check(node, session, names, body.read_fraction, j.clone()).await;
        finish(&j, result);
    });
    Ok(Json(JobStarted {
        job: job.id,
        bytes: None,
    }))
}

async fn repair(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<HealthBody>,
) -> Result<Json<JobStarted>, ApiError> {
    let user = acting_user(acting, body.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let names = body.names.into_iter().map(String::into_bytes).collect();
    let job = state.node.jobs().create_for("repair", Some(&session.user));
    let (node, j) = (state.node.clone(), job.clone());
    tokio::spawn(async move {
        let result = shard_node::health::repair(
            node.clone(),
            session.clone(),
            names,
            Default::default(),
            j.clone(),
        )
        .await;
        // Repaired shares moved: the catalog snapshot says where (and one that failed before
        // is written again).
        let result = match result {
            Ok(mut report) => {
                if let Err(e) = node.write_snapshot(&session).await {
                    report.catalog_snapshot_failure = Some(e.to_string());
                }
                Ok(report)
            }
            Err(e) => Err(e),
        };
        finish(&j, result);
    });
    Ok(Json(JobStarted {
        job: job.id,
        bytes: None,
    }))
}

async fn prune(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<PruneBody>,
) -> Result<Json<JobStarted>, ApiError> {
    let user = acting_user(acting, body.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let request = shard_node::prune::PruneRequest {
        dead_percent: body
            .dead_percent
            .unwrap_or(shard_node::prune::DEFAULT_DEAD_PERCENT),
        unused: true,
    };
    if request.dead_percent > 100 {
        return Err(shard_node::Error::Usage(format!(
            "dead_percent is a percentage: {} is more than 100",
            request.dead_percent
        ))
        .into());
    }
    let job = state.node.jobs().create_for("prune", Some(&session.user));
    let (node, j) = (state.node.clone(), job.clone());
    tokio::spawn(async move {
        // The prune writes the catalog snapshot itself (before it deletes old packs).
        let result = shard_node::prune::run(node, session, request, j.clone()).await;
        finish(&j, result);
    });
    Ok(Json(JobStarted {
        job: job.id,
        bytes: None,
    }))
}

async fn peers_rm(
    State(state): State<ApiState>,
    Json(body): Json<PeerRmBody>,
) -> Result<Json<PeerRemoval>, ApiError> {
    let id = state.node.resolve_peer(&body.id)?;
    Ok(Json(state.node.remove_peer(id, body.now).await?))
}

async fn accounts(State(state): State<ApiState>) -> Result<Json<Accounts>, ApiError> {
    Ok(Json(Accounts {
        accounts: state.node.accounts()?,
    }))
}

async fn account_rm(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<AccountRmBody>,
) -> Result<Json<AccountRemoved>, ApiError> {
    acting_user(acting, Some(body.user.clone()))?;
    let files = state.node.remove_account(&body.user, body.purge).await?;
    Ok(Json(AccountRemoved {
        removed: body.user,
        file_versions_removed: files,
    }))
}

/// A private folder under the home for bytes on their way in or out (uploads, downloads).
/// A spool path removed (with anything under it) when dropped.
struct Spooled(std::path::PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spool(node: &Node) -> Result<std::path::PathBuf, ApiError> {
    let dir = node.home().root().join("spool");
    let made = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
    });
    made.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot use {}: {e}", dir.display()),
            "check the node's home folder",
        )
    })?;
    let mut name = [0u8; 16];
    shard_crypto::fill_random(&mut name).map_err(Error::from)?;
    Ok(dir.join(hex::encode(name)))
}

/// A name to store under: not empty, no NUL, not absolute, no `..` or empty component.
fn vault_name(name: &str) -> Result<Vec<u8>, ApiError> {
    let bad = name.is_empty()
        || name.len() > 4096
        || name.contains('\0')
        || name.starts_with('/')
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{name:?} cannot be a name in the vault"),
            "use a relative name without empty, '.' or '..' parts, at most 4096 bytes",
        ));
    }
    Ok(name.as_bytes().to_vec())
}

#[derive(Deserialize)]
struct UploadQuery {
    name: String,
    /// Bytes the body carries (a browser knows the file's size before it sends it).
    size: Option<u64>,
    shares: Option<String>,
    user: Option<String>,
}

/// The body of an upload as the put's reader thread sees it: pieces handed over, as they
/// arrive, through a short queue (the put's pace holds the browser back; nothing piles up).
struct BodyReader {
    pieces: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.pieces.blocking_recv() {
                Some(Ok(piece)) => self.current = piece,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        let piece = self.current.split_to(n);
        if let Some(out) = buf.get_mut(..n) {
            out.copy_from_slice(&piece);
        }
        Ok(n)
    }
}

/// `POST /v1/upload?name=NAME&size=BYTES`: the request body, stored under NAME like
/// `put --as NAME` while it arrives — cut, sealed and sent to peers piece by piece, never held
/// whole in memory or written anywhere in plain. Answers once the body is in, with the job that
/// finishes the put; a put that fails early answers with its error at once.
async fn upload(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<UploadQuery>,
    body: axum::body::Body,
) -> Result<Json<JobStarted>, ApiError> {
    use futures_util::StreamExt;
    let user = acting_user(acting, q.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let name = vault_name(&q.name)?;
    let redundancy = q.shares.as_deref().map(parse_shares).transpose()?;
    let Some(size) = q.size else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the upload does not say how many bytes it carries",
            "send the size with it: /v1/upload?name=NAME&size=BYTES",
        ));
    };
    let (tx, pieces) = tokio::sync::mpsc::channel(8);
    let upload = shard_node::put::Upload {
        name,
        size,
        reader: Box::new(BodyReader {
            pieces,
            current: bytes::Bytes::new(),
        }),
    };
    let job = state.node.jobs().create_for("put", Some(&session.user));
    let (node, j) = (state.node.clone(), job.clone());
    let put = tokio::spawn(async move {
        let result = shard_node::put::run_upload(
            node.clone(),
            session.clone(),
            upload,
            redundancy,
            j.clone(),
        )
        .await;
        match result {
            Ok(summary) => {
                node.catalog_changed(&session);
                finish(&j, Ok(summary));
                None
            }
            Err(e) => {
                let refusal = ApiError::from(e);
                j.fail(refusal.error.clone(), refusal.hint.clone());
                Some(refusal)
            }
        }
    });
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    let mut ended_early = false;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| {
            std::io::Error::other(format!("the upload broke off after {bytes} bytes: {e}"))
        });
        let broke = piece.is_err();
        if let Ok(p) = &piece {
            bytes += p.len() as u64;
        }
        // The put stopped reading (it failed): no use taking more of the body.
        if tx.send(piece).await.is_err() {
            ended_early = true;
            break;
        }
        if broke {
            break;
        }
    }
    drop(tx);
    if ended_early && let Ok(Some(refusal)) = put.await {
        return Err(refusal);
    }
    Ok(Json(JobStarted {
        job: job.id,
        bytes: Some(bytes),
    }))
}

#[derive(Deserialize)]
struct DownloadQuery {
    name: String,
    version: Option<u32>,
    /// What follows `@` in `NAME@…`: under a backup job's name, a snapshot's number or day.
    at: Option<String>,
    user: Option<String>,
}

/// `POST /v1/download` with a form: how the web UI downloads. A link cannot carry the session
/// key the UI requires on every request ([`crate::ui`] checks it in the form's `csrf` field), a
/// form can, and the browser saves the answer as it arrives.
async fn download_form(
    state: State<ApiState>,
    acting: Option<Extension<Acting>>,
    axum::extract::Form(q): axum::extract::Form<DownloadQuery>,
) -> Result<Response, ApiError> {
    download(state, acting, Query(q)).await
}

/// A download refused: what was asked is `what` ("a folder", "a symbolic link"), not a file.
fn not_a_file(name: &str, what: &str) -> ApiError {
    let hint = if what == "a folder" {
        "download its files one by one, or restore the folder with `shard get`"
    } else {
        "restore it with `shard get` on the node"
    };
    ApiError::new(StatusCode::BAD_REQUEST, format!("{name} is {what}"), hint)
}

/// `GET /v1/download?name=NAME[&version=V][&at=AT]`: a stored file's bytes (with `at`, out of
/// a backup snapshot: `name=JOB/path&at=N` is `NAME@N/path`), restored into a private
/// spool file first (every chunk checked), then streamed; the spool file is unlinked at once.
async fn download(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let user = acting_user(acting, q.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    // Held until the last byte is sent: the spooled copy takes disk space until then.
    let permit = state.download_place(&session.user)?;
    let name = vault_name(&q.name)?;
    let request = shard_node::get::GetRequest {
        name,
        version: q.version,
        at: q.at.clone().filter(|at| !at.is_empty()),
        out: std::path::PathBuf::new(),
        force: false,
        keep_special_bits: false,
    };
    // A folder or a link is refused before anything is restored: a folder of 10⁶ files
    // would otherwise be restored into the spool only to be refused after.
    // The download's place goes with the lookup: a request given up meanwhile frees it only
    // once the lookup has ended.
    let (asked, permit) = {
        let (node, session, request) = (state.node.clone(), session.clone(), request.clone());
        tokio::task::spawn_blocking(move || {
            shard_node::get::kind(&node, &session, &request).map(|kind| (kind, permit))
        })
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the download's lookup failed",
                "see the node's log",
            )
        })??
    };
    match asked {
        shard_store::FileKind::Dir => return Err(not_a_file(&q.name, "a folder")),
        shard_store::FileKind::Symlink => return Err(not_a_file(&q.name, "a symbolic link")),
        shard_store::FileKind::File => {}
    }
    // A folder of its own in the spool, removed with whatever is in it when this request
    // ends in any way (also when the browser gives up half-way through the restore).
    let folder = Spooled(spool(&state.node)?);
    std::fs::create_dir(&folder.0)
        .and_then(|()| {
            std::fs::set_permissions(
                &folder.0,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
        })
        .map_err(Error::Io)?;
    let path = folder.0.join("file");
    let request = shard_node::get::GetRequest {
        out: path.clone(),
        ..request
    };
    let job = state.node.jobs().create_for("get", Some(&session.user));
    let restored = shard_node::get::run(state.node.clone(), session, request, job).await;
    restored?;
    let kind = tokio::fs::symlink_metadata(&path)
        .await
        .map_err(Error::Io)?
        .file_type();
    // Asked again of what was restored: the name may have been stored anew meanwhile.
    if kind.is_dir() {
        return Err(not_a_file(&q.name, "a folder"));
    }
    if kind.is_symlink() {
        // Its bytes would be those of whatever file on the node it points to.
        return Err(not_a_file(&q.name, "a symbolic link"));
    }
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .await
        .map_err(Error::Io)?;
    // Unlinked now: the open handle keeps the bytes until the stream ends.
    drop(folder);
    let length = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures_util::stream::unfold((file, permit), |(mut file, permit)| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                    (file, permit),
                ))
            }
            Err(e) => Some((Err(e), (file, permit))),
        }
    });
    let base = q.name.rsplit('/').next().unwrap_or("download");
    let encoded: String = base
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut response = axum::body::Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}"))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = length
        && let Ok(v) = axum::http::HeaderValue::from_str(&len.to_string())
    {
        headers.insert(header::CONTENT_LENGTH, v);
    }
    Ok(response)
}

/// `GET /v1/jobs/{id}/events`: the job's progress as server-sent events (a `progress` event
/// about four times a second, then one `end` event with the result or the error).
async fn job_events(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    UrlPath(id): UrlPath<u64>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let job = state
        .node
        .jobs()
        .get(id)
        .filter(|j| match &acting {
            Some(Extension(Acting(user))) => j.user.as_deref() == Some(user.as_str()),
            None => true,
        })
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no job {id}"), job_gone()))?;
    let stream = futures_util::stream::unfold((job, false), |(job, ended)| async move {
        if ended {
            return None;
        }
        let status = job.status();
        let running = status.running();
        if running {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let event = Event::default()
            .event(if running { "progress" } else { "end" })
            .data(serde_json::to_string(&status).unwrap_or_default());
        Some((Ok::<_, std::convert::Infallible>(event), (job, !running)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Deserialize)]
struct PictureQuery {
    name: String,
    version: Option<u32>,
    user: Option<String>,
}

/// `GET /v1/picture?name=&version=`: where the file's shares are (see
/// [`shard_node::health::picture`]).
async fn picture(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<PictureQuery>,
) -> Result<Json<shard_node::report::Picture>, ApiError> {
    let user = acting_user(acting, q.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    let node = state.node.clone();
    let name = q.name.into_bytes();
    let picture = tokio::task::spawn_blocking(move || {
        shard_node::health::picture(&node, &session, &name, q.version)
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the picture could not be drawn",
            "see the node's log",
        )
    })??;
    Ok(Json(picture))
}

async fn backup_add(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<BackupAddBody>,
) -> Result<Json<shard_node::backup::JobInfo>, ApiError> {
    let browser = acting_is_session(&acting);
    let user = acting_user(acting, body.user.clone())?;
    let path = std::path::PathBuf::from(&body.path);
    if !path.is_absolute() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the folder must be given as an absolute path",
            "the CLI makes a relative path absolute; over the API give it whole",
        ));
    }
    // A browser session backs up only folders the administrator opened to it.
    let path = if browser {
        confine(&state.node, &path, Reach::Read)?
    } else {
        path
    };
    let new = shard_node::backup::NewJob {
        path,
        name: body.name,
        every: body.every,
        keep: body.keep,
        exclude: body.exclude,
        shares: body.shares.as_deref().map(parse_shares).transpose()?,
        confined: browser,
        watch: body.watch,
    };
    Ok(Json(state.node.backup_add(user.as_deref(), new).await?))
}

async fn backup_ls(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<UserQuery>,
) -> Result<Json<BackupJobs>, ApiError> {
    let user = acting_user(acting, q.user)?;
    Ok(Json(BackupJobs {
        jobs: state.node.backup_jobs(user.as_deref())?,
    }))
}

async fn backup_run(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<BackupNameBody>,
) -> Result<Json<JobStarted>, ApiError> {
    let user = acting_user(acting, body.user.clone())?;
    let session = state.node.session(user.as_deref())?;
    // Known before the job starts: an unknown name is the request's error, not the job's.
    if !state
        .node
        .backup_jobs(Some(&session.user))?
        .iter()
        .any(|j| j.name == body.name)
    {
        return Err(shard_node::Error::NoSuchJob(body.name).into());
    }
    let job = state.node.jobs().create_for("backup", Some(&session.user));
    let (node, j) = (state.node.clone(), job.clone());
    tokio::spawn(async move {
        let result = node.backup_run(&session, &body.name, j.clone()).await;
        finish(&j, result);
    });
    Ok(Json(JobStarted {
        job: job.id,
        bytes: None,
    }))
}

async fn backup_rm(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Json(body): Json<BackupRmBody>,
) -> Result<Json<shard_node::backup::JobRemoval>, ApiError> {
    let user = acting_user(acting, body.user.clone())?;
    Ok(Json(
        state
            .node
            .backup_remove(user.as_deref(), &body.name, body.forget_snapshots)
            .await?,
    ))
}

async fn snapshots(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<SnapshotsQuery>,
) -> Result<Json<Snapshots>, ApiError> {
    let user = acting_user(acting, q.user)?;
    Ok(Json(Snapshots {
        snapshots: state.node.snapshots(user.as_deref(), &q.name)?,
        job: q.name,
    }))
}

/// How many entries a snapshot's page holds when the request does not say.
const SNAPSHOT_PAGE: usize = 500;

/// `GET /v1/snapshot/ls?name=JOB[&at=N|DAY][&path=FOLDER][&offset=][&limit=]`: one folder of
/// a snapshot, a page at a time (see [`Node::snapshot_ls`]).
async fn snapshot_ls(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<SnapshotLsQuery>,
) -> Result<Json<shard_node::browse::SnapshotFolder>, ApiError> {
    let user = acting_user(acting, q.user)?;
    let node = state.node.clone();
    let listing = tokio::task::spawn_blocking(move || {
        node.snapshot_ls(
            user.as_deref(),
            &q.name,
            q.at.as_deref().filter(|at| !at.is_empty()),
            &q.path,
            q.offset,
            q.limit.unwrap_or(SNAPSHOT_PAGE),
        )
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the snapshot could not be listed",
            "see the node's log",
        )
    })??;
    Ok(Json(listing))
}

async fn diff(
    State(state): State<ApiState>,
    acting: Option<Extension<Acting>>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<shard_node::backup::TreeDiff>, ApiError> {
    let user = acting_user(acting, q.user)?;
    // Off the async workers: a diff of a large tree reads the catalog for a while.
    let node = state.node.clone();
    let diff = tokio::task::spawn_blocking(move || {
        node.backup_diff(user.as_deref(), &q.name, &q.from, &q.to)
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the diff could not be made",
            "see the node's log",
        )
    })??;
    Ok(Json(diff))
}
