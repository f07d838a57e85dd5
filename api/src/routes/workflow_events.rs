//! Workflow events (a run or a step changed state) as Server-Sent Events,
//! read from the store's events table and resumable with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use queue_core::QueueError;
use queue_core::store::{Store, WorkflowEvent};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;
use utoipa::IntoParams;

use super::query;
use crate::auth::ReadScope;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::ApiState;

/// How often the store is asked for new events while there are none.
const POLL: Duration = Duration::from_millis(250);
/// Most events read per query.
const BATCH: u32 = 1_000;

/// Where to start, and which run.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WorkflowEventParams {
    /// Only this run's events.
    run: Option<String>,
    /// An event id to start after (`0` for everything). Without it, a
    /// run's feed starts at its first event and the feed of every run
    /// with the next new event. `Last-Event-ID` wins over this.
    from: Option<i64>,
}

/// Stream workflow events (`pending`, `running`, `waiting`, `dispatched`,
/// `completed`, `failed`, `cancelled`, ... of runs and steps) as
/// Server-Sent Events, oldest first. Each event's `id` is its event id and
/// its type the new state; a client that reconnects with `Last-Event-ID`
/// misses nothing.
#[utoipa::path(get, path = "/api/v1/workflows/events", tag = "workflows",
    params(WorkflowEventParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "text/event-stream; data is the WorkflowEvent as JSON", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 404, description = "Unknown run", body = ErrorBody),
        (status = 503, description = "Too many streams open", body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn workflow_events_stream(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    params: Result<Query<WorkflowEventParams>, QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let params = query(params)?;
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_cursor", "Last-Event-ID must be an event id")
                })
        })
        .transpose()?;
    if params.from.is_some_and(|f| f < 0) {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "from must be an event id (0 or more)",
        ));
    }
    if let Some(run) = &params.run {
        if state.store.get_run(run).await?.is_none() {
            return Err(QueueError::WorkflowRunNotFound { id: run.clone() }.into());
        }
    }
    let permit = Arc::clone(&state.event_streams)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                "too many event streams are open on this server; retry later",
            )
        })?;
    let after = match (resume.or(params.from), &params.run) {
        (Some(id), _) => id,
        (None, Some(_)) => 0,
        (None, None) => latest_event_id(&state.store).await?,
    };
    let feed = Feed {
        store: state.store.clone(),
        run: params.run,
        after,
        pending: VecDeque::new(),
        caught_up: false,
        _permit: permit,
    };
    let stream = futures::stream::unfold(feed, Feed::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The id of the newest event (0 when there is none), found with indexed
/// single-row "first event after x" reads: doubling, then bisecting, about
/// 2·log2(newest id) of them (60 for a billion events). The store offers
/// no "newest id" query, and this runs once per stream.
async fn latest_event_id(store: &Store) -> Result<i64, QueueError> {
    let after = |x: i64| async move {
        store
            .list_workflow_events(x, None, 1)
            .await
            .map(|e| e.first().map(|e| e.id))
    };
    let Some(first) = after(0).await? else {
        return Ok(0);
    };
    // Invariant: an event exists with id >= low; none with id > high.
    let mut low = first;
    let mut high = first.max(1);
    while let Some(id) = after(high).await? {
        low = id;
        high = id.saturating_mul(2);
    }
    while low < high {
        let mid = low + (high - low + 1) / 2;
        match after(mid - 1).await? {
            Some(id) if id <= high => low = id.max(mid),
            _ => high = mid - 1,
        }
    }
    Ok(low)
}

/// One open stream; dropping it (client gone) frees the permit.
struct Feed {
    store: Store,
    run: Option<String>,
    after: i64,
    pending: VecDeque<WorkflowEvent>,
    /// The last read found fewer than a batch: wait before the next.
    caught_up: bool,
    _permit: OwnedSemaphorePermit,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                let event = Event::default()
                    .id(e.id.to_string())
                    .event(e.state.clone())
                    .json_data(&e)
                    .unwrap_or_else(|_| Event::default().comment("unencodable event"));
                return Some((Ok(event), self));
            }
            if self.caught_up {
                tokio::time::sleep(POLL).await;
            }
            match self
                .store
                .list_workflow_events(self.after, self.run.as_deref(), BATCH)
                .await
            {
                Ok(batch) => {
                    self.caught_up = batch.len() < BATCH as usize;
                    if let Some(last) = batch.last() {
                        self.after = last.id;
                    }
                    self.pending.extend(batch);
                }
                Err(e) => {
                    // The client reconnects with Last-Event-ID and resumes.
                    debug!(error = %e, "workflow event stream read failed; closing the stream");
                    return None;
                }
            }
        }
    }
}
