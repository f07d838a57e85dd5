//! A worker process's set of consumers: one per queue, sharing one handler
//! registry, started in a fixed order and stopped in reverse.

use std::sync::Arc;
use std::time::{Duration, Instant};

use queue_core::{Connection, Consumer, ConsumerOptions, QueueName};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::WorkerSettings;
use crate::follow::{self, Follow};
use crate::handler::HandlerRegistry;
use crate::heartbeat::{self, WorkerIdentity};
use crate::metrics::WorkerMetrics;
use crate::runner::HandlerRunner;

/// How long finishing scripts may take once every job has left its handler.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long handed-back jobs may take to be written back.
const HAND_BACK_GRACE: Duration = Duration::from_secs(10);

/// Consumers of every configured queue, plus the heartbeat.
#[derive(Debug)]
pub struct WorkerPool {
    consumers: Arc<[Consumer]>,
    metrics: Arc<WorkerMetrics>,
    heartbeat: JoinHandle<()>,
    stop_heartbeat: CancellationToken,
    follower: Option<JoinHandle<()>>,
    stop_follower: CancellationToken,
    shutdown_timeout: Duration,
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every in-flight job finished within the grace period.
    pub drained: bool,
    /// Jobs handed back unfinished (they run again on another worker).
    pub handed_back: u64,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl WorkerPool {
    /// Starts a consumer per queue in `settings`, running jobs through
    /// `registry`.
    pub async fn start(
        conn: &Connection,
        settings: &WorkerSettings,
        registry: HandlerRegistry,
        metrics: Arc<WorkerMetrics>,
        identity: WorkerIdentity,
    ) -> Result<Self, queue_core::QueueError> {
        let registry = Arc::new(registry);
        let mut consumers = Vec::with_capacity(settings.queues.len());
        for q in &settings.queues {
            let runner = HandlerRunner::new(&q.name, registry.clone(), q.job_timeout, &metrics);
            let opts = ConsumerOptions {
                lock_duration: q.lock_duration,
                stalled_interval: q.stalled_interval,
                max_stalled_count: q.max_stalled_count,
                rate_limit: q.rate_limit,
                worker_name: Some(identity.bullmq_name()),
                keep_completed: Some(q.keep_completed),
                keep_failed: Some(q.keep_failed),
                ..ConsumerOptions::new(q.name.clone(), q.concurrency)
            };
            let consumer =
                match Consumer::start(conn, opts, Arc::new(runner), metrics.clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        // Do not leave the queues already started running.
                        for started in &consumers {
                            Consumer::close(started, CLOSE_GRACE).await;
                        }
                        return Err(e);
                    }
                };
            metrics.set_concurrency(&q.name, q.concurrency);
            info!(queue = %q.name, concurrency = q.concurrency, "consuming");
            consumers.push(consumer);
        }
        let consumers: Arc<[Consumer]> = consumers.into();
        let stop_follower = CancellationToken::new();
        let follower = settings.autoscaler_poll.map(|poll| {
            follow::spawn(
                Follow {
                    conn: conn.clone(),
                    worker_id: identity.id.clone(),
                    consumers: consumers.clone(),
                    configured: settings.queues.iter().map(|q| q.concurrency).collect(),
                    poll,
                    metrics: metrics.clone(),
                },
                stop_follower.clone(),
            )
        });
        let stop_heartbeat = CancellationToken::new();
        let heartbeat = heartbeat::spawn(
            conn.clone(),
            identity,
            consumers.clone(),
            settings.heartbeat_interval,
            metrics.clone(),
            stop_heartbeat.clone(),
        );
        Ok(Self {
            consumers,
            metrics,
            heartbeat,
            stop_heartbeat,
            follower,
            stop_follower,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    fn consumer(&self, queue: &QueueName) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.queue() == queue)
    }

    /// Changes a queue's concurrency while running; false if this pool does
    /// not consume `queue` or `concurrency` is 0.
    pub fn set_concurrency(&self, queue: &QueueName, concurrency: usize) -> bool {
        match self.consumer(queue) {
            Some(c) if concurrency > 0 => {
                c.set_concurrency(concurrency);
                self.metrics.set_concurrency(queue, concurrency);
                info!(queue = %queue, concurrency, "concurrency changed");
                true
            }
            _ => false,
        }
    }

    /// A queue's current concurrency.
    pub fn concurrency(&self, queue: &QueueName) -> Option<usize> {
        self.consumer(queue).map(Consumer::concurrency)
    }

    /// Jobs in handlers now, all queues together.
    pub fn in_flight(&self) -> usize {
        self.consumers.iter().map(Consumer::in_flight).sum()
    }

    /// Graceful shutdown: stop fetching; let in-flight jobs finish within
    /// the shutdown timeout (cut short when `hurry` is cancelled, e.g. by a
    /// second signal); hand the rest back to their queues (another worker
    /// takes them at once, no attempt counted); close; deregister.
    pub async fn shutdown(mut self, hurry: CancellationToken) -> ShutdownReport {
        let started = Instant::now();
        let in_flight = self.in_flight();
        info!(
            in_flight,
            grace_ms = self.shutdown_timeout.as_millis() as u64,
            "shutting down: no new jobs; waiting for in-flight jobs"
        );
        // Stop following the autoscaler first: raising a queue's
        // concurrency now would only fetch jobs to hand back.
        self.stop_follower.cancel();
        if let Some(follower) = self.follower.take() {
            let _ = follower.await;
        }
        for c in self.consumers.iter().rev() {
            c.stop_fetching();
        }
        let deadline = started + self.shutdown_timeout;
        let mut drained = true;
        for c in self.consumers.iter() {
            drained &= tokio::select! {
                idle = c.wait_idle(deadline) => idle,
                () = hurry.cancelled() => c.in_flight() == 0,
            };
        }
        let handed_back_before = self.metrics.handed_back();
        // Even when drained, a fetch that was under way may still deliver a
        // job; abandoning hands any such job straight back.
        for c in self.consumers.iter() {
            c.abandon_in_flight();
        }
        if !drained {
            warn!(
                remaining = self.in_flight(),
                "grace period over: handing unfinished jobs back to their queues"
            );
        }
        let hand_back_deadline = Instant::now() + HAND_BACK_GRACE;
        for c in self.consumers.iter() {
            if !c.wait_idle(hand_back_deadline).await {
                warn!(queue = %c.queue(), "jobs still in flight after hand-back; stalled-job recovery will return them");
            }
        }
        futures::future::join_all(self.consumers.iter().map(|c| c.close(CLOSE_GRACE))).await;
        self.stop_heartbeat.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.heartbeat).await;
        let report = ShutdownReport {
            drained,
            handed_back: self.metrics.handed_back() - handed_back_before,
            elapsed: started.elapsed(),
        };
        info!(
            drained = report.drained,
            handed_back = report.handed_back,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "worker stopped"
        );
        report
    }
}
