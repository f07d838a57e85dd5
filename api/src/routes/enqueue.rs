//! Adding jobs: one, or many all-or-nothing, optionally idempotent.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use queue_core::idempotency::{self, IdempotencyKey};
use queue_core::producer::{self, JobOptions, MAX_BULK_JOBS, NewJob};
use queue_core::{QueueError, QueueName};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::{Caller, EnqueueScope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::StrictJson;
use crate::state::ApiState;

/// The header that makes an add idempotent for 24 hours.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on an answer that replays an earlier idempotent add.
pub(crate) const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// One job to add, as BullMQ's `Queue.add(name, data, opts)` takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnqueueRequest {
    /// The job name; workers route on it.
    name: String,
    /// The payload (any JSON; `{}` when left out).
    #[serde(default = "empty_object")]
    #[schema(value_type = serde_json::Value)]
    data: Value,
    /// BullMQ job options, by BullMQ's names.
    #[serde(default)]
    opts: JobOptions,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl From<EnqueueRequest> for NewJob {
    fn from(r: EnqueueRequest) -> Self {
        NewJob {
            name: r.name,
            data: r.data,
            opts: r.opts,
        }
    }
}

/// Many jobs to add all-or-nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkEnqueueRequest {
    /// 1 to 1,000 jobs.
    jobs: Vec<EnqueueRequest>,
}

impl BulkEnqueueRequest {
    /// The jobs, as the producer takes them.
    pub(crate) fn into_jobs(self) -> Vec<NewJob> {
        self.jobs.into_iter().map(NewJob::from).collect()
    }
}

/// The id of the added job.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Enqueued {
    /// The job id (an existing job's id when `jobId` or deduplication
    /// matched one).
    id: String,
}

/// The ids of the added jobs, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkEnqueued {
    /// Job ids.
    ids: Vec<String>,
}

/// Add a job.
#[utoipa::path(
    post,
    path = "/api/v1/queues/{queue}/jobs",
    tag = "jobs",
    params(
        ("queue" = String, Path, description = "Queue name"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "Repeating a key within 24 h returns the first job's id and adds nothing"),
    ),
    request_body = EnqueueRequest,
    responses(
        (status = 201, description = "Added", body = Enqueued),
        (status = 200, description = "Replayed an earlier add with the same Idempotency-Key", body = Enqueued),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Key may not enqueue to this queue", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused for another request", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid job", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn jobs_create(
    State(state): State<Arc<ApiState>>,
    EnqueueScope(caller): EnqueueScope,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let queue = QueueName::new_strict(queue)?;
    let req: StrictJson<EnqueueRequest> =
        StrictJson::parse(&headers, body, state.settings.max_json_depth)?;
    let fingerprint = req.fingerprint();
    let job = NewJob::from(req.value);
    job.validate()?;
    match idempotency_key(&headers, &caller, &queue)? {
        None => {
            let id = producer::enqueue(&state.conn, &queue, &job).await?;
            Ok((StatusCode::CREATED, Json(Enqueued { id })).into_response())
        }
        Some(key) => {
            let added = idempotency::enqueue_idempotent(
                &state.conn,
                &queue,
                std::slice::from_ref(&job),
                false,
                &key,
                &fingerprint,
            )
            .await?;
            let id = added.ids.into_iter().next().unwrap_or_default();
            Ok(answer(added.replayed, Enqueued { id }))
        }
    }
}

/// Add many jobs, all or nothing.
#[utoipa::path(
    post,
    path = "/api/v1/queues/{queue}/jobs/bulk",
    tag = "jobs",
    params(
        ("queue" = String, Path, description = "Queue name"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "Repeating a key within 24 h returns the first ids and adds nothing"),
    ),
    request_body = BulkEnqueueRequest,
    responses(
        (status = 201, description = "All added in one transaction", body = BulkEnqueued),
        (status = 200, description = "Replayed an earlier add with the same Idempotency-Key", body = BulkEnqueued),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown API key", body = ErrorBody),
        (status = 403, description = "Key may not enqueue to this queue", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A job is invalid; none was added", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn jobs_create_bulk(
    State(state): State<Arc<ApiState>>,
    EnqueueScope(caller): EnqueueScope,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let queue = QueueName::new_strict(queue)?;
    let req: StrictJson<BulkEnqueueRequest> =
        StrictJson::parse(&headers, body, state.settings.max_json_depth)?;
    let fingerprint = req.fingerprint();
    if req.value.jobs.is_empty() || req.value.jobs.len() > MAX_BULK_JOBS {
        return Err(ApiError::unprocessable(
            "invalid_input",
            format!("jobs must hold 1 to {MAX_BULK_JOBS} jobs"),
        ));
    }
    let jobs = req.value.into_jobs();
    for (i, job) in jobs.iter().enumerate() {
        job.validate()
            .map_err(|e| ApiError::unprocessable("invalid_input", format!("jobs[{i}]: {e}")))?;
    }
    match idempotency_key(&headers, &caller, &queue)? {
        None => {
            let ids = producer::enqueue_bulk(&state.conn, &queue, &jobs).await?;
            Ok((StatusCode::CREATED, Json(BulkEnqueued { ids })).into_response())
        }
        Some(key) => {
            let added = idempotency::enqueue_idempotent(
                &state.conn,
                &queue,
                &jobs,
                true,
                &key,
                &fingerprint,
            )
            .await?;
            Ok(answer(added.replayed, BulkEnqueued { ids: added.ids }))
        }
    }
}

/// The `Idempotency-Key` header, if sent; `400` unless it is 1 to 255
/// visible ASCII characters.
pub(crate) fn idempotency_header(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = |e: QueueError| ApiError::bad_request("invalid_header", e.to_string());
    let text = value.to_str().map_err(|_| {
        bad(QueueError::InvalidIdempotencyKey(
            "must be visible ASCII characters",
        ))
    })?;
    idempotency::validate_key(text).map_err(bad)?;
    Ok(Some(text))
}

fn idempotency_key(
    headers: &HeaderMap,
    caller: &Caller,
    queue: &QueueName,
) -> ApiResult<Option<IdempotencyKey>> {
    let Some(text) = idempotency_header(headers)? else {
        return Ok(None);
    };
    IdempotencyKey::new(caller.idempotency_owner(), queue, text)
        .map(Some)
        .map_err(|e| ApiError::bad_request("invalid_header", e.to_string()))
}

/// `201` for a new add, `200` with `Idempotent-Replayed: true` for a replay.
pub(crate) fn answer<T: Serialize>(replayed: bool, body: T) -> Response {
    if replayed {
        let mut r = (StatusCode::OK, Json(body)).into_response();
        r.headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        r
    } else {
        (StatusCode::CREATED, Json(body)).into_response()
    }
}
