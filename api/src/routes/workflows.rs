//! Workflow types: register (or replace) a definition, list them, read
//! one. Runs are in `workflow_runs.rs`, their events in
//! `workflow_events.rs`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use queue_core::store::StoredWorkflowType;
use queue_core::workflow::{Workflow, WorkflowDefinition};
use queue_core::{QueueError, now_ms};
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::{self, Action};
use crate::auth::{AdminScope, ReadScope};
use crate::error::{ApiResult, ErrorBody};
use crate::json::StrictJson;
use crate::state::ApiState;

/// A registered workflow type.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowTypeBody {
    /// The type's name.
    #[serde(rename = "type")]
    kind: String,
    /// Grows with every change; runs keep the definition they started
    /// with.
    version: u64,
    /// When it last changed (ms since the epoch).
    updated_at_ms: u64,
    /// Who changed it (`key:<name>`, `cli:<user>`, `config`).
    updated_by: String,
    /// The checked definition.
    definition: WorkflowDefinition,
}

impl From<StoredWorkflowType> for WorkflowTypeBody {
    fn from(t: StoredWorkflowType) -> Self {
        Self {
            kind: t.workflow.kind().to_string(),
            version: t.version,
            updated_at_ms: t.updated_at_ms,
            updated_by: t.updated_by,
            definition: t.workflow.definition().clone(),
        }
    }
}

/// Every registered workflow type.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowTypeList {
    /// By name (at most 1,000).
    workflows: Vec<WorkflowTypeBody>,
}

/// List the registered workflow types.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
    responses((status = 200, body = WorkflowTypeList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn workflows_list(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
) -> ApiResult<Json<WorkflowTypeList>> {
    let types = state.store.list_workflow_types().await?;
    Ok(Json(WorkflowTypeList {
        workflows: types.into_iter().map(WorkflowTypeBody::from).collect(),
    }))
}

/// One workflow type with its definition.
#[utoipa::path(get, path = "/api/v1/workflows/{type}", tag = "workflows",
    params(("type" = String, Path, description = "The workflow type")),
    responses((status = 200, body = WorkflowTypeBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn workflows_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(kind): Path<String>,
) -> ApiResult<Json<WorkflowTypeBody>> {
    let found = state.store.get_workflow_type(&kind).await?;
    let found = found.ok_or(QueueError::WorkflowTypeNotFound { kind })?;
    Ok(Json(found.into()))
}

/// Register a workflow type, or replace its definition (runs already
/// started keep theirs).
#[utoipa::path(put, path = "/api/v1/workflows/{type}", tag = "workflows",
    params(("type" = String, Path, description = "The workflow type: letters, digits, '_' or '-'")),
    request_body = WorkflowDefinition,
    responses(
        (status = 201, description = "Registered", body = WorkflowTypeBody),
        (status = 200, description = "Replaced", body = WorkflowTypeBody),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid definition; the message names the step", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn workflows_put(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    // The definition is checked before anything is written or audited.
    let req: StrictJson<WorkflowDefinition> =
        StrictJson::parse(&headers, body, state.settings.max_json_depth)?;
    let params = serde_json::to_value(&req.value).unwrap_or_default();
    let workflow = Workflow::new(&kind, req.value)?;
    let result = async {
        let now = now_ms();
        let version = state
            .store
            .put_workflow_type(&workflow, &caller.name, now)
            .await?;
        // Types are never deleted, so version 1 is a new one.
        let status = if version == 1 {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let body = WorkflowTypeBody {
            kind: workflow.kind().to_string(),
            version,
            updated_at_ms: now,
            updated_by: caller.name.clone(),
            definition: workflow.definition().clone(),
        };
        Ok((status, Json(body)).into_response())
    }
    .await;
    let action = Action {
        name: "workflow.put",
        queue: "",
        target: Some(&kind),
        params,
    };
    audit::record(&state, &caller, action, result).await
}
