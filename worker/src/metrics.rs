//! The worker's Prometheus metrics, fed by the consumers it runs.
//!
//! Labels are bounded: `queue`, job `name` (capped per queue, see
//! [`MAX_NAMES_PER_QUEUE`]), `outcome` and error `kind`. Never a job id or
//! an error text.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use queue_core::{ConsumerEvent, ConsumerObserver, QueueName, SettledJob, Settlement};
use tracing::{debug, warn};

/// Distinct job names tracked per queue; later names are counted as
/// `other`, so a producer inventing names cannot blow up the series count.
pub const MAX_NAMES_PER_QUEUE: usize = 100;

/// The worker's metrics.
#[derive(Debug)]
pub struct WorkerMetrics {
    processed: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    concurrency: IntGaugeVec,
    errors: IntCounterVec,
    stalled: IntCounterVec,
    names: Mutex<HashMap<QueueName, HashSet<String>>>,
    handed_back: AtomicU64,
    error_log: Mutex<HashMap<(String, &'static str), LogWindow>>,
}

#[derive(Debug)]
struct LogWindow {
    opened: Instant,
    suppressed: u64,
}

/// Errors of one kind are logged at most once per this window per queue;
/// the count of the ones not logged is printed with the next.
const ERROR_LOG_WINDOW: Duration = Duration::from_secs(10);

impl WorkerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let processed = IntCounterVec::new(
            Opts::new(
                "drover_jobs_processed_total",
                "Jobs that left a handler, by queue, job name and outcome \
                 (completed, retrying, failed, delayed, rate_limited, handed_back, unapplied)",
            ),
            &["queue", "name", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "drover_job_duration_seconds",
                "Time a job spent in its handler",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0,
            ]),
            &["queue", "name"],
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new("drover_jobs_in_flight", "Jobs inside a handler now"),
            &["queue"],
        )?;
        let concurrency = IntGaugeVec::new(
            Opts::new(
                "drover_worker_concurrency",
                "Jobs this worker processes at once, per queue",
            ),
            &["queue"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "drover_worker_errors_total",
                "Errors the worker survived, by queue and kind (engine, heartbeat)",
            ),
            &["queue", "kind"],
        )?;
        let stalled = IntCounterVec::new(
            Opts::new(
                "drover_jobs_stalled_total",
                "Jobs this worker's stalled check returned to the queue",
            ),
            &["queue"],
        )?;
        registry.register(Box::new(processed.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(concurrency.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(stalled.clone()))?;
        Ok(Self {
            processed,
            duration,
            in_flight,
            concurrency,
            errors,
            stalled,
            names: Mutex::new(HashMap::new()),
            handed_back: AtomicU64::new(0),
            error_log: Mutex::new(HashMap::new()),
        })
    }

    /// Metrics registered nowhere (tests, embedding without `/metrics`).
    pub fn unregistered() -> Self {
        #[allow(clippy::expect_used)] // a fresh registry cannot hold duplicates
        Self::new(&Registry::new()).expect("metrics register in a fresh registry")
    }

    /// The in-flight gauge of `queue`.
    pub(crate) fn in_flight(&self, queue: &QueueName) -> InFlightGauge {
        InFlightGauge(self.in_flight.with_label_values(&[queue.as_str()]))
    }

    /// Records a queue's concurrency.
    pub(crate) fn set_concurrency(&self, queue: &QueueName, concurrency: usize) {
        self.concurrency
            .with_label_values(&[queue.as_str()])
            .set(i64::try_from(concurrency).unwrap_or(i64::MAX));
    }

    /// Jobs handed back at shutdown so far.
    pub fn handed_back(&self) -> u64 {
        self.handed_back.load(Ordering::Relaxed)
    }

    /// Counts and (rate-limited) logs an error the worker survived.
    pub(crate) fn error(&self, queue: &str, kind: &'static str, message: &str) {
        self.errors.with_label_values(&[queue, kind]).inc();
        let mut log = self
            .error_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = log
            .entry((queue.to_string(), kind))
            .or_insert_with(|| LogWindow {
                opened: Instant::now() - ERROR_LOG_WINDOW,
                suppressed: 0,
            });
        if window.opened.elapsed() >= ERROR_LOG_WINDOW {
            warn!(queue, kind, suppressed = window.suppressed, "{message}");
            window.opened = Instant::now();
            window.suppressed = 0;
        } else {
            window.suppressed += 1;
        }
    }

    /// The `name` label for a job: its name while the queue has fewer than
    /// [`MAX_NAMES_PER_QUEUE`] names, else `other`.
    fn name_label<'a>(&self, queue: &QueueName, name: &'a str) -> &'a str {
        let mut names = self
            .names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The common case (a known name) allocates nothing.
        if names.get(queue).is_some_and(|seen| seen.contains(name)) {
            return name;
        }
        let seen = names.entry(queue.clone()).or_default();
        if seen.len() < MAX_NAMES_PER_QUEUE {
            seen.insert(name.to_string());
            return name;
        }
        "other"
    }
}

impl ConsumerObserver for WorkerMetrics {
    fn settled(&self, job: &SettledJob<'_>) {
        let name = self.name_label(job.queue, job.name);
        let queue = job.queue.as_str();
        self.processed
            .with_label_values(&[queue, name, job.settlement.as_str()])
            .inc();
        self.duration
            .with_label_values(&[queue, name])
            .observe(job.elapsed.as_secs_f64());
        if job.settlement == Settlement::HandedBack {
            self.handed_back.fetch_add(1, Ordering::Relaxed);
        }
        debug!(
            queue,
            id = job.id,
            name = job.name,
            outcome = job.settlement.as_str(),
            elapsed_ms = job.elapsed.as_millis() as u64,
            "job settled"
        );
    }

    fn event(&self, queue: &QueueName, event: ConsumerEvent) {
        match event {
            ConsumerEvent::Stalled { job_id } => {
                self.stalled.with_label_values(&[queue.as_str()]).inc();
                warn!(queue = %queue, id = %job_id, "stalled job returned to the queue");
            }
            ConsumerEvent::Error { message } => self.error(queue.as_str(), "engine", &message),
            _ => {}
        }
    }
}

/// A gauge of jobs in flight; [`enter`](Self::enter) counts one while the
/// returned guard lives.
#[derive(Debug, Clone)]
pub(crate) struct InFlightGauge(IntGauge);

impl InFlightGauge {
    pub(crate) fn enter(&self) -> InFlightGuard {
        self.0.inc();
        InFlightGuard(self.0.clone())
    }
}

#[derive(Debug)]
pub(crate) struct InFlightGuard(IntGauge);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_capped_per_queue() {
        let metrics = WorkerMetrics::unregistered();
        let q = QueueName::new("q").unwrap();
        for i in 0..MAX_NAMES_PER_QUEUE {
            let name = format!("n{i}");
            assert_eq!(metrics.name_label(&q, &name), name);
        }
        assert_eq!(metrics.name_label(&q, "one-too-many"), "other");
        assert_eq!(
            metrics.name_label(&q, "n0"),
            "n0",
            "known names keep their label"
        );
        let other = QueueName::new("other-queue").unwrap();
        assert_eq!(metrics.name_label(&other, "fresh"), "fresh");
    }
}
