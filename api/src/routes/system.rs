//! Liveness, readiness, metrics, workers and the audit log.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, TextEncoder};
use queue_core::registry::{self, BullmqWorkerClient, WorkerInfo};
use queue_core::store::AuditRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query;
use crate::auth::{AdminScope, ReadScope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::ApiState;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` while the process serves.
    status: &'static str,
}

/// The process is up (no dependency is checked).
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Probe {
    /// Whether it answered in time.
    ok: bool,
    /// Round-trip time, in ms, when it answered.
    latency_ms: Option<f64>,
    /// Why not, when it did not.
    error: Option<String>,
}

/// The store's connection pool.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Pool {
    /// Open connections.
    size: u32,
    /// Open and idle.
    idle: u32,
    /// Most allowed.
    max: u32,
}

/// Readiness: Redis and the store answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// Redis.
    redis: Probe,
    /// The durable store.
    store: Probe,
    /// `sqlite` or `postgres`.
    store_backend: String,
    /// The store's pool.
    store_pool: Pool,
}

/// Whether Redis and the store are reachable, with latencies and pool use;
/// `503` when either is not.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub(crate) async fn ready(State(state): State<Arc<ApiState>>) -> Response {
    let (redis, store) = tokio::join!(probe(state.conn.ping()), probe(state.store.ping()));
    let stats = state.store.pool_stats();
    let ok = redis.ok && store.ok;
    let body = Ready {
        status: if ok { "ready" } else { "unavailable" },
        redis,
        store,
        store_backend: state.store.backend().to_string(),
        store_pool: Pool {
            size: stats.size,
            idle: stats.idle,
            max: stats.max,
        },
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn probe<E: std::fmt::Display>(ping: impl Future<Output = Result<Duration, E>>) -> Probe {
    match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
        Ok(Ok(rtt)) => Probe {
            ok: true,
            latency_ms: Some(rtt.as_secs_f64() * 1_000.0),
            error: None,
        },
        Ok(Err(e)) => Probe {
            ok: false,
            latency_ms: None,
            error: Some(e.to_string()),
        },
        Err(_) => Probe {
            ok: false,
            latency_ms: None,
            error: Some(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
        },
    }
}

/// Prometheus metrics of this API process.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn metrics(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
) -> ApiResult<Response> {
    state.metrics.observe_pool(&state);
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    encoder
        .encode(&state.registry.gather(), &mut body)
        .map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        body,
    )
        .into_response())
}

/// Live workers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Workers {
    /// Drover workers, from their heartbeats.
    #[schema(value_type = Vec<Object>)]
    workers: Vec<WorkerInfo>,
    /// Every BullMQ worker connection (Node, Python, Drover), from CLIENT
    /// LIST.
    #[schema(value_type = Vec<Object>)]
    bullmq_clients: Vec<BullmqWorkerClient>,
}

/// List live workers.
#[utoipa::path(get, path = "/api/v1/workers", tag = "system",
    responses((status = 200, body = Workers), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn workers_list(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
) -> ApiResult<Json<Workers>> {
    let workers =
        registry::live_workers(&state.conn, registry::LIVE_WITHIN, registry::FORGET_AFTER).await?;
    let bullmq_clients = registry::bullmq_worker_clients(&state.conn).await?;
    Ok(Json(Workers {
        workers,
        bullmq_clients,
    }))
}

/// A page of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Entries per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only entries older than this id (the last id of the previous page).
    before: Option<i64>,
}

/// Audit log entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Entries.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<AuditRecord>,
}

/// Read the audit log of admin actions, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "system", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn audit_list(
    _: AdminScope,
    State(state): State<Arc<ApiState>>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let params = query(params)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::unprocessable(
            "invalid_input",
            "limit must be 1 to 1000",
        ));
    }
    let entries = state.store.list_audit(limit, params.before).await?;
    Ok(Json(AuditPage { entries }))
}
