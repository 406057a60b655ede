//! The web UI: the same control API as the CLI ([`crate::api`]), reached from a browser with
//! a session instead of the API token, plus the pages themselves (embedded in the binary: no
//! internet needed).
//!
//! Sessions: `POST /ui/login` checks the passphrase in the node (with the same delay after
//! failures as the CLI), unlocks the vault and sets a random session cookie of its own name
//! (`shard_session_<random>`, `HttpOnly`, `SameSite=Strict`); the answer carries a session
//! key (the "CSRF token") that every request must send back in `X-CSRF-Token`, reads
//! included. The key picks the session and that session's cookie must come with it (compared
//! in constant time). The cookie alone is worth nothing: browsers send it to every port of
//! the host, so a local web server the owner visits gets it; the key stays in the page's
//! origin-bound `sessionStorage`. Downloads post a form carrying the key, as a link cannot. A
//! session acts only for its own account, ends after 30 idle minutes (`[web]
//! session_idle_secs`), and `POST /ui/logout` locks the vault. At most 8 sessions per account
//! (its oldest goes) and 256 in all (then a login is refused). No secret travels in a URL sent to the server (the setup token rides in
//! the fragment, which browsers keep to themselves). Every answer carries a strict
//! Content-Security-Policy, and only requests for this listener's own address are answered
//! (see [`crate::hosts`]).
//!
//! Who may do what: an account is made in the browser only by the administrator (the node's
//! first account, from its session), or — while the node has no account at all — by whoever
//! holds the one-time setup link `shard serve` prints (`shard ui-link` prints a fresh one).
//! Pairing and unpairing are the administrator's; others see peers read-only. A session
//! reaches paths on the node only under `[web] node_paths`, and never restores setuid,
//! setgid or sticky bits.
//! ```text
//! GET  /, /app.js, /style.css  the pages
//! POST /ui/signup              {"user", "password", "setup"?} → {"recovery_code"} (shown once)
//! POST /ui/login               {"user", "password"} → {"user", "csrf"} and the cookie
//! GET  /ui/session             {"user", "csrf", "admin", "node_paths"} while the session lasts
//!                              (with the key: a reload of a page that holds it)
//! POST /ui/logout              locks the vault, ends the session
//! /v1/...                      the control API, acting for the session's account
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::api::{Acting, ApiError, ApiState};
pub use crate::sessions::{UiSessions, link};
use shard_node::node::Node;

/// The session cookie's name.
const COOKIE: &str = "shard_session";

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const STYLE_CSS: &str = include_str!("../ui/style.css");

// Frames: only the page's own hidden download frames (whose error answers the page reads);
// no other site may frame anything of the UI.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-src 'self'; \
                   frame-ancestors 'self'; base-uri 'none'";

/// The session cookies a request carries, as (name, value): each login sets one of its own
/// (`shard_session_<random>`), so a second tab's login does not replace the first tab's. The
/// key picks the session, and its cookie must be among these: stale cookies of ended
/// sessions, or ones another site planted, are simply not it.
fn session_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| name.starts_with(COOKIE))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The key a request presents: its `X-CSRF-Token` header.
fn key_in(headers: &HeaderMap) -> &str {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A request's session: its cookie's name and its user, for the session whose key is `key`
/// when that session's cookie came with it; else `None` (401). A cookie alone, as another
/// local server may hold it, is not told apart from no session at all.
fn session_of(state: &ApiState, headers: &HeaderMap, key: &str) -> Option<(String, String)> {
    let cookies = session_cookies(headers);
    let values: Vec<String> = cookies.iter().map(|(_, v)| v.clone()).collect();
    let (user, cookie) = state.ui.touch(key, &values, &state.node)?;
    let name = cookies
        .into_iter()
        .find(|(_, v)| *v == cookie)
        .map(|(n, _)| n)?;
    Some((name, user))
}

/// The answer to a request with no session (see [`session_of`]).
fn no_session() -> Response {
    unauthorized(
        "not logged in: no session key, or the session expired, ended at logout, or its account was locked on the node",
    )
}

/// Serves the web UI on `listener` until the node shuts down.
pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    let idle = node
        .home()
        .config()
        .map(|c| c.web.session_idle_secs)
        .unwrap_or_else(|_| shard_node::home::WebConfig::default().session_idle_secs);
    let state = ApiState::new(
        node.clone(),
        String::new(),
        Arc::new(UiSessions::new(Duration::from_secs(idle))),
        listener.local_addr().ok(),
    );
    let hosts = match listener.local_addr() {
        Ok(addr) => Arc::new(crate::hosts::Hosts::new(addr, true)),
        Err(e) => {
            tracing::error!("web UI not started: {e}");
            return;
        }
    };
    // Bodies are read after the session is checked; the open routes (login, sign-up) read
    // only small ones.
    let api = crate::api::routes()
        .layer(middleware::from_fn(crate::listener::bodies_in_time))
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    let router = Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/ui/signup", post(signup))
        .route("/ui/login", post(login))
        .route("/ui/session", get(session))
        .route("/ui/logout", post(logout))
        .layer(middleware::from_fn(crate::listener::open_bodies_in_time))
        .merge(api)
        .layer(middleware::from_fn_with_state(hosts, crate::hosts::guard))
        .layer(middleware::from_fn(security_headers))
        .with_state(state);
    crate::listener::serve(listener, router, &node, "web UI").await;
}

fn page(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    // Nothing to other sites; our own requests keep their origin (with `no-referrer` a
    // form's POST, the download, would carry `Origin: null` and be refused as foreign).
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn unauthorized(why: &str) -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        why,
        "log in again (a session ends when left idle, at logout, and when the node restarts)",
    )
    .into_response()
}

/// The API through a session: a valid cookie, the CSRF token on every state-changing
/// request, the vault still unlocked, and only the session's account.
async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let path = path.as_str();
    // What a browser session may not do: stop the node, unlock or lock other accounts,
    // recover, or list every account of the node.
    let closed = [
        "/v1/shutdown",
        "/v1/login",
        "/v1/logout",
        "/v1/recover",
        "/v1/accounts",
        "/v1/accounts/rm",
        "/v1/ui-link",
    ];
    if closed.contains(&path) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "not available in the web UI",
            "use the shard command on the node",
        )
        .into_response();
    }
    // The cookie alone is not enough, for reads too: browsers send it to every port of this
    // host, so any local web server the owner's browser visits receives it. The session key
    // lives in the page (origin-bound storage) and comes back with every request: in the
    // header, or in a download form's `csrf` field.
    let (request, key) = if path == "/v1/download" && request.method() == Method::POST {
        match form_with_key(request).await {
            Ok(pair) => pair,
            Err(refused) => return refused,
        }
    } else {
        let key = key_in(request.headers()).to_string();
        (request, key)
    };
    let Some((_, user)) = session_of(&state, request.headers(), &key) else {
        return no_session();
    };
    let mut request = request;
    let path = request.uri().path();
    if state.node.session(Some(&user)).is_err() {
        return unauthorized("the account was locked on the node");
    }
    // What the whole node trusts is the administrator's to change.
    let pairing = ["/v1/invite", "/v1/join", "/v1/peers/add", "/v1/peers/rm"];
    if pairing.contains(&path) && !state.node.is_admin(&user).unwrap_or(false) {
        tracing::warn!("refused {path} to {user:?}: not the node's administrator");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "only the node's administrator (its first account) may pair or unpair nodes",
            "ask the administrator, or use the shard command on the node",
        )
        .into_response();
    }
    request.extensions_mut().insert(Acting(user));
    let response = next.run(request).await;
    // A long request (an upload) counts as use until it ends, not only from its start.
    state.ui.refresh(&key);
    response
}

/// A download form's request, its body read (small, and within the body time) and put back
/// for the handler, with the session key from its `csrf` field; or the refusal.
async fn form_with_key(request: Request) -> Result<(Request, String), Response> {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(
        crate::listener::BODY_TIME,
        axum::body::to_bytes(body, FORM_LIMIT),
    )
    .await;
    let Ok(Ok(bytes)) = read else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "a download form is at most {FORM_LIMIT} bytes, sent within {} s",
                crate::listener::BODY_TIME.as_secs()
            ),
            "reload the page and try again",
        )
        .into_response());
    };
    let key = form_urlencoded::parse(&bytes)
        .find(|(field, _)| field == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    Ok((
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        key,
    ))
}

/// The largest download form read (a name and the session key).
const FORM_LIMIT: usize = 16 << 10;

#[derive(Deserialize)]
struct Credentials {
    user: String,
    password: String,
}

#[derive(Deserialize)]
struct SignUp {
    user: String,
    password: String,
    /// The setup link's token (a node with no account yet).
    setup: Option<String>,
}

async fn signup(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(body): Json<SignUp>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let password = zeroize::Zeroizing::new(body.password);
    let refused = |why: &str| {
        tracing::warn!("refused a sign-up for {}: {why}", crate::shown(&body.user));
        ApiError::new(
            StatusCode::FORBIDDEN,
            why.to_string(),
            "the node's administrator adds accounts (from their session, or `shard account create` on the node); a node with no account yet is set up through the link `shard serve` printed (`shard ui-link` prints a fresh one)",
        )
    };
    match &body.setup {
        Some(token) => {
            // The link is spent only on an account that can be made (a typo does not burn it).
            shard_node::accounts::check_account_name(&body.user)?;
            shard_node::accounts::check_new_passphrase(&body.user, &password)?;
            if !state.node.spend_setup(token)? {
                return Err(refused(
                    "this setup link was used, has expired, or the node has an account already",
                ));
            }
        }
        None => {
            let Some((_, user)) = session_of(&state, &headers, key_in(&headers)) else {
                return Err(refused("only the node's administrator may add accounts"));
            };
            if !state.node.is_admin(&user)? {
                return Err(refused("only the node's administrator may add accounts"));
            }
        }
    }
    let code = state.node.sign_up(&body.user, password).await?;
    Ok(Json(
        json!({"user": body.user, "recovery_code": code.as_str()}),
    ))
}

async fn login(State(state): State<ApiState>, Json(body): Json<Credentials>) -> Response {
    let passphrase = zeroize::Zeroizing::new(body.password.into_bytes());
    if let Err(e) = state.node.login_uniformly(&body.user, passphrase).await {
        // One wording for a wrong passphrase and a name with no account.
        if let shard_node::Error::WrongPassphrase {
            user,
            next_wait_secs,
        } = &e
        {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "wrong passphrase for account {user:?}, or no such account; the next attempt waits {next_wait_secs} s"
                ),
                "check the account name and the passphrase, and try again",
            )
            .into_response();
        }
        return ApiError::from(e).into_response();
    }
    let vault = match state.node.session(Some(&body.user)) {
        Ok(vault) => vault,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (cookie, csrf) = match state.ui.create(&body.user, &vault) {
        Ok(pair) => pair,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut suffix = [0u8; 8];
    if let Err(e) = shard_crypto::fill_random(&mut suffix) {
        return ApiError::from(shard_node::Error::from(e)).into_response();
    }
    let set = format!(
        "{COOKIE}_{}={cookie}; HttpOnly; SameSite=Strict; Path=/",
        hex::encode(suffix)
    );
    let mut response = Json(session_info(&state, &body.user, &csrf)).into_response();
    if let Ok(value) = HeaderValue::from_str(&set) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// What the page needs of a session: who, its CSRF token, whether it is the administrator,
/// and the folders on the node it may reach.
fn session_info(state: &ApiState, user: &str, csrf: &str) -> serde_json::Value {
    let admin = state.node.is_admin(user).unwrap_or(false);
    let node_paths: Vec<String> = state
        .node
        .web_config()
        .node_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    json!({"user": user, "csrf": csrf, "admin": admin, "node_paths": node_paths})
}

/// The session's details, for a page that holds its key (a reload): the cookie alone, which
/// any local web server the browser visits receives too, learns nothing.
async fn session(State(state): State<ApiState>, request: Request) -> Response {
    let headers = request.headers();
    let key = key_in(headers);
    match session_of(&state, headers, key) {
        Some((_, user)) => Json(session_info(&state, &user, key)).into_response(),
        None => no_session(),
    }
}

async fn logout(State(state): State<ApiState>, request: Request) -> Response {
    let headers = request.headers();
    let key = key_in(headers);
    let Some((name, _)) = session_of(&state, headers, key) else {
        return no_session();
    };
    let locked = state
        .ui
        .end(key)
        .is_some_and(|user| state.node.logout(Some(&user)));
    let mut response = Json(json!({"locked": locked})).into_response();
    if let Ok(clear) = HeaderValue::from_str(&format!(
        "{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}
