//! The autoscaler: what its leader published (leader, queues, decisions,
//! history), and each queue's policy set through the API, which overrides
//! the config file's. `GET /api/v1/autoscaler/queues/{queue}` is also
//! what KEDA's metrics-api scaler reads (`valueLocation: desired`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use queue_core::QueueName;
use queue_core::autoscale::{
    self, AutoscalerStatus, HistorySample, Policy, PolicySpec, QueueStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::query;
use crate::audit::{self, Action};
use crate::auth::{AdminScope, ReadScope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::StrictJson;
use crate::state::ApiState;

/// How many decisions to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatusParams {
    /// Newest decisions returned, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    decisions: Option<usize>,
}

/// The autoscaler: its leader, every queue it watched at its last tick,
/// and recent decisions (newest first).
#[utoipa::path(get, path = "/api/v1/autoscaler", tag = "autoscaler", params(StatusParams),
    responses((status = 200, body = AutoscalerStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn autoscaler_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    params: Result<Query<StatusParams>, QueryRejection>,
) -> ApiResult<Json<AutoscalerStatus>> {
    let decisions = query(params)?.decisions.unwrap_or(50);
    if !(1..=autoscale::MAX_DECISIONS).contains(&decisions) {
        return Err(ApiError::unprocessable(
            "invalid_input",
            "decisions must be 1 to 1000",
        ));
    }
    Ok(Json(autoscale::status(&state.conn, decisions).await?))
}

/// One queue as the autoscaler's leader last saw it: `desired` and
/// `actual` workers, policy, signals.
#[utoipa::path(get, path = "/api/v1/autoscaler/queues/{queue}", tag = "autoscaler",
    params(("queue" = String, Path)),
    responses((status = 200, body = QueueStatus), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn autoscaler_queues_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(queue): Path<String>,
) -> ApiResult<Json<QueueStatus>> {
    let queue = QueueName::new(queue)?;
    autoscale::queue_status(&state.conn, &queue)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "the autoscaler has not seen queue {queue:?}: no leader runs, or the queue does not exist yet"
                ),
            )
        })
}

/// A policy set through the API, with its defaults filled in.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PolicyView {
    /// The queue.
    queue: String,
    /// As written.
    spec: PolicySpec,
    /// As the autoscaler applies it.
    effective: Policy,
}

/// Set a queue's autoscaling policy (overrides the config file's); the
/// leader applies it at its next tick.
#[utoipa::path(put, path = "/api/v1/autoscaler/queues/{queue}", tag = "autoscaler",
    params(("queue" = String, Path)),
    request_body = PolicySpec,
    responses(
        (status = 200, body = PolicyView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid policy", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn autoscaler_queues_put(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<PolicyView>> {
    // Checked before anything is written or audited.
    let name = QueueName::new(queue.as_str())?;
    let req: StrictJson<PolicySpec> =
        StrictJson::parse(&headers, body, state.settings.max_json_depth)?;
    let spec = req.value;
    let effective = spec.check()?;
    let params = serde_json::to_value(&spec).unwrap_or_default();
    let result = async {
        autoscale::put_policy(&state.conn, &name, &spec).await?;
        Ok(Json(PolicyView {
            queue: name.to_string(),
            spec,
            effective,
        }))
    }
    .await;
    let action = Action {
        name: "autoscaler.policy.put",
        queue: &queue,
        target: None,
        params,
    };
    audit::record(&state, &caller, action, result).await
}

/// A removal that succeeded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Removed {
    /// Always `true`.
    ok: bool,
}

/// Remove a queue's policy set through the API (the config file's, if
/// any, applies again).
#[utoipa::path(delete, path = "/api/v1/autoscaler/queues/{queue}", tag = "autoscaler",
    params(("queue" = String, Path)),
    responses((status = 200, body = Removed), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn autoscaler_queues_delete(
    State(state): State<Arc<ApiState>>,
    AdminScope(caller): AdminScope,
    Path(queue): Path<String>,
) -> ApiResult<Json<Removed>> {
    let result = async {
        let name = QueueName::new(queue.as_str())?;
        if autoscale::remove_policy(&state.conn, &name).await? {
            Ok(Json(Removed { ok: true }))
        } else {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("queue {queue:?} has no policy set through the API"),
            ))
        }
    }
    .await;
    let action = Action {
        name: "autoscaler.policy.delete",
        queue: &queue,
        target: None,
        params: json!({}),
    };
    audit::record(&state, &caller, action, result).await
}

/// How many samples to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// The newest samples returned, 1 to 7200 (default 600).
    #[param(minimum = 1, maximum = 7200)]
    last: Option<usize>,
}

/// A queue's desired and actual workers over time.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct History {
    /// The queue.
    queue: String,
    /// One sample per control tick, oldest first.
    samples: Vec<HistorySample>,
}

/// A queue's desired vs actual workers, one sample per control tick.
#[utoipa::path(get, path = "/api/v1/autoscaler/queues/{queue}/history", tag = "autoscaler",
    params(("queue" = String, Path), HistoryParams),
    responses((status = 200, body = History), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn autoscaler_history_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(queue): Path<String>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<History>> {
    let queue = QueueName::new(queue)?;
    let last = query(params)?.last.unwrap_or(600);
    if !(1..=autoscale::MAX_HISTORY).contains(&last) {
        return Err(ApiError::unprocessable(
            "invalid_input",
            "last must be 1 to 7200",
        ));
    }
    let samples = autoscale::worker_history(&state.conn, &queue, last).await?;
    Ok(Json(History {
        queue: queue.to_string(),
        samples,
    }))
}
