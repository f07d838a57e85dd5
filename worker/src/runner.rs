//! Runs one job through its handler, safely: a timeout that cancels, a
//! panic that fails the job instead of the worker, and the handler's answer
//! turned into a [`Disposition`] for `queue-core` to apply.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use queue_core::{ActiveJob, Disposition, Failure, Processor, QueueName};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::context::JobContext;
use crate::handler::HandlerRegistry;
use crate::metrics::{InFlightGauge, WorkerMetrics};
use crate::outcome::{JobError, error_chain};

/// The [`Processor`] a queue's consumer runs: handler lookup by job name,
/// timeout, panic capture.
pub(crate) struct HandlerRunner {
    registry: Arc<HandlerRegistry>,
    default_timeout: Option<Duration>,
    in_flight: InFlightGauge,
}

impl HandlerRunner {
    /// The runner of one queue's jobs.
    pub(crate) fn new(
        queue: &QueueName,
        registry: Arc<HandlerRegistry>,
        default_timeout: Option<Duration>,
        metrics: &WorkerMetrics,
    ) -> Self {
        Self {
            registry,
            default_timeout,
            in_flight: metrics.in_flight(queue),
        }
    }
}

impl Processor for HandlerRunner {
    fn process(&self, job: ActiveJob) -> BoxFuture<'static, Disposition> {
        let Some(registered) = self.registry.lookup(job.name()) else {
            let known = self.registry.names().join(", ");
            let message = format!(
                "no handler for job name {:?} on this worker (it handles: {})",
                job.name(),
                if known.is_empty() { "nothing" } else { &known }
            );
            return Box::pin(async move {
                Disposition::Fail(Failure {
                    unrecoverable: true,
                    ..Failure::new(message)
                })
            });
        };
        let handler = registered.handler.clone();
        let timeout = registered.options.timeout.or(self.default_timeout);
        // A workflow step may set a shorter timeout of its own.
        let step_timeout = job
            .workflow_step()
            .and(job.data().get(queue_core::workflow::WORKFLOW_FIELD))
            .and_then(|w| w.get("timeout_ms"))
            .and_then(serde_json::Value::as_u64)
            .map(Duration::from_millis);
        let timeout = match (timeout, step_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let in_flight = self.in_flight.clone();
        Box::pin(async move {
            let _in_flight = in_flight.enter();
            let cancel = CancellationToken::new();
            // Dropping this future (hand-back at shutdown) cancels the token
            // too, so work the handler spawned can stop with it.
            let _cancel_on_drop = cancel.clone().drop_guard();
            let ctx = JobContext::new(job, cancel.clone());
            let call = AssertUnwindSafe(handler.call(ctx)).catch_unwind();
            let outcome = match timeout {
                None => call.await,
                Some(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        cancel.cancel();
                        return Disposition::Fail(Failure::new(format!(
                            "job timed out after {}ms",
                            limit.as_millis()
                        )));
                    }
                },
            };
            match outcome {
                Ok(result) => disposition(result),
                Err(panic) => Disposition::Fail(Failure {
                    stack: Some(format!("handler panicked: {}", panic_message(&*panic))),
                    ..Failure::new(format!("handler panicked: {}", panic_message(&*panic)))
                }),
            }
        })
    }
}

fn disposition(result: Result<Value, JobError>) -> Disposition {
    match result {
        Ok(value) => Disposition::Complete(value),
        Err(JobError::Failed(e)) => Disposition::Fail(Failure {
            stack: Some(error_chain(e.as_ref())),
            ..Failure::new(e.to_string())
        }),
        Err(JobError::RetryAfter { after, reason }) => Disposition::Fail(Failure {
            retry_after: Some(after),
            ..Failure::new(reason)
        }),
        Err(JobError::Unrecoverable(message)) => Disposition::Fail(Failure {
            unrecoverable: true,
            ..Failure::new(message)
        }),
        Err(JobError::DelayUntil(at)) => Disposition::DelayUntil(at),
        Err(JobError::RateLimited(wait)) => Disposition::RateLimited(wait),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_string())
}
