//! The worker's heartbeat: who it is, what it consumes, how busy it is,
//! written every few seconds so `drover workers` and dashboards see it.

use std::sync::Arc;
use std::time::Duration;

use queue_core::registry::{self, WorkerInfo, WorkerQueue};
use queue_core::{Connection, Consumer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::metrics::WorkerMetrics;

/// Who this worker process is.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    /// Unique per process start (a UUID).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// When the process started, ms since the epoch.
    pub started_at_ms: u64,
}

impl WorkerIdentity {
    /// This process.
    pub fn current() -> Self {
        Self {
            id: new_worker_id(),
            host: hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".to_string()),
            pid: std::process::id(),
            started_at_ms: queue_core::now_ms(),
        }
    }

    /// The name BullMQ records on jobs this worker processes (`pb`) and in
    /// its Redis connection name, which BullMQ's `getWorkers()` lists.
    pub fn bullmq_name(&self) -> String {
        let host: String = self
            .host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}{host}-{}", registry::DROVER_WORKER_NAME_PREFIX, self.pid)
    }
}

/// A random id; uniqueness, not secrecy, is what matters here.
fn new_worker_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Writes the heartbeat every `interval` (jittered ±10% so a fleet does not
/// beat in lockstep) until `stop`, then removes it.
pub(crate) fn spawn(
    conn: Connection,
    identity: WorkerIdentity,
    consumers: Arc<[Consumer]>,
    interval: Duration,
    metrics: Arc<WorkerMetrics>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut info = WorkerInfo {
            id: identity.id.clone(),
            host: identity.host.clone(),
            pid: identity.pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: identity.started_at_ms,
            heartbeat_at_ms: 0,
            queues: Vec::new(),
        };
        loop {
            info.queues = consumers
                .iter()
                .map(|c| WorkerQueue {
                    queue: c.queue().to_string(),
                    concurrency: c.concurrency(),
                    in_flight: c.in_flight(),
                })
                .collect();
            for c in consumers.iter() {
                metrics.set_concurrency(c.queue(), c.concurrency());
            }
            if let Err(e) = registry::heartbeat(&conn, &mut info).await {
                metrics.error("", "heartbeat", &format!("heartbeat failed: {e}"));
            }
            let jitter = 0.9 + fastrand::f64() * 0.2;
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(interval.mul_f64(jitter)) => {}
            }
        }
        if let Err(e) = registry::deregister(&conn, &identity.id).await {
            metrics.error("", "heartbeat", &format!("could not deregister: {e}"));
        }
        debug!("heartbeat stopped");
    })
}
