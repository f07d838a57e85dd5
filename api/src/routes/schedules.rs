//! Schedules: BullMQ job schedulers, Drover's and other clients'. Writes
//! are declared in the durable store and applied to Redis at once; the
//! reconciler in `drover scheduler` restores them if Redis loses them.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use queue_core::schedule::{self, Schedule, ScheduleSpec, ScheduleView, live};
use queue_core::{QueueError, QueueName};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Action};
use crate::auth::{AdminScope, ReadScope};
use crate::error::{ApiResult, ErrorBody};
use crate::json::StrictJson;
use crate::state::ApiState;

/// A queue's schedules.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    /// Soonest next run first (at most 1,000).
    schedules: Vec<ScheduleView>,
}

/// A removal that succeeded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Removed {
    /// Always `true`.
    ok: bool,
}

/// List a queue's schedules, whoever made them.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/schedules", tag = "schedules",
    params(("queue" = String, Path)),
    responses((status = 200, body = ScheduleList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn schedules_list(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(queue): Path<String>,
) -> ApiResult<Json<ScheduleList>> {
    let queue = QueueName::new(queue)?;
    let schedules = live::list(&state.conn, &queue).await?;
    Ok(Json(ScheduleList { schedules }))
}

/// One schedule with its next run times.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/schedules/{id}", tag = "schedules",
    params(("queue" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn schedules_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<ScheduleView>> {
    let queue = QueueName::new(queue)?;
    let found = live::get(&state.conn, &queue, &id).await?;
    Ok(Json(found.ok_or_else(|| QueueError::ScheduleNotFound {
        queue: queue.to_string(),
        id,
    })?))
}

/// Create or replace a schedule (BullMQ's `upsertJobScheduler`).
#[utoipa::path(put, path = "/api/v1/queues/{queue}/schedules/{id}", tag = "schedules",
    params(("queue" = String, Path), ("id" = String, Path)),
    request_body = ScheduleSpec,
    responses(
        (status = 201, description = "Created", body = ScheduleView),
        (status = 200, description = "Replaced", body = ScheduleView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 409, description = "Declared in the config file, or made by another client", body = ErrorBody),
        (status = 422, description = "Invalid schedule", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn schedules_put(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path((queue, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    // The body is checked before anything is written or audited.
    let name = QueueName::new_strict(queue.as_str())?;
    let req: StrictJson<ScheduleSpec> =
        StrictJson::parse(&headers, body, state.settings.max_json_depth)?;
    let params = serde_json::to_value(&req.value).unwrap_or_default();
    let checked = Schedule::new(name, &id, req.value)?;
    let result = async {
        let created = schedule::declare(&state.conn, &state.store, &checked, &caller.name).await?;
        let view = live::get(&state.conn, checked.queue(), checked.id())
            .await?
            .ok_or_else(|| {
                QueueError::Protocol("the schedule vanished right after it was written".into())
            })?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(view)).into_response())
    }
    .await;
    let action = Action {
        name: "schedule.put",
        queue: &queue,
        target: Some(&id),
        params,
    };
    audit::record(&state, &caller, action, result).await
}

/// Remove a schedule; a run already started finishes.
#[utoipa::path(delete, path = "/api/v1/queues/{queue}/schedules/{id}", tag = "schedules",
    params(("queue" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, body = Removed),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Declared in the config file", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn schedules_delete(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<Removed>> {
    let result = async {
        let name = QueueName::new(queue.as_str())?;
        schedule::withdraw(&state.conn, &state.store, &name, &id).await?;
        Ok(Json(Removed { ok: true }))
    }
    .await;
    let action = Action {
        name: "schedule.delete",
        queue: &queue,
        target: Some(&id),
        params: json!({}),
    };
    audit::record(&state, &caller, action, result).await
}
