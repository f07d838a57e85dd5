//! Queues: list with counts, one queue, and the queue-wide admin actions.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use queue_core::inspect::{self, QueueCounts};
use queue_core::{QueueName, admin};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query;
use crate::auth::{AdminScope, ReadScope};
use crate::error::{ApiResult, ErrorBody};
use crate::ops;
use crate::state::ApiState;

/// A queue and its counts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueSummary {
    /// Queue name.
    name: String,
    /// Jobs per state, paused flag, BullMQ's completed/failed totals.
    counts: QueueCounts,
}

/// Every queue under the prefix.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueList {
    /// Queues, sorted by name.
    queues: Vec<QueueSummary>,
}

/// How many jobs an action touched.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Affected {
    /// Jobs moved or removed.
    count: u64,
}

/// An action that succeeded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Done {
    /// Always `true`.
    ok: bool,
}

const DONE: Done = Done { ok: true };

/// List queues with their counts.
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses((status = 200, body = QueueList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_list(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
) -> ApiResult<Json<QueueList>> {
    let queues = state.discovery.queues().await?;
    let counts = inspect::queue_counts(&state.conn, &queues).await?;
    Ok(Json(QueueList {
        queues: counts
            .into_iter()
            .map(|(q, counts)| QueueSummary {
                name: q.to_string(),
                counts,
            })
            .collect(),
    }))
}

/// One queue's counts.
#[utoipa::path(get, path = "/api/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = QueueSummary), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(queue): Path<String>,
) -> ApiResult<Json<QueueSummary>> {
    let queue = QueueName::new(queue)?;
    admin::ensure_queue_exists(&state.conn, &queue).await?;
    let counts = inspect::queue_counts(&state.conn, std::slice::from_ref(&queue)).await?;
    let counts = counts
        .into_iter()
        .next()
        .map(|(_, c)| c)
        .unwrap_or_default();
    Ok(Json(QueueSummary {
        name: queue.to_string(),
        counts,
    }))
}

/// Pause a queue: workers stop taking its jobs.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/pause", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_pause(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
) -> ApiResult<Json<Done>> {
    ops::pause_queue(&state, &caller, &queue).await?;
    Ok(Json(DONE))
}

/// Resume a paused queue.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/resume", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_resume(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
) -> ApiResult<Json<Done>> {
    ops::resume_queue(&state, &caller, &queue).await?;
    Ok(Json(DONE))
}

/// Options of a drain.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DrainParams {
    /// Remove delayed jobs too.
    #[serde(default)]
    delayed: bool,
}

/// Remove every waiting and prioritized job (and delayed ones if asked).
#[utoipa::path(post, path = "/api/v1/queues/{queue}/drain", tag = "queues",
    params(("queue" = String, Path), DrainParams),
    responses((status = 200, body = Affected), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_drain(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
    params: Result<Query<DrainParams>, QueryRejection>,
) -> ApiResult<Json<Affected>> {
    let params = query(params)?;
    let count = ops::drain_queue(&state, &caller, &queue, params.delayed).await?;
    Ok(Json(Affected { count }))
}

/// Options of a clean.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct CleanParams {
    /// The state to clean: completed, failed, delayed, waiting,
    /// prioritized or active (unlocked jobs only).
    state: String,
    /// Keep jobs younger than this many ms.
    #[serde(default)]
    grace_ms: u64,
    /// Remove at most this many.
    limit: Option<u64>,
}

/// Remove old jobs of one state, in batches.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/clean", tag = "queues",
    params(("queue" = String, Path), CleanParams),
    responses((status = 200, body = Affected), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_clean(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
    params: Result<Query<CleanParams>, QueryRejection>,
) -> ApiResult<Json<Affected>> {
    let params = query(params)?;
    let count = ops::clean_queue(
        &state,
        &caller,
        &queue,
        &params.state,
        params.grace_ms,
        params.limit,
    )
    .await?;
    Ok(Json(Affected { count }))
}

/// Move every failed job back to waiting.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/retry-failed", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = Affected), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_retry_failed(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
) -> ApiResult<Json<Affected>> {
    let count = ops::retry_failed(&state, &caller, &queue).await?;
    Ok(Json(Affected { count }))
}

/// Move every delayed job to waiting now.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/promote-delayed", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = Affected), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_promote_delayed(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
) -> ApiResult<Json<Affected>> {
    let count = ops::promote_delayed(&state, &caller, &queue).await?;
    Ok(Json(Affected { count }))
}

/// Options of an obliterate.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ObliterateParams {
    /// Even with active jobs.
    #[serde(default)]
    force: bool,
}

/// Delete a queue and all its jobs.
#[utoipa::path(delete, path = "/api/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path), ObliterateParams),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn queues_obliterate(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
    params: Result<Query<ObliterateParams>, QueryRejection>,
) -> ApiResult<Json<Done>> {
    let params = query(params)?;
    ops::obliterate_queue(&state, &caller, &queue, params.force).await?;
    Ok(Json(DONE))
}
