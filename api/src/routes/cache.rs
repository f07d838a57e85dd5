//! Reading warmed cache keys, so the effect of `cache-warm` is visible.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use queue_core::cache;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::ReadScope;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::ApiState;

/// A cached value.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CacheValue {
    /// The key.
    key: String,
    /// The value: JSON when it parses as JSON, else the stored text.
    #[schema(value_type = serde_json::Value)]
    value: Value,
    /// Time left before it expires, in ms; absent when it never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_ms: Option<u64>,
}

/// Read one cache key (under `[api] cache_prefixes`).
#[utoipa::path(get, path = "/api/v1/cache/{key}", tag = "cache",
    params(("key" = String, Path, description = "The cache key, e.g. cache:template:42")),
    responses(
        (status = 200, body = CacheValue),
        (status = 403, description = "Not under a readable prefix", body = ErrorBody),
        (status = 404, description = "Not cached (a miss)", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn cache_get(
    _: ReadScope,
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
) -> ApiResult<Json<CacheValue>> {
    let prefixes = &state.settings.cache_prefixes;
    if !prefixes.iter().any(|p| key.starts_with(p.as_str())) {
        return Err(ApiError::forbidden(format!(
            "only keys under {prefixes:?} can be read here ([api] cache_prefixes)"
        )));
    }
    let found = cache::get(&state.conn, &key).await?;
    state.metrics.count_cache_read(found.is_some());
    let found = found.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "cache_miss",
            format!("{key:?} is not cached (never warmed, or expired)"),
        )
    })?;
    let value = serde_json::from_str(&found.value).unwrap_or(Value::String(found.value));
    Ok(Json(CacheValue {
        key,
        value,
        ttl_ms: found.ttl_ms,
    }))
}
