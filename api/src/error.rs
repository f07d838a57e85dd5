//! The API's one error type and its one JSON shape:
//! `{"error":{"code":"…","message":"…"}}`.
//!
//! 4xx messages are written for the client and safe to show; 5xx bodies are
//! generic and the cause is logged in the request's span instead.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use queue_core::{ErrorKind, QueueError};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`invalid_json`, `forbidden`, ...).
    pub code: String,
    /// A sentence for people, saying what to do next.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and client-safe message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `400`: the request is malformed (not JSON, bad header, bad query).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `422`: well-formed JSON that breaks the schema or a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// `401`: no key, or an unknown or revoked one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// `403`: the key is valid but its scopes do not cover this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// `429` with `Retry-After`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this API key is over its request rate; retry after the Retry-After seconds",
            )
        }
    }

    /// `500` with a generic body; `cause` is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the cause is in the server's log",
        )
    }

    /// `503` with a generic body; `cause` is logged.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "a backing service (Redis or the store) is unavailable; retry shortly",
            )
        }
    }

    /// `503` because the server is handling as many requests as it may
    /// (`[api] max_in_flight_requests`); nothing was done.
    pub fn overloaded(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the server is at its limit of requests in flight; nothing was done, retry after the Retry-After seconds",
            )
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The sentence for people (generic for 5xx).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e.kind() {
            ErrorKind::InvalidInput => Self::unprocessable("invalid_input", e.to_string()),
            ErrorKind::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            ErrorKind::Conflict => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            ErrorKind::Unavailable => Self::unavailable(&e),
            _ => Self::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up: a client waiting that long is
            // never early.
            let secs = after.as_millis().div_ceil(1_000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_errors_map_to_statuses() {
        let e: ApiError = QueueError::JobNotFound {
            queue: "q".into(),
            id: "1".into(),
        }
        .into();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let e: ApiError = QueueError::InvalidOptions("x".into()).into();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let e: ApiError = QueueError::IdempotencyKeyReused.into();
        assert_eq!(e.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = ApiError::rate_limited(Duration::from_millis(1_200)).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
