//! Shared pieces of Drover's benchmark programs (see `README.md`).
//!
//! - [`big_queue`]: a queue of millions of jobs for `dashboard`.
//! - [`server`]: a private `redis-server` child on a free port.
//! - [`probe`]: the orchestrator's own read-only view of Redis (pending
//!   jobs, connected clients) plus `FLUSHALL`.
//! - [`clients`]: pausing/resuming a queue and bulk enqueue through each
//!   client under test (Node BullMQ, bare bullmq-official, Drover).
//! - [`procs`]: worker processes: launching, peak RSS, stopping.
//! - [`report`]: results as text tables and JSON.
//! - [`cpu`]: CPU used by the machine and by each process over a window.
//! - [`http`] and [`wrk`]: the HTTP enqueue servers of `http-enqueue` and
//!   the load generator that drives them.

pub mod big_queue;
pub mod clients;
pub mod cpu;
pub mod http;
pub mod probe;
pub mod procs;
pub mod report;
pub mod server;
pub mod wrk;

/// The BullMQ key prefix every client in the benchmark uses.
pub const PREFIX: &str = "bull";

/// The queue every case uses (the database is flushed between cases).
pub const QUEUE: &str = "bench";

/// The job name of every benchmark job.
pub const JOB_NAME: &str = "noop";
