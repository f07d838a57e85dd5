//! `drover-api` is Drover's HTTP API: apps add jobs over JSON, people and
//! tools read queues and act on them, all under `/api/v1`, described by an
//! OpenAPI 3.1 document generated from the handlers themselves.
//!
//! It is a library of axum routes over `queue-core`: [`router`] builds the
//! service from an [`ApiState`] (the Redis [`queue_core::Connection`], the
//! [`queue_core::store::Store`] holding API keys and the audit log, checked
//! [`ApiSettings`], the metrics registry). Every route but `/health` and
//! `/ready` needs an API key (`Authorization: Bearer`), checked against the
//! store and rate-limited per key in Redis, unless [`AuthMode::Disabled`]
//! (`drover dev`). Every error is `{"error":{"code","message"}}`
//! ([`ApiError`]).
//!
//! [`ops`] holds the admin actions (each audited), which the dashboard
//! crate's forms call too.
//!
//! It is not a server: binding, TLS and shutdown belong to the binary. It
//! never builds a Redis key or query; `queue-core` does.

mod audit;
mod auth;
mod config;
mod error;
mod error_docs;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod json;
mod metrics;
mod openapi;
pub mod ops;
mod routes;
mod shed;
mod state;

pub use auth::{AuthMode, Caller};
pub use config::{ApiConfig, ApiSettings};
pub use error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
pub use metrics::{ApiMetrics, spawn_queue_refresher, track};
pub use openapi::{OPENAPI_PATH, openapi, router};
pub use state::ApiState;
