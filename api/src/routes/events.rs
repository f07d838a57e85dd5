//! A queue's events as Server-Sent Events, resumable with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use queue_core::QueueName;
use queue_core::events::{self, EventCursor, EventReader};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;
use utoipa::IntoParams;

use super::query;
use crate::auth::ReadScope;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::ApiState;

/// How long one read waits for new events before looking again.
const BLOCK: Duration = Duration::from_secs(10);
/// Most events read per round trip.
const BATCH: usize = 200;

/// Where to start when no `Last-Event-ID` is sent.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventParams {
    /// A stream id to start after (`0` for everything retained); without
    /// it, only new events. `Last-Event-ID` wins over this.
    from: Option<String>,
}

/// Stream a queue's events (`added`, `active`, `completed`, `failed`, ...)
/// as Server-Sent Events; each event's `id` is its stream id, so a client
/// that reconnects with `Last-Event-ID` misses nothing still retained.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/events", tag = "queues",
    params(("queue" = String, Path), EventParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "text/event-stream; data is the event's fields as JSON", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 503, description = "Too many streams open", body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn events_stream(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    params: Result<Query<EventParams>, QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let params = query(params)?;
    let queue = QueueName::new(queue)?;
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request("invalid_header", "Last-Event-ID is not text"))
        })
        .transpose()?;
    let cursor = match resume.or(params.from.as_deref()) {
        Some(id) => events::parse_cursor(id)
            .map_err(|e| ApiError::bad_request("invalid_cursor", e.to_string()))?,
        None => EventCursor::Latest,
    };
    let permit = Arc::clone(&state.event_streams)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                "too many event streams are open on this server; retry later",
            )
        })?;
    let reader = EventReader::open(&state.conn, &queue, cursor).await?;
    let stream = futures::stream::unfold(
        Follow {
            reader,
            pending: VecDeque::new(),
            _permit: permit,
        },
        Follow::next,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The state of one open stream; dropping it (client gone) closes the
/// reader's connection and frees the permit.
struct Follow {
    reader: EventReader,
    pending: VecDeque<events::QueueEvent>,
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                let event = Event::default()
                    .id(e.id)
                    .event(if e.event.is_empty() {
                        "unknown".into()
                    } else {
                        e.event
                    })
                    .json_data(&e.fields)
                    .unwrap_or_else(|_| Event::default().comment("unencodable event"));
                return Some((Ok(event), self));
            }
            match self.reader.next_batch(BLOCK, BATCH).await {
                Ok(batch) => self.pending.extend(batch),
                Err(e) => {
                    // The client reconnects with Last-Event-ID and resumes.
                    debug!(error = %e, "event stream read failed; closing the stream");
                    return None;
                }
            }
        }
    }
}
