//! The web UI: the same control API as the CLI ([`crate::api`]), reached from a browser with
//! a session instead of the API token, plus the pages themselves (embedded in the binary: no
//! internet needed).
//!
//! Sessions: `POST /ui/login` checks the passphrase in the node (with the same delay after
//! failures as the CLI), unlocks the vault and sets a random session cookie (`HttpOnly`,
//! `SameSite=Strict`); the answer carries a session key (the "CSRF token") that every request
//! must send back in `X-CSRF-Token`, reads included (compared in constant time). The cookie
//! alone is worth nothing: browsers send it to every port of the host, so a local web server
//! the owner visits gets it; the key stays in the page's origin-bound `sessionStorage`.
//! Downloads post a form carrying the key, as a link cannot. A session acts only for its own
//! account, ends after 30 idle minutes (`[web] session_idle_secs`), and `POST /ui/logout`
//! locks the vault. At most 8 sessions per account (its oldest goes) and 256 in all (then a
//! login waits). No secret travels in a URL sent to the server (the setup token rides in
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

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn cookie_of(request: &Request) -> Option<String> {
    cookie_in(request.headers())
}

fn cookie_in(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
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
    let api = crate::api::routes().layer(middleware::from_fn_with_state(state.clone(), guard));
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
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
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

/// The refusal of a request whose `X-CSRF-Token` is not the session's `csrf` (constant-time
/// comparison), or `None` when it matches.
fn csrf_refusal(request: &Request, csrf: &str) -> Option<Response> {
    csrf_refusal_in(request.headers(), csrf)
}

fn csrf_refusal_in(headers: &HeaderMap, csrf: &str) -> Option<Response> {
    let presented = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (!shard_crypto::ct_eq(presented.as_bytes(), csrf.as_bytes())).then(key_refusal)
}

fn key_refusal() -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "missing or wrong session key (X-CSRF-Token)",
        "reload the page and log in again",
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
    let Some((user, csrf)) = cookie_of(&request).and_then(|c| state.ui.touch(&c, &state.node))
    else {
        return unauthorized(
            "not logged in, the session expired, or the account was locked on the node",
        );
    };
    // The cookie alone is not enough, for reads too: browsers send it to every port of this
    // host, so any local web server the owner's browser visits receives it. The session key
    // lives in the page (origin-bound storage) and comes back with every request.
    let request = if path == "/v1/download" && request.method() == Method::POST {
        match form_with_key(request, &csrf).await {
            Ok(request) => request,
            Err(refused) => return refused,
        }
    } else if let Some(refused) = csrf_refusal(&request, &csrf) {
        return refused;
    } else {
        request
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
    next.run(request).await
}

/// A download form's request, its body read (it is small) to find the session key in the
/// `csrf` field, and put back for the handler; or the refusal.
async fn form_with_key(request: Request, csrf: &str) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a download form is at most {FORM_LIMIT} bytes"),
            "reload the page and try again",
        )
        .into_response());
    };
    let presented = form_urlencoded::parse(&bytes)
        .find(|(key, _)| key == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !shard_crypto::ct_eq(presented.as_bytes(), csrf.as_bytes()) {
        return Err(key_refusal());
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
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
            let session = cookie_in(&headers).and_then(|c| state.ui.touch(&c, &state.node));
            let Some((user, csrf)) = session else {
                return Err(refused("only the node's administrator may add accounts"));
            };
            if csrf_refusal_in(&headers, &csrf).is_some() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong session key (X-CSRF-Token)",
                    "reload the page and log in again",
                ));
            }
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
    let set = format!("{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/");
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
    match cookie_of(&request).and_then(|c| state.ui.touch(&c, &state.node)) {
        Some((user, csrf)) => match csrf_refusal(&request, &csrf) {
            Some(refused) => refused,
            None => Json(session_info(&state, &user, &csrf)).into_response(),
        },
        _ => unauthorized("not logged in"),
    }
}

async fn logout(State(state): State<ApiState>, request: Request) -> Response {
    let Some(cookie) = cookie_of(&request) else {
        return unauthorized("not logged in");
    };
    let Some((_, csrf)) = state.ui.touch(&cookie, &state.node) else {
        return unauthorized(
            "not logged in, the session expired, or the account was locked on the node",
        );
    };
    if let Some(refused) = csrf_refusal(&request, &csrf) {
        return refused;
    }
    let locked = state
        .ui
        .end(&cookie)
        .is_some_and(|user| state.node.logout(Some(&user)));
    let mut response = Json(json!({"locked": locked})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("shard_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}
