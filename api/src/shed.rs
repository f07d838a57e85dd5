//! Load shedding: at most `[api] max_in_flight_requests` requests are
//! handled at once; one more is answered at once with `503 overloaded` and
//! `Retry-After`, instead of waiting in line until the client gives up.
//!
//! A server past its capacity that queues every request answers all of
//! them late, so each client times out and retries, adding load; one that
//! refuses the excess at once keeps answering the rest in time and tells
//! the others when to come back. Refusing costs no Redis or store call:
//! the check runs before authentication. `/health` and `/ready` are never
//! refused, so an orchestrator does not restart a busy instance.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::ApiState;

/// What a refused client is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The middleware: a permit per request while its handler runs (a stream's
/// body, sent after the handler returned, holds none; streams have their
/// own limit, `max_event_streams`).
pub(crate) async fn limit_in_flight(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    match state.in_flight.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::overloaded(RETRY_AFTER).into_response(),
    }
}
