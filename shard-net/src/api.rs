//! The control API: HTTP/JSON on a loopback address, for the CLI (and later the web UI).
//!
//! Every request carries `Authorization: Bearer <token>` with the token from `<home>/api.token`
//! (compared in constant time). Errors are `{"error": cause, "hint": fix}` with a fitting
//! status. Routes (version 1):
//! ```text
//! GET  /v1/status               this node
//! GET  /v1/peers                paired peers, online state, address, round trip, usage
//! POST /v1/invite               {"valid_for_secs"?} → {"code", "expires", "valid_for_secs"}
//! POST /v1/join                 {"code"} → {"peer"}
//! POST /v1/shutdown             stop the node (requests in flight finish)
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::Error;
use crate::node::Node;

#[derive(Clone)]
struct ApiState {
    node: Arc<Node>,
    token: Arc<String>,
}

/// An error as the API reports it.
pub struct ApiError {
    status: StatusCode,
    error: String,
    hint: String,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            hint: hint.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.error, "hint": self.hint})),
        )
            .into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, hint) = match &e {
            Error::InvalidInvite(_) => (
                StatusCode::BAD_REQUEST,
                "copy the whole code as `shard invite` printed it, or ask for a new one",
            ),
            Error::Refused(_) => (
                StatusCode::CONFLICT,
                "ask the other node for a new code (`shard invite`)",
            ),
            Error::UnexpectedPeer { .. } => (
                StatusCode::CONFLICT,
                "another node answered at that address; check the code and the network",
            ),
            Error::Timeout(_) | Error::Io(_) | Error::Disconnected => (
                StatusCode::BAD_GATEWAY,
                "check that the other node runs (`shard serve`) and that its address is reachable",
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "see the node's log for details",
            ),
        };
        ApiError::new(status, e.to_string(), hint)
    }
}

/// Serves the API on `listener` until the node shuts down.
pub async fn serve(node: Arc<Node>, listener: TcpListener, token: String) {
    let state = ApiState {
        node: node.clone(),
        token: Arc::new(token),
    };
    let router = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/invite", post(invite))
        .route("/v1/join", post(join))
        .route("/v1/shutdown", post(shutdown))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    let mut stop = node.shutdown_signal();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!("control API stopped: {e}");
    }
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

async fn status(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!(state.node.status()?)))
}

async fn peers(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(json!({"peers": state.node.peers()}))
}

#[derive(Deserialize, Default)]
struct InviteBody {
    valid_for_secs: Option<u64>,
}

async fn invite(
    State(state): State<ApiState>,
    body: Option<Json<InviteBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ttl = body
        .and_then(|Json(b)| b.valid_for_secs)
        .map(Duration::from_secs);
    let invite = state.node.invite(ttl)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(Json(json!({
        "code": invite.encode().as_str(),
        "expires": invite.expires,
        "valid_for_secs": invite.expires.saturating_sub(now),
    })))
}

#[derive(Deserialize)]
struct JoinBody {
    code: String,
}

async fn join(
    State(state): State<ApiState>,
    Json(body): Json<JoinBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let peer = state.node.join(&body.code).await?;
    Ok(Json(json!({"peer": peer})))
}

async fn shutdown(State(state): State<ApiState>) -> StatusCode {
    state.node.shutdown();
    StatusCode::ACCEPTED
}
