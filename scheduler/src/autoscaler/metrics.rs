//! The autoscaler's metrics: desired and actual workers per queue,
//! decisions by direction, leadership, the queue signals it reads, and
//! the errors it survives.

use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The autoscaler's metric families.
#[derive(Debug, Clone)]
pub struct AutoscalerMetrics {
    desired: IntGaugeVec,
    actual: IntGaugeVec,
    decisions: IntCounterVec,
    leader: IntGauge,
    errors: IntCounterVec,
    backlog: IntGaugeVec,
    wait: GaugeVec,
}

impl AutoscalerMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            desired: IntGaugeVec::new(
                Opts::new(
                    "drover_autoscaler_desired_workers",
                    "Workers the autoscaler wants per queue (slots for the concurrency actuator)",
                ),
                &["queue"],
            )?,
            actual: IntGaugeVec::new(
                Opts::new(
                    "drover_autoscaler_actual_workers",
                    "Workers there are per queue, as the queue's actuator counts them",
                ),
                &["queue"],
            )?,
            decisions: IntCounterVec::new(
                Opts::new(
                    "drover_autoscaler_decisions_total",
                    "Changes of a queue's desired worker count, by direction (up, down)",
                ),
                &["queue", "direction"],
            )?,
            leader: IntGauge::new(
                "drover_autoscaler_leader",
                "1 while this process leads the autoscaler",
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "drover_autoscaler_errors_total",
                    "Errors the autoscaler survived, by stage (lease, signals, publish, kubernetes)",
                ),
                &["stage"],
            )?,
            backlog: IntGaugeVec::new(
                Opts::new(
                    "drover_queue_backlog_jobs",
                    "Waiting, prioritized and due delayed jobs per queue (0 while paused), read by the autoscaler's leader",
                ),
                &["queue"],
            )?,
            wait: GaugeVec::new(
                Opts::new(
                    "drover_queue_latency_seconds",
                    "Age of the job next in line per queue, read by the autoscaler's leader",
                ),
                &["queue"],
            )?,
        };
        registry.register(Box::new(m.desired.clone()))?;
        registry.register(Box::new(m.actual.clone()))?;
        registry.register(Box::new(m.decisions.clone()))?;
        registry.register(Box::new(m.leader.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        registry.register(Box::new(m.backlog.clone()))?;
        registry.register(Box::new(m.wait.clone()))?;
        Ok(m)
    }

    pub(crate) fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
        if !leading {
            // A follower's figures would be stale: only the leader's count.
            self.desired.reset();
            self.actual.reset();
            self.backlog.reset();
            self.wait.reset();
        }
    }

    pub(crate) fn error(&self, stage: &'static str) {
        self.errors.with_label_values(&[stage]).inc();
    }

    pub(crate) fn decision(&self, queue: &str, direction: &str) {
        self.decisions.with_label_values(&[queue, direction]).inc();
    }

    pub(crate) fn observe(
        &self,
        queue: &str,
        desired: Option<u32>,
        actual: u32,
        backlog: u64,
        wait_ms: Option<u64>,
    ) {
        match desired {
            Some(d) => self.desired.with_label_values(&[queue]).set(i64::from(d)),
            None => {
                let _ = self.desired.remove_label_values(&[queue]);
            }
        }
        self.actual
            .with_label_values(&[queue])
            .set(i64::from(actual));
        self.backlog
            .with_label_values(&[queue])
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        self.wait
            .with_label_values(&[queue])
            .set(wait_ms.unwrap_or(0) as f64 / 1_000.0);
    }
}
