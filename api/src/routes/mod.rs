//! Every route, declared once: `routes!` registers each handler with the
//! router and its `#[utoipa::path]` with the OpenAPI document, so the two
//! cannot drift apart.

pub(crate) mod autoscaler;
mod cache;
pub(crate) mod enqueue;
mod events;
mod jobs;
mod queues;
pub(crate) mod schedules;
mod system;
mod workflow_events;
pub(crate) mod workflow_runs;
pub(crate) mod workflows;

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::ApiState;

/// Routes that need an API key (all of `/api/v1` and `/metrics`).
pub(crate) fn protected() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::new()
        .routes(routes!(queues::queues_list))
        .routes(routes!(queues::queues_get, queues::queues_obliterate))
        .routes(routes!(queues::queues_pause))
        .routes(routes!(queues::queues_resume))
        .routes(routes!(queues::queues_drain))
        .routes(routes!(queues::queues_clean))
        .routes(routes!(queues::queues_retry_failed))
        .routes(routes!(queues::queues_promote_delayed))
        .routes(routes!(events::events_stream))
        .routes(routes!(jobs::jobs_list, enqueue::jobs_create))
        .routes(routes!(enqueue::jobs_create_bulk))
        .routes(routes!(jobs::jobs_get, jobs::jobs_remove))
        .routes(routes!(jobs::jobs_retry))
        .routes(routes!(jobs::jobs_promote))
        .routes(routes!(schedules::schedules_list))
        .routes(routes!(
            schedules::schedules_get,
            schedules::schedules_put,
            schedules::schedules_delete
        ))
        .routes(routes!(cache::cache_get))
        .routes(routes!(workflows::workflows_list))
        .routes(routes!(workflow_events::workflow_events_stream))
        .routes(routes!(workflows::workflows_get, workflows::workflows_put))
        .routes(routes!(
            workflow_runs::workflow_runs_list,
            workflow_runs::workflow_runs_create
        ))
        .routes(routes!(workflow_runs::workflow_runs_get))
        .routes(routes!(workflow_runs::workflow_runs_cancel))
        .routes(routes!(workflow_runs::workflow_runs_retry))
        .routes(routes!(workflow_runs::workflow_checkpoints_put))
        .routes(routes!(autoscaler::autoscaler_get))
        .routes(routes!(
            autoscaler::autoscaler_queues_get,
            autoscaler::autoscaler_queues_put,
            autoscaler::autoscaler_queues_delete
        ))
        .routes(routes!(autoscaler::autoscaler_history_get))
        .routes(routes!(system::workers_list))
        .routes(routes!(system::audit_list))
        .routes(routes!(system::metrics))
}

/// Routes open to everyone: liveness and readiness.
pub(crate) fn open() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::new()
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
}

/// A query string, or the API's `400` for a bad one.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// `404` in the API's error shape.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route; GET /api/v1/openapi.json lists them",
    )
}

/// `405` in the API's error shape.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; GET /api/v1/openapi.json lists them",
    )
}
