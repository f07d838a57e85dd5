//! The workflow orchestrator: ticks the engine (`queue_core::workflow`)
//! until told to stop, and reports what it does as metrics.
//!
//! Any number may run against PostgreSQL: each run is advanced under its
//! row lock, skipped by the others meanwhile. On SQLite run one.

use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use queue_core::store::Store;
use queue_core::workflow::{self, TickReport};
use queue_core::{Connection, QueueError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Runs advanced per tick at most.
const RUNS_PER_TICK: u32 = 500;
/// Pause between ticks when the last one found nothing to do.
const IDLE: Duration = Duration::from_millis(200);

/// The orchestrator's metrics.
#[derive(Debug, Clone)]
pub struct OrchestratorMetrics {
    step_seconds: Histogram,
    lag_seconds: Histogram,
    dispatched: IntCounter,
    redispatched: IntCounter,
    steps_failed: IntCounter,
    runs_finished: IntCounterVec,
    tick_seconds: Histogram,
}

impl OrchestratorMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let buckets = vec![
            0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ];
        let m = Self {
            step_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "drover_workflow_step_duration_seconds",
                    "Time from a step's dispatch to its recorded completion",
                )
                .buckets(buckets.clone()),
            )?,
            lag_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "drover_workflow_orchestration_lag_seconds",
                    "Time from a step job finishing in Redis to the orchestrator recording it",
                )
                .buckets(buckets.clone()),
            )?,
            dispatched: IntCounter::new(
                "drover_workflow_steps_dispatched_total",
                "Step jobs added (dispatches and re-dispatches)",
            )?,
            redispatched: IntCounter::new(
                "drover_workflow_steps_redispatched_total",
                "Step jobs found missing and added again under the same id",
            )?,
            steps_failed: IntCounter::new(
                "drover_workflow_steps_failed_total",
                "Steps whose job failed after all its tries",
            )?,
            runs_finished: IntCounterVec::new(
                Opts::new(
                    "drover_workflow_runs_finished_total",
                    "Runs that ended, by final state",
                ),
                &["state"],
            )?,
            tick_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "drover_workflow_tick_seconds",
                    "Duration of one orchestrator tick",
                )
                .buckets(buckets),
            )?,
        };
        registry.register(Box::new(m.step_seconds.clone()))?;
        registry.register(Box::new(m.lag_seconds.clone()))?;
        registry.register(Box::new(m.dispatched.clone()))?;
        registry.register(Box::new(m.redispatched.clone()))?;
        registry.register(Box::new(m.steps_failed.clone()))?;
        registry.register(Box::new(m.runs_finished.clone()))?;
        registry.register(Box::new(m.tick_seconds.clone()))?;
        Ok(m)
    }

    fn observe(&self, report: &TickReport, took: Duration) {
        self.tick_seconds.observe(took.as_secs_f64());
        for (step_ms, lag_ms) in &report.completed {
            self.step_seconds.observe(*step_ms as f64 / 1000.0);
            self.lag_seconds.observe(*lag_ms as f64 / 1000.0);
        }
        self.dispatched.inc_by(report.dispatched as u64);
        self.redispatched.inc_by(report.redispatched as u64);
        self.steps_failed.inc_by(report.failed as u64);
        for state in &report.finished {
            self.runs_finished
                .with_label_values(&[state.as_str()])
                .inc();
        }
    }
}

/// Advances workflow runs until stopped.
#[derive(Debug)]
pub struct Orchestrator {
    conn: Connection,
    store: Store,
    metrics: Option<OrchestratorMetrics>,
}

impl Orchestrator {
    /// An orchestrator over `store` and Redis.
    pub fn new(conn: Connection, store: Store, metrics: Option<OrchestratorMetrics>) -> Self {
        Self {
            conn,
            store,
            metrics,
        }
    }

    /// One tick.
    pub async fn tick(&self) -> Result<TickReport, QueueError> {
        let started = Instant::now();
        let report = workflow::tick(&self.conn, &self.store, RUNS_PER_TICK).await?;
        if let Some(m) = &self.metrics {
            m.observe(&report, started.elapsed());
        }
        Ok(report)
    }

    /// Ticks until `stop`: at once again after a tick that did something,
    /// after a short pause otherwise, after a second when the store or
    /// Redis is unavailable.
    pub async fn run(&self, stop: CancellationToken) {
        info!("workflow orchestrator started");
        loop {
            let pause = match self.tick().await {
                Ok(r) if r.dispatched > 0 || !r.completed.is_empty() || !r.finished.is_empty() => {
                    Duration::ZERO
                }
                Ok(_) => IDLE,
                Err(e) => {
                    warn!(error = %e, "workflow tick failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        info!("workflow orchestrator stopped");
    }
}
