//! Consuming a queue: bullmq-official's `Worker` does the fetching, locking,
//! lock renewal, stalled-job recovery, rate limiting and scheduler
//! iterations; this module feeds it Drover's processor and applies what the
//! processor decided ([`Disposition`]) with BullMQ's semantics.
//!
//! It also adds what the engine lacks: hand-back of in-flight jobs at
//! shutdown ([`Consumer::abandon_in_flight`]), per-attempt `failedReason`
//! and `stacktrace` like Node's workers write them, retries with `jitter` or
//! a handler-chosen delay, and an in-flight count to drain against.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bullmq::worker::WorkerEvent;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, warn};

use crate::clock::epoch_ms;
use crate::connection::Connection;
use crate::error::Result;
use crate::failure::{self, EngineResult, Failure};
use crate::names::QueueName;
use crate::producer::{Retention, retention_to_bullmq};

/// Beyond the drain delay, what the engine's own close may wait for its
/// fetch loop once no job is left in flight: the loop may sit in a blocking
/// wait for a new job for up to the drain delay.
const ENGINE_CLOSE_SLACK: Duration = Duration::from_millis(500);

/// How a consumer fetches and locks jobs.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// The queue to consume.
    pub queue: QueueName,
    /// Jobs processed at once (changeable later with
    /// [`Consumer::set_concurrency`]).
    pub concurrency: usize,
    /// How long a job's lock lasts without renewal; renewed every half.
    pub lock_duration: Duration,
    /// How often stalled jobs (lock expired while active) are looked for.
    pub stalled_interval: Duration,
    /// Stalls a job may have before it is failed instead of retried.
    pub max_stalled_count: u32,
    /// A queue-wide rate limit, shared by every worker of the queue.
    pub rate_limit: Option<RateLimit>,
    /// Recorded on jobs (`pb`) and in the connection name BullMQ's
    /// `getWorkers()` reads.
    pub worker_name: Option<String>,
    /// Longest a blocked fetch waits for a new job before looking again.
    pub drain_delay: Duration,
    /// What is kept of jobs this consumer completes, unless a job's own
    /// `removeOnComplete` says otherwise; `None`: everything (BullMQ's
    /// default).
    pub keep_completed: Option<Retention>,
    /// The same for jobs that fail for good (`removeOnFail`).
    pub keep_failed: Option<Retention>,
}

impl ConsumerOptions {
    /// BullMQ's defaults for `queue` with `concurrency`.
    pub fn new(queue: QueueName, concurrency: usize) -> Self {
        Self {
            queue,
            concurrency,
            lock_duration: Duration::from_secs(30),
            stalled_interval: Duration::from_secs(30),
            max_stalled_count: 1,
            rate_limit: None,
            worker_name: None,
            // Idle workers block on the queue's marker for at most this
            // long; short, so that closing never waits long for them.
            drain_delay: Duration::from_secs(1),
            keep_completed: None,
            keep_failed: None,
        }
    }
}

/// At most `max` jobs start per `per` window, across all workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Jobs per window.
    pub max: u64,
    /// Window length.
    pub per: Duration,
}

/// What to do with a job once its processor returns.
#[derive(Debug)]
#[non_exhaustive]
pub enum Disposition {
    /// Completed; the value becomes the job's `returnvalue`.
    Complete(Value),
    /// The attempt failed; retried per the job's attempts and backoff
    /// unless [`Failure::unrecoverable`].
    Fail(Failure),
    /// Run again at this time; no attempt is counted.
    DelayUntil(SystemTime),
    /// The downstream limits us: stop this queue's workers for this long
    /// and put the job back; no attempt is counted.
    RateLimited(Duration),
    /// Give the job back unfinished (shutdown): it returns to the front of
    /// the queue for another worker; no attempt is counted.
    HandBack,
}

/// Runs jobs. Implemented by the worker crate's handler registry.
pub trait Processor: Send + Sync + 'static {
    /// Processes one job to a [`Disposition`].
    fn process(&self, job: ActiveJob) -> BoxFuture<'static, Disposition>;
}

/// How a job left the processor, as applied to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Completed.
    Completed,
    /// Failed this attempt; retried after the delay.
    Retrying {
        /// Delay before the next attempt, in ms.
        delay_ms: u64,
    },
    /// Failed for good.
    Failed,
    /// Rescheduled by the processor.
    Delayed,
    /// Put back because of a rate limit.
    RateLimited,
    /// Handed back at shutdown.
    HandedBack,
    /// The decision could not be applied (lock lost, Redis down); the job
    /// stays where it is and stalled-job recovery takes it from there.
    Unapplied,
}

impl Settlement {
    /// A short label (bounded, for metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Retrying { .. } => "retrying",
            Self::Failed => "failed",
            Self::Delayed => "delayed",
            Self::RateLimited => "rate_limited",
            Self::HandedBack => "handed_back",
            Self::Unapplied => "unapplied",
        }
    }
}

/// A job that left the processor, for observers (metrics, logs).
#[derive(Debug)]
pub struct SettledJob<'a> {
    /// Its queue.
    pub queue: &'a QueueName,
    /// Its id.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// What happened.
    pub settlement: Settlement,
    /// Time spent in the processor.
    pub elapsed: Duration,
}

/// Things the engine reports outside any one job.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// This worker's stalled check put a job back (its worker died or lost
    /// its lock).
    Stalled {
        /// The recovered job.
        job_id: String,
    },
    /// The engine failed a Redis operation (fetch, finish, lock renewal);
    /// it keeps going and retries.
    Error {
        /// What failed.
        message: String,
    },
}

/// Receives what a consumer does; the worker crate turns it into metrics.
pub trait ConsumerObserver: Send + Sync + 'static {
    /// A job left the processor and its disposition was applied.
    fn settled(&self, job: &SettledJob<'_>);
    /// The engine reported something.
    fn event(&self, queue: &QueueName, event: ConsumerEvent);
}

/// A job being processed, handed to the [`Processor`].
#[derive(Clone)]
pub struct ActiveJob {
    inner: Arc<ActiveInner>,
}

struct ActiveInner {
    job: Arc<bullmq::Job>,
    shared: Arc<Shared>,
}

impl fmt::Debug for ActiveJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveJob")
            .field("queue", &self.queue())
            .field("id", &self.id())
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl ActiveJob {
    /// The job id.
    pub fn id(&self) -> &str {
        self.inner.job.id()
    }

    /// The job name.
    pub fn name(&self) -> &str {
        self.inner.job.name()
    }

    /// The queue it came from.
    pub fn queue(&self) -> &QueueName {
        &self.inner.shared.queue
    }

    /// The payload (JSON; `null` if the stored data did not parse).
    pub fn data(&self) -> &Value {
        self.inner.job.data()
    }

    /// Attempts finished before this one.
    pub fn attempts_made(&self) -> u32 {
        self.inner.job.attempts_made()
    }

    /// Total attempts allowed (at least 1).
    pub fn max_attempts(&self) -> u32 {
        self.inner.job.opts().attempts.unwrap_or(0).max(1)
    }

    /// When the job was created, ms since the epoch.
    pub fn timestamp_ms(&self) -> u64 {
        self.inner.job.timestamp()
    }

    /// Records progress (any JSON) and emits BullMQ's `progress` event.
    pub async fn update_progress(&self, progress: Value) -> Result<()> {
        self.inner
            .shared
            .bull_queue
            .update_job_progress(self.id(), bullmq::JobProgress::Object(progress))
            .await?;
        Ok(())
    }

    /// Appends a line to the job's log.
    pub async fn log(&self, line: &str) -> Result<()> {
        self.inner.job.log(line).await?;
        Ok(())
    }

    /// The connection the job came through, for handlers that write to
    /// Redis themselves (through queue-core's functions).
    pub fn connection(&self) -> &Connection {
        &self.inner.shared.conn
    }

    /// The workflow step this job runs, if it is a step's job.
    pub fn workflow_step(&self) -> Option<crate::workflow::StepRef> {
        crate::workflow::StepRef::from_job_id(self.id())
    }

    /// Saves the checkpoint of the workflow step this job runs; a later try
    /// or a re-dispatch after a crash gets it from
    /// [`workflow_checkpoint`](Self::workflow_checkpoint).
    pub async fn save_workflow_checkpoint(&self, value: &Value) -> Result<()> {
        let step = self.workflow_step().ok_or_else(|| {
            crate::QueueError::InvalidOptions(format!("job {} is not a workflow step", self.id()))
        })?;
        crate::workflow::save_checkpoint(&self.inner.shared.conn, &step, value).await
    }

    /// The last checkpoint of the workflow step this job runs: the one
    /// saved in Redis, else the one the job was dispatched with.
    pub async fn workflow_checkpoint(&self) -> Result<Option<Value>> {
        let Some(step) = self.workflow_step() else {
            return Ok(None);
        };
        if let Some(saved) =
            crate::workflow::load_checkpoint(&self.inner.shared.conn, &step).await?
        {
            return Ok(Some(saved));
        }
        Ok(self
            .data()
            .get(crate::workflow::WORKFLOW_FIELD)
            .and_then(|w| w.get("checkpoint"))
            .cloned())
    }
}

/// State shared by a consumer and its in-flight jobs.
struct Shared {
    queue: QueueName,
    conn: Connection,
    bull_queue: bullmq::Queue,
    processor: Arc<dyn Processor>,
    observer: Arc<dyn ConsumerObserver>,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Cancelled when in-flight jobs must be handed back.
    abandon: CancellationToken,
    /// Set once fetching stopped for good (shutdown), so the rate-limit
    /// gate never resumes it.
    fetch_stopped: AtomicBool,
    /// Until when fetching is paused by a processor's rate limit.
    rate_limited_until: watch::Sender<Option<Instant>>,
}

/// Counts a job in flight for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A running consumer of one queue.
pub struct Consumer {
    worker: Arc<bullmq::Worker>,
    drain_delay: Duration,
    shared: Arc<Shared>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    stop: CancellationToken,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.shared.queue)
            .field("concurrency", &self.concurrency())
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Starts consuming `opts.queue`, running each job through `processor`.
    pub async fn start(
        conn: &Connection,
        opts: ConsumerOptions,
        processor: Arc<dyn Processor>,
        observer: Arc<dyn ConsumerObserver>,
    ) -> Result<Self> {
        let bull_queue = conn.bullmq_queue(&opts.queue).await?;
        let (rate_tx, rate_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            queue: opts.queue.clone(),
            conn: conn.clone(),
            bull_queue,
            processor,
            observer,
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            abandon: CancellationToken::new(),
            fetch_stopped: AtomicBool::new(false),
            rate_limited_until: rate_tx,
        });
        let adapter_shared = shared.clone();
        let processor = move |job: bullmq::Job, _cancel: bullmq::worker::CancellationToken| {
            let shared = adapter_shared.clone();
            async move { run_job(shared, job).await }
        };
        let worker = bullmq::Worker::with_options(
            opts.queue.as_str(),
            processor,
            worker_options(conn, &opts),
        )
        .await?;
        let worker = Arc::new(worker);
        let stop = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(forward_events(worker.clone(), shared.clone())),
            tokio::spawn(rate_limit_gate(
                worker.clone(),
                shared.clone(),
                rate_rx,
                stop.clone(),
            )),
        ];
        debug!(queue = %opts.queue, concurrency = opts.concurrency, "consumer started");
        Ok(Self {
            worker,
            drain_delay: opts.drain_delay,
            shared,
            tasks: std::sync::Mutex::new(tasks),
            stop,
        })
    }

    /// The queue consumed.
    pub fn queue(&self) -> &QueueName {
        &self.shared.queue
    }

    /// Jobs processed at once.
    pub fn concurrency(&self) -> usize {
        self.worker.concurrency()
    }

    /// Changes how many jobs are processed at once, live. Lowering it lets
    /// running jobs finish; it never interrupts them. 0 is ignored.
    pub fn set_concurrency(&self, concurrency: usize) {
        self.worker.set_concurrency(concurrency);
    }

    /// Jobs currently inside the processor.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Stops taking new jobs (for good); in-flight jobs go on.
    pub fn stop_fetching(&self) {
        self.shared.fetch_stopped.store(true, Ordering::SeqCst);
        self.worker.pause();
    }

    /// Waits until no job is in flight, or `deadline`; true if idle.
    pub async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), idle)
                .await
                .is_err()
            {
                return self.in_flight() == 0;
            }
        }
    }

    /// Stops every in-flight job's processor and hands the jobs back to the
    /// queue unfinished (no attempt counted), so another worker takes them
    /// at once. Jobs fetched after this call are handed back unprocessed.
    pub fn abandon_in_flight(&self) {
        self.shared.abandon.cancel();
    }

    /// Closes the engine: waits up to `grace` for finishing scripts (the
    /// engine's own bookkeeping after a job left the processor), then stops
    /// its background tasks. Call it once, after
    /// [`abandon_in_flight`](Self::abandon_in_flight) or once idle.
    pub async fn close(&self, grace: Duration) {
        self.stop_fetching();
        let deadline = Instant::now() + grace;
        while self.worker.active_count().await > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Fetching has stopped and finishing is done: the engine's own close
        // only has its idle fetch loop left to stop, which may sit in a
        // blocking wait for a new job until the drain delay ends.
        let engine_close = self.drain_delay + ENGINE_CLOSE_SLACK;
        if let Err(e) = self
            .worker
            .close(u64::try_from(engine_close.as_millis()).unwrap_or(u64::MAX))
            .await
        {
            warn!(queue = %self.shared.queue, error = %e, "closing the worker failed");
        }
        self.stop.cancel();
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            // The event forwarder ends on the engine's Closed event.
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        debug!(queue = %self.shared.queue, "consumer closed");
    }
}

/// Per-minute metrics points kept per queue: one week.
const METRICS_DATA_POINTS: usize = 7 * 24 * 60;

fn worker_options(conn: &Connection, opts: &ConsumerOptions) -> bullmq::WorkerOptions {
    let mut w = bullmq::WorkerOptions::new()
        .connection(conn.bullmq_options())
        .prefix(conn.prefix())
        .concurrency(opts.concurrency.max(1))
        .lock_duration(opts.lock_duration)
        .stalled_interval(opts.stalled_interval)
        .max_stalled_count(opts.max_stalled_count)
        .drain_delay(opts.drain_delay.max(Duration::from_secs(1)))
        .run_retry_delay(conn.settings().reconnect_delay)
        // BullMQ's own completed/failed counters and per-minute series (one
        // week), which the API's metrics and BullMQ dashboards read.
        .metrics(bullmq::MetricsOptions {
            max_data_points: METRICS_DATA_POINTS,
        })
        .skip_version_check();
    if let Some(limit) = opts.rate_limit {
        w = w.limiter(bullmq::RateLimiterOptions::new(limit.max, limit.per));
    }
    if let Some(name) = &opts.worker_name {
        w = w.name(name.clone());
    }
    // Job-level removeOnComplete/removeOnFail still win: the engine only
    // falls back to these for jobs that set none.
    if let Some(keep) = opts.keep_completed {
        w = w.remove_on_complete(retention_to_bullmq(keep));
    }
    if let Some(keep) = opts.keep_failed {
        w = w.remove_on_fail(retention_to_bullmq(keep));
    }
    w
}

/// The processor the engine calls for every fetched job.
async fn run_job(
    shared: Arc<Shared>,
    job: bullmq::Job,
) -> std::result::Result<Value, bullmq::Error> {
    let _in_flight = InFlight::enter(&shared);
    let job = Arc::new(job);
    // DEBUG, like tower-http's request spans: at INFO a span per job costs
    // about half of Drover's own per-job CPU (the fmt layer formats its
    // fields on creation). Logs written inside a job carry their ids
    // explicitly; `RUST_LOG=queue_core=debug` adds the span to everything.
    let span = debug_span!(
        "job",
        queue = %shared.queue,
        id = %job.id(),
        name = %job.name(),
        attempt = job.attempts_made() + 1
    );
    async {
        let started = Instant::now();
        let disposition = if shared.abandon.is_cancelled() {
            Disposition::HandBack
        } else {
            let active = ActiveJob {
                inner: Arc::new(ActiveInner {
                    job: job.clone(),
                    shared: shared.clone(),
                }),
            };
            let work = shared.processor.process(active);
            tokio::select! {
                biased;
                disposition = work => disposition,
                () = shared.abandon.cancelled() => Disposition::HandBack,
            }
        };
        let elapsed = started.elapsed();
        let (result, settlement) = settle(&shared, &job, disposition).await;
        shared.observer.settled(&SettledJob {
            queue: &shared.queue,
            id: job.id(),
            name: job.name(),
            settlement,
            elapsed,
        });
        result
    }
    .instrument(span)
    .await
}

/// Applies a disposition; returns what the engine must do next and what
/// happened.
async fn settle(shared: &Shared, job: &bullmq::Job, d: Disposition) -> (EngineResult, Settlement) {
    match d {
        Disposition::Complete(value) => (Ok(value), Settlement::Completed),
        Disposition::Fail(failure) => failure::apply(&shared.conn, &shared.queue, job, failure)
            .await
            .unwrap_or_else(|(what, e)| unapplied(shared, job, what, &e)),
        Disposition::DelayUntil(at) => match job.move_to_delayed(epoch_ms(at)).await {
            Ok(()) => (Err(bullmq::Error::Delayed), Settlement::Delayed),
            Err(e) => unapplied(shared, job, "move the job to delayed", &e),
        },
        Disposition::RateLimited(wait) => {
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            // Shared limiter key: every worker of the queue with a rate
            // limit configured honours it; this process pauses itself too.
            if let Err(e) = shared.bull_queue.rate_limit(wait_ms).await {
                warn!(error = %e, "could not set the queue's rate limiter");
            }
            let until = Instant::now() + wait;
            shared
                .rate_limited_until
                .send_modify(|u| *u = Some(u.map_or(until, |old| old.max(until))));
            (
                Err(bullmq::Error::RateLimited { delay_ms: wait_ms }),
                Settlement::RateLimited,
            )
        }
        Disposition::HandBack => match job.move_to_wait(None).await {
            Ok(_) => (Err(bullmq::Error::Delayed), Settlement::HandedBack),
            Err(e) => unapplied(shared, job, "hand the job back", &e),
        },
    }
}

/// A disposition that could not be written: log it and leave the job to
/// the engine's stalled-job recovery (its lock expires, another worker
/// takes it), which is safe whether or not we still own it.
fn unapplied(
    shared: &Shared,
    job: &bullmq::Job,
    what: &str,
    e: &dyn fmt::Display,
) -> (EngineResult, Settlement) {
    warn!(queue = %shared.queue, id = %job.id(), error = %e, "could not {what}");
    shared.observer.event(
        &shared.queue,
        ConsumerEvent::Error {
            message: format!("could not {what}: {e}"),
        },
    );
    (Err(bullmq::Error::Delayed), Settlement::Unapplied)
}

/// Forwards the engine's events (stalls, errors) to the observer; this also
/// drains the engine's unbounded event channel, which would otherwise grow
/// with every job.
async fn forward_events(worker: Arc<bullmq::Worker>, shared: Arc<Shared>) {
    while let Some(event) = worker.next_event().await {
        match event {
            WorkerEvent::Stalled { job_id } => shared
                .observer
                .event(&shared.queue, ConsumerEvent::Stalled { job_id }),
            WorkerEvent::Error(message) => {
                shared
                    .observer
                    .event(&shared.queue, ConsumerEvent::Error { message });
            }
            WorkerEvent::Closed => break,
            _ => {}
        }
    }
}

/// Pauses fetching while a processor-reported rate limit lasts.
async fn rate_limit_gate(
    worker: Arc<bullmq::Worker>,
    shared: Arc<Shared>,
    mut until: watch::Receiver<Option<Instant>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = until.changed() => if changed.is_err() { return },
        }
        loop {
            let Some(deadline) = *until.borrow_and_update() else {
                break;
            };
            if deadline <= Instant::now() {
                break;
            }
            worker.pause();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        if !shared.fetch_stopped.load(Ordering::SeqCst) {
            worker.resume();
        }
    }
}
