//! Jobs: pages by state, one job with its logs, and per-job actions.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use queue_core::inspect::{self, MAX_PAGE_SIZE, Order};
use queue_core::{JobRecord, JobState, QueueName, admin};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query;
use crate::auth::{AdminScope, ReadScope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ops::{self, JobAction};
use crate::state::ApiState;

/// Which jobs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// waiting (default), prioritized, delayed, active, completed, failed
    /// or waiting-children.
    state: Option<String>,
    /// Page number, from 1.
    #[param(minimum = 1)]
    page: Option<u64>,
    /// Jobs per page, 1 to 1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    size: Option<u64>,
    /// `newest` (default) or `oldest` first.
    order: Option<String>,
}

/// One page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobPageBody {
    /// The state listed.
    state: JobState,
    /// Jobs in that state when the page was read.
    total: u64,
    /// This page's number.
    page: u64,
    /// Page size.
    size: u64,
    /// The jobs, as BullMQ stores them.
    #[schema(value_type = Vec<Object>)]
    jobs: Vec<JobRecord>,
}

/// One job, its state and its newest log lines.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobBody {
    /// The job, as BullMQ stores it.
    #[schema(value_type = Object)]
    job: JobRecord,
    /// Its state, if it is in one (a job being moved may be in none).
    state: Option<JobState>,
    /// Newest log lines, oldest first.
    logs: Vec<String>,
    /// How many log lines it has in all.
    logs_total: u64,
}

/// An action that succeeded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobDone {
    /// The job's id.
    id: String,
}

/// List a queue's jobs in one state, a page at a time.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/jobs", tag = "jobs",
    params(("queue" = String, Path), ListParams),
    responses((status = 200, body = JobPageBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn jobs_list(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(queue): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<JobPageBody>> {
    let params = query(params)?;
    let queue = QueueName::new(queue)?;
    let job_state: JobState = params
        .state
        .as_deref()
        .unwrap_or("waiting")
        .parse()
        .map_err(|e: queue_core::UnknownState| {
            ApiError::unprocessable("invalid_input", e.to_string())
        })?;
    let page = params.page.unwrap_or(1);
    let size = params.size.unwrap_or(20);
    if page == 0 || !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(ApiError::unprocessable(
            "invalid_input",
            format!("page starts at 1 and size must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let order = match params.order.as_deref() {
        None | Some("newest") => Order::NewestFirst,
        Some("oldest") => Order::OldestFirst,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_input",
                format!("order must be newest or oldest, not {other:?}"),
            ));
        }
    };
    admin::ensure_queue_exists(&state.conn, &queue).await?;
    let offset = (page - 1).saturating_mul(size);
    let listed = inspect::list_jobs(&state.conn, &queue, job_state, offset, size, order).await?;
    Ok(Json(JobPageBody {
        state: listed.state,
        total: listed.total,
        page,
        size,
        jobs: listed.jobs,
    }))
}

/// One job with its state and logs.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/jobs/{id}", tag = "jobs",
    params(("queue" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = JobBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn jobs_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<JobBody>> {
    let queue = QueueName::new(queue)?;
    let detail = inspect::job_detail(&state.conn, &queue, &id).await?;
    Ok(Json(JobBody {
        job: detail.record,
        state: detail.state,
        logs: detail.logs,
        logs_total: detail.logs_total,
    }))
}

/// Move a failed job back to waiting.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/jobs/{id}/retry", tag = "jobs",
    params(("queue" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = JobDone), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn jobs_retry(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<JobDone>> {
    ops::act_on_job(&state, &caller, &queue, &id, JobAction::Retry).await?;
    Ok(Json(JobDone { id }))
}

/// Move a delayed job to waiting now.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/jobs/{id}/promote", tag = "jobs",
    params(("queue" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = JobDone), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn jobs_promote(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<JobDone>> {
    ops::act_on_job(&state, &caller, &queue, &id, JobAction::Promote).await?;
    Ok(Json(JobDone { id }))
}

/// Remove a job (refused while a worker runs it).
#[utoipa::path(delete, path = "/api/v1/queues/{queue}/jobs/{id}", tag = "jobs",
    params(("queue" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = JobDone), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn jobs_remove(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<JobDone>> {
    ops::act_on_job(&state, &caller, &queue, &id, JobAction::Remove).await?;
    Ok(Json(JobDone { id }))
}
