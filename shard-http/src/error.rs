//! An error as the control API and the web UI answer it: a status, what went wrong and how to
//! fix it (the engine's [`shard_node::Error::hint`]), as `{"error", "hint"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use shard_node::{Error, ErrorKind};

use crate::types::Failure;

/// An error as the API reports it.
pub struct ApiError {
    status: StatusCode,
    pub(crate) error: String,
    pub(crate) hint: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        error: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
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
            Json(Failure {
                error: self.error,
                hint: self.hint,
            }),
        )
            .into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (kind, hint) = e.kind_and_hint();
        let status = match kind {
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::PeerUnreachable => StatusCode::BAD_GATEWAY,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string(), hint)
    }
}
