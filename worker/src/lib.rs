//! `worker` runs jobs: typed Rust handlers registered by job name
//! ([`HandlerRegistry`]), built-in handlers usable without Rust
//! ([`builtin::Echo`], [`builtin::HttpHandler`]), and the [`WorkerPool`] that
//! consumes many queues at once with per-queue, live-adjustable concurrency,
//! per-job timeouts, panic isolation, graceful shutdown with hand-back,
//! heartbeats and Prometheus metrics ([`WorkerMetrics`]).
//!
//! Handlers say how a job ended with `Ok(value)` or a [`JobError`]: failed
//! (retried per the job's BullMQ options), retry after a delay,
//! unrecoverable, delay until a time, or rate limited.
//!
//! It does not talk to Redis itself: fetching, locking, retries and stalled
//! recovery are `queue-core`'s (on bullmq-official's engine). It knows
//! nothing of the API or the scheduler.

mod config;
mod context;
mod follow;
mod handler;
mod heartbeat;
mod metrics;
mod outcome;
mod pool;
mod runner;

pub mod builtin;
pub mod supervise;

pub use config::{
    DEFAULT_KEEP_COMPLETED, DEFAULT_KEEP_FAILED, MAX_CONCURRENCY, QueueOverrides, QueueSettings,
    SuperviseConfig, WorkerConfig, WorkerSettings,
};
pub use context::JobContext;
pub use handler::{Handler, HandlerOptions, HandlerRegistry, TypedHandler, typed};
pub use heartbeat::WorkerIdentity;
pub use metrics::{MAX_NAMES_PER_QUEUE, WorkerMetrics};
pub use outcome::JobError;
pub use pool::{ShutdownReport, WorkerPool};
pub use queue_core::workflow::StepRef as WorkflowStep;
