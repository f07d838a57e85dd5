//! `queue-core` is Drover's only door to Redis.
//!
//! Jobs live in Redis exactly as BullMQ stores them, and the BullMQ protocol
//! (its Lua scripts, keys, scores and events) is spoken by bullmq-official;
//! this crate builds on it and never re-implements it. It adds what Drover
//! needs around it: checked settings and names ([`RedisConfig`],
//! [`QueueName`]), one shared auto-reconnecting [`Connection`], queue
//! discovery by `SCAN` ([`QueueDiscovery`]), bounded read models for people
//! ([`inspect`]), admin actions in bounded batches ([`admin`]), adding jobs
//! ([`producer`]), and a [`Consumer`] that runs a [`Processor`] on BullMQ's
//! worker engine with graceful hand-back and BullMQ's full retry rule.
//!
//! It is not a worker framework (handlers, timeouts and metrics live in the
//! `worker` crate) and it holds no policy about HTTP or schedules. No other
//! crate builds a Redis key or sends a Redis command.

mod clock;
mod connection;
mod discovery;
mod error;
mod failure;
mod keys;
mod names;
mod record;
mod retry;
mod sentinel;
mod state;
mod tls;

pub mod admin;
pub mod autoscale;
pub mod cache;
pub mod config;
pub mod consumer;
pub mod events;
pub mod idempotency;
pub mod inspect;
pub mod producer;
pub mod rate_limit;
pub mod registry;
pub mod schedule;
pub mod store;
pub mod workflow;

pub use clock::{epoch_ms, now_ms};
pub use config::{RedisConfig, RedisSettings};
pub use connection::{Connection, answers_ping};
pub use consumer::{
    ActiveJob, Consumer, ConsumerEvent, ConsumerObserver, ConsumerOptions, Disposition, Processor,
    RateLimit, SettledJob, Settlement,
};
pub use discovery::QueueDiscovery;
pub use error::{ErrorKind, QueueError, Result};
pub use failure::Failure;
pub use names::{
    MAX_JOB_ID_BYTES, MAX_JOB_NAME_BYTES, MAX_NEW_QUEUE_NAME_BYTES, MAX_QUEUE_NAME_BYTES,
    QueueName, validate_custom_job_id, validate_job_name,
};
pub use record::JobRecord;
pub use retry::{FailedAttempt, RetryDecision, StoredBackoff, decide as decide_retry};
pub use state::{JobState, UnknownState};
pub use tls::{RedisTlsConfig, TlsPem};
