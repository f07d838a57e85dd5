//! What a handler sees of the job it runs.

use queue_core::workflow::StepRef as WorkflowStep;
use queue_core::{ActiveJob, QueueError, QueueName};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// The job a handler runs, and the ways it can talk back.
#[derive(Debug, Clone)]
pub struct JobContext {
    job: ActiveJob,
    cancel: CancellationToken,
}

impl JobContext {
    pub(crate) fn new(job: ActiveJob, cancel: CancellationToken) -> Self {
        Self { job, cancel }
    }

    /// The job id.
    pub fn id(&self) -> &str {
        self.job.id()
    }

    /// The job name.
    pub fn name(&self) -> &str {
        self.job.name()
    }

    /// The queue it came from.
    pub fn queue(&self) -> &QueueName {
        self.job.queue()
    }

    /// The raw payload.
    pub fn data(&self) -> &Value {
        self.job.data()
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.job.attempts_made() + 1
    }

    /// Attempts allowed in all (at least 1).
    pub fn max_attempts(&self) -> u32 {
        self.job.max_attempts()
    }

    /// When the job was created, ms since the epoch.
    pub fn created_at_ms(&self) -> u64 {
        self.job.timestamp_ms()
    }

    /// `queue:id:attempt`: the same for a re-delivery of one attempt (after
    /// a crash), different for each retry. Pass it to downstream systems so
    /// they can drop duplicates.
    ///
    /// For a workflow step's job it is the step's key instead,
    /// `run:step:attempt` (`run:step[item]:attempt` for a fan-out item):
    /// the same for every try of the step and for a re-dispatch after a
    /// crash, new only when a failed run is retried.
    pub fn idempotency_key(&self) -> String {
        match self.job.workflow_step() {
            Some(step) => step.idempotency_key(),
            None => format!("{}:{}:{}", self.queue(), self.id(), self.attempt()),
        }
    }

    /// The Redis connection the job came through.
    pub(crate) fn connection(&self) -> &queue_core::Connection {
        self.job.connection()
    }

    /// The workflow step this job runs (run, step, item, attempt), if any.
    pub fn workflow_step(&self) -> Option<WorkflowStep> {
        self.job.workflow_step()
    }

    /// Saves a checkpoint of a workflow step's progress (any JSON, say
    /// `{"next": 3000}`); a retry, or a re-dispatch after a crash, gets it
    /// back from [`last_checkpoint`](Self::last_checkpoint) and continues
    /// from there. Fails for a job that is not a workflow step.
    pub async fn checkpoint(&self, value: impl Serialize) -> Result<(), QueueError> {
        let value = serde_json::to_value(value)
            .map_err(|e| QueueError::InvalidOptions(format!("checkpoint is not JSON: {e}")))?;
        self.job.save_workflow_checkpoint(&value).await
    }

    /// The step's last checkpoint, `None` on its first run (and for jobs
    /// that are not workflow steps).
    pub async fn last_checkpoint(&self) -> Result<Option<Value>, QueueError> {
        self.job.workflow_checkpoint().await
    }

    /// Reports progress (any JSON: a number, an object...); BullMQ clients
    /// see it as the job's `progress` and a `progress` event.
    pub async fn progress(&self, progress: impl Serialize) -> Result<(), QueueError> {
        let value = serde_json::to_value(progress)
            .map_err(|e| QueueError::InvalidOptions(format!("progress is not JSON: {e}")))?;
        self.job.update_progress(value).await
    }

    /// Appends a line to the job's log.
    pub async fn log(&self, line: impl AsRef<str>) -> Result<(), QueueError> {
        self.job.log(line.as_ref()).await
    }

    /// Resolves when the job's work should stop: its timeout passed or the
    /// worker is handing it back at shutdown. Handlers that spawn their own
    /// tasks should stop them when this fires; work done in the handler's
    /// own future is dropped at its next `.await` anyway.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Whether [`cancelled`](Self::cancelled) has fired.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
