//! Workflow runs: start one (optionally idempotent), list a type's runs,
//! read one with its steps, cancel and retry, and the checkpoint callback
//! of step handlers that are apps behind the `http` handler.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use queue_core::store::{MAX_WORKFLOW_PAGE, RunDetail, RunRecord, RunState, StepState};
use queue_core::workflow::{self, StepRef};
use queue_core::{QueueError, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::enqueue::{answer, idempotency_header};
use super::query;
use crate::audit::{self, Action};
use crate::auth::{AdminScope, EnqueueLater, ReadScope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::StrictJson;
use crate::state::ApiState;

/// What a run starts with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRunRequest {
    /// The run input, a JSON object the step templates read as
    /// `{{ input.<field> }}` (`{}` when left out).
    #[serde(default = "empty_object")]
    #[schema(value_type = serde_json::Value)]
    input: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Start a run of a workflow type. The key needs an enqueue scope covering
/// the queue of every step (a run adds jobs to all of them), or admin.
#[utoipa::path(post, path = "/api/v1/workflows/{type}/runs", tag = "workflows",
    params(
        ("type" = String, Path, description = "The workflow type"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "Starting again with the same key and input answers the first run; with another input, 409"),
    ),
    request_body = StartRunRequest,
    responses(
        (status = 201, description = "Started", body = RunRecord),
        (status = 200, description = "Replayed an earlier start with the same Idempotency-Key", body = RunRecord),
        (status = 400, description = "Not JSON, or a bad Idempotency-Key", body = ErrorBody),
        (status = 403, description = "Key may not enqueue to every queue of the workflow", body = ErrorBody),
        (status = 404, description = "Unknown workflow type", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another input", body = ErrorBody),
        (status = 422, description = "Input is not a JSON object", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn workflow_runs_create(
    State(state): State<Arc<ApiState>>,
    scope: EnqueueLater,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let found = state.store.get_workflow_type(&kind).await?;
    let workflow = found
        .ok_or(QueueError::WorkflowTypeNotFound { kind })?
        .workflow;
    let queues: BTreeSet<&str> = workflow
        .definition()
        .steps
        .iter()
        .map(|s| s.queue.as_str())
        .collect();
    scope.check(queues)?;
    let req: StrictJson<StartRunRequest> =
        StrictJson::parse(&headers, body, state.settings.max_json_depth)?;
    let input = req.value.input;
    if !input.is_object() {
        return Err(ApiError::unprocessable(
            "invalid_input",
            "input must be a JSON object",
        ));
    }
    let key = idempotency_header(&headers)?;
    let (run, created) = state
        .store
        .start_run(&workflow, &input, key, now_ms())
        .await?;
    Ok(answer(!created, run))
}

/// Which runs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunListParams {
    /// Only runs in this state: pending, running, completed, failed or
    /// cancelled.
    #[param(value_type = Option<String>)]
    state: Option<RunState>,
    /// Runs per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only runs older than this one (the `next` of the previous page).
    before: Option<String>,
}

/// One page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunPage {
    /// Newest first.
    runs: Vec<RunRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// List a workflow type's runs, newest first.
#[utoipa::path(get, path = "/api/v1/workflows/{type}/runs", tag = "workflows",
    params(("type" = String, Path, description = "The workflow type"), RunListParams),
    responses((status = 200, body = RunPage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn workflow_runs_list(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(kind): Path<String>,
    params: Result<Query<RunListParams>, QueryRejection>,
) -> ApiResult<Json<RunPage>> {
    let params = query(params)?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_WORKFLOW_PAGE).contains(&limit) {
        return Err(ApiError::unprocessable(
            "invalid_input",
            format!("limit must be 1 to {MAX_WORKFLOW_PAGE}"),
        ));
    }
    if state.store.get_workflow_type(&kind).await?.is_none() {
        return Err(QueueError::WorkflowTypeNotFound { kind }.into());
    }
    let runs = state
        .store
        .list_runs(Some(&kind), params.state, limit, params.before.as_deref())
        .await?;
    let full = runs.len() == limit as usize;
    let next = runs.last().filter(|_| full).map(|r| r.id.clone());
    Ok(Json(RunPage { runs, next }))
}

/// One run with every step (and fan-out item): state, attempt, tries,
/// timings, input, output, checkpoint and error.
#[utoipa::path(get, path = "/api/v1/workflow-runs/{run}", tag = "workflows",
    params(("run" = String, Path, description = "The run id")),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn workflow_runs_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(run): Path<String>,
) -> ApiResult<Json<RunDetail>> {
    match state.store.get_run(&run).await? {
        Some(detail) => Ok(Json(detail)),
        None => Err(QueueError::WorkflowRunNotFound { id: run }.into()),
    }
}

/// Cancel a pending or running run: jobs not started are removed, running
/// ones finish but are ignored.
#[utoipa::path(post, path = "/api/v1/workflow-runs/{run}/cancel", tag = "workflows",
    params(("run" = String, Path, description = "The run id")),
    responses(
        (status = 200, body = RunRecord),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The run already ended", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn workflow_runs_cancel(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(run): Path<String>,
) -> ApiResult<Json<RunRecord>> {
    let result = state.store.cancel_run(&run, now_ms()).await;
    let result = result.map(Json).map_err(Into::into);
    audit::record(&state, &caller, run_action("workflow.cancel", &run), result).await
}

/// Run a failed or cancelled run again from where it stopped: its failed
/// and cancelled steps are dispatched anew, completed ones are kept.
#[utoipa::path(post, path = "/api/v1/workflow-runs/{run}/retry", tag = "workflows",
    params(("run" = String, Path, description = "The run id")),
    responses(
        (status = 200, body = RunRecord),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The run is not failed or cancelled", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn workflow_runs_retry(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(run): Path<String>,
) -> ApiResult<Json<RunRecord>> {
    let result = state.store.retry_run(&run, now_ms()).await;
    let result = result.map(Json).map_err(Into::into);
    audit::record(&state, &caller, run_action("workflow.retry", &run), result).await
}

fn run_action<'a>(name: &'static str, run: &'a str) -> Action<'a> {
    Action {
        name,
        queue: "",
        target: Some(run),
        params: json!({}),
    }
}

/// Which unit of the step.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckpointParams {
    /// The fan-out item (its `_workflow.item`); leave out for a plain step.
    item: Option<u64>,
}

/// Where a checkpoint was saved.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckpointSaved {
    /// The run id.
    run: String,
    /// The step id.
    step: String,
    /// The fan-out item.
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<u64>,
    /// The step's current attempt, which the checkpoint belongs to.
    attempt: u64,
}

/// Save a step's checkpoint (any JSON): the callback for step handlers
/// behind the `http` handler. Every later try or re-dispatch of the step
/// gets it (`checkpoint` in the request, `_workflow.checkpoint` in the job
/// data). The key needs an enqueue scope covering the step's queue, or
/// admin.
#[utoipa::path(put, path = "/api/v1/workflow-runs/{run}/steps/{step}/checkpoint", tag = "workflows",
    params(
        ("run" = String, Path, description = "The run id (`_workflow.run`)"),
        ("step" = String, Path, description = "The step id (`_workflow.step`)"),
        CheckpointParams,
    ),
    request_body(content = Object, description = "Any JSON value"),
    responses(
        (status = 200, body = CheckpointSaved),
        (status = 403, description = "Key may not enqueue to the step's queue", body = ErrorBody),
        (status = 404, description = "Unknown run, step or item", body = ErrorBody),
        (status = 409, description = "The step is not dispatched (not running, or already finished)", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn workflow_checkpoints_put(
    State(state): State<Arc<ApiState>>,
    scope: EnqueueLater,
    Path((run, step)): Path<(String, String)>,
    params: Result<Query<CheckpointParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<CheckpointSaved>> {
    let item = query(params)?.item;
    let detail = state.store.get_run(&run).await?;
    let detail = detail.ok_or_else(|| QueueError::WorkflowRunNotFound { id: run.clone() })?;
    let unit = detail
        .steps
        .iter()
        .find(|s| s.step == step && s.item == item)
        .ok_or_else(|| {
            let what = item.map_or_else(String::new, |i| format!(" item {i}"));
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "run {run:?} has no step {step:?}{what} (yet); GET the run to see its steps"
                ),
            )
        })?;
    scope.check([unit.queue.as_str()])?;
    let req: StrictJson<Value> = StrictJson::parse(&headers, body, state.settings.max_json_depth)?;
    if unit.state != StepState::Dispatched {
        let fans_out = item.is_none()
            && detail
                .steps
                .iter()
                .any(|s| s.step == step && s.item.is_some());
        let hint = if fans_out {
            "; a fan-out step keeps a checkpoint per item: pass ?item=N"
        } else {
            ""
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "step {step:?} of run {run:?} is {}, not dispatched{hint}",
                unit.state
            ),
        ));
    }
    let at = StepRef {
        run,
        step,
        item,
        attempt: unit.attempt,
    };
    workflow::save_checkpoint(&state.conn, &at, &req.value).await?;
    Ok(Json(CheckpointSaved {
        run: at.run,
        step: at.step,
        item: at.item,
        attempt: at.attempt,
    }))
}
