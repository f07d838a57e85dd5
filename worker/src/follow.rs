//! The concurrency actuator on the worker's side: a `drover worker`
//! process reads the autoscaler's desired state of its queues and adopts
//! its share of the slots live (`Consumer::set_concurrency`: lowering it
//! lets running jobs finish, it never interrupts them). A queue the
//! autoscaler does not scale with this actuator runs at its configured
//! concurrency again.

use std::sync::Arc;
use std::time::Duration;

use queue_core::autoscale::{self, Actuator};
use queue_core::{Connection, Consumer, QueueName};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::MAX_CONCURRENCY;
use crate::metrics::WorkerMetrics;

/// What the follower needs.
#[derive(Debug)]
pub(crate) struct Follow {
    pub(crate) conn: Connection,
    /// This process's worker id (its heartbeat's).
    pub(crate) worker_id: String,
    pub(crate) consumers: Arc<[Consumer]>,
    /// Each consumer's configured concurrency, in the same order.
    pub(crate) configured: Vec<usize>,
    pub(crate) poll: Duration,
    pub(crate) metrics: Arc<WorkerMetrics>,
}

/// Polls the desired state every `poll` (jittered ±10%) until `stop`.
pub(crate) fn spawn(follow: Follow, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let queues: Vec<QueueName> = follow.consumers.iter().map(|c| c.queue().clone()).collect();
        loop {
            match autoscale::desired_states(&follow.conn, &queues).await {
                Ok(states) => {
                    for ((consumer, configured), state) in
                        follow.consumers.iter().zip(&follow.configured).zip(states)
                    {
                        let target = match state {
                            Some(s) if s.actuator == Actuator::Concurrency => {
                                // Not yet counted by the leader: keep going
                                // as we are until the next tick shares.
                                let Some(n) = s.assignments.get(&follow.worker_id) else {
                                    continue;
                                };
                                usize::try_from(*n)
                                    .unwrap_or(MAX_CONCURRENCY)
                                    .clamp(1, MAX_CONCURRENCY)
                            }
                            _ => *configured,
                        };
                        if consumer.concurrency() != target {
                            info!(queue = %consumer.queue(), from = consumer.concurrency(), to = target, "autoscaler: concurrency changed");
                            consumer.set_concurrency(target);
                            follow.metrics.set_concurrency(consumer.queue(), target);
                        }
                    }
                }
                Err(e) => follow.metrics.error(
                    "",
                    "autoscale",
                    &format!("reading the autoscaler's desired state failed: {e}"),
                ),
            }
            let jitter = 0.9 + fastrand::f64() * 0.2;
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(follow.poll.mul_f64(jitter)) => {}
            }
        }
        debug!("autoscaler follower stopped");
    })
}
