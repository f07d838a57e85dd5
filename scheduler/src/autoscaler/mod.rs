//! The autoscaler's control loop, run by every `drover serve`: one of them
//! leads (holds the lease in Redis), the others stand by and take over
//! within about a lease period when the leader dies.
//!
//! Each tick the leader reads every queue's signals, the workers'
//! heartbeats and the supervisors', turns each scaled queue's signals into
//! a desired worker count (`queue_core::autoscale::recommend` and
//! `Behavior`), and publishes the desired states, statuses, decisions and
//! history in one fenced write. Actuators act on what is published: worker
//! processes adopt their concurrency share, supervisors start and drain
//! processes, and for the kubernetes actuator the leader itself sets the
//! Deployment's replicas after the write succeeded.

mod actuate;
mod config;
mod kubernetes;
mod memory;
mod metrics;
mod tick;

pub use config::{AutoscalerConfig, AutoscalerSettings, KubernetesConfig};
pub use kubernetes::{KubeClient, KubeError, KubeTarget, Scale, TokenSource};
pub use metrics::AutoscalerMetrics;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use queue_core::autoscale::{Lease, Retention};
use queue_core::{Connection, QueueDiscovery, now_ms};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::memory::Leading;

/// The control loop of one `drover serve`.
#[derive(Debug)]
pub struct Autoscaler {
    conn: Connection,
    settings: AutoscalerSettings,
    metrics: Option<AutoscalerMetrics>,
    kube: Option<KubeClient>,
    holder: String,
    last_logged: std::sync::Mutex<HashMap<&'static str, Instant>>,
}

/// Survived errors of one stage are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Autoscaler {
    /// A loop over `conn` with `settings`; `holder` names this process in
    /// the lease (host, pid and a random part); `kube` is needed by
    /// policies with the kubernetes actuator.
    pub fn new(
        conn: Connection,
        settings: AutoscalerSettings,
        metrics: Option<AutoscalerMetrics>,
        kube: Option<KubeClient>,
        holder: String,
    ) -> Self {
        Self {
            conn,
            settings,
            metrics,
            kube,
            holder,
            last_logged: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Runs the loop until `stop`; a leader lets go of its lease on the
    /// way out, so another instance takes over at once.
    pub fn spawn(self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    async fn run(self, stop: CancellationToken) {
        info!(holder = %self.holder, "autoscaler started: standing by for the leader lease");
        let discovery = QueueDiscovery::new(self.conn.clone(), self.settings.discovery_interval);
        let mut leading: Option<Leading> = None;
        loop {
            let started = tokio::time::Instant::now();
            if leading.is_none() {
                leading = self.try_lead().await;
            }
            if let Some(mut lead) = leading.take() {
                match tick::run(&self, &mut lead, &discovery).await {
                    Ok(true) => {
                        lead.renewed = Instant::now();
                        leading = Some(lead);
                    }
                    Ok(false) => {
                        warn!(
                            epoch = lead.lease.epoch(),
                            "autoscaler: the leader lease was taken over; standing by"
                        );
                        self.set_leader(false);
                    }
                    Err((stage, e)) => {
                        self.survived(stage, &e);
                        if lead.renewed.elapsed() >= self.settings.lease_ttl {
                            warn!(
                                "autoscaler: the lease could not be renewed in time; standing by"
                            );
                            self.set_leader(false);
                        } else {
                            leading = Some(lead);
                        }
                    }
                }
            }
            let pause = if leading.is_some() {
                self.settings.interval
            } else {
                // Followers try a few times per lease period, jittered so
                // they do not all ask at once.
                (self.settings.lease_ttl / 5).mul_f64(0.9 + fastrand::f64() * 0.2)
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(started + pause) => {}
            }
        }
        if let Some(lead) = leading {
            match lead.lease.release(&self.conn).await {
                Ok(_) => info!("autoscaler: released the leader lease"),
                Err(e) => self.survived("lease", &e),
            }
        }
        self.set_leader(false);
        info!("autoscaler stopped");
    }

    async fn try_lead(&self) -> Option<Leading> {
        match Lease::try_acquire(&self.conn, &self.holder, self.settings.lease_ttl, now_ms()).await
        {
            Ok(Some(lease)) => {
                info!(epoch = lease.epoch(), "autoscaler: leading");
                self.set_leader(true);
                Some(Leading::new(lease))
            }
            Ok(None) => None,
            Err(e) => {
                self.survived("lease", &e);
                None
            }
        }
    }

    fn set_leader(&self, leading: bool) {
        if let Some(m) = &self.metrics {
            m.set_leader(leading);
        }
    }

    /// Counts an error the loop goes on after, and logs it (at most once
    /// per [`LOG_EVERY`] per stage).
    fn survived(&self, stage: &'static str, e: &dyn std::fmt::Display) {
        if let Some(m) = &self.metrics {
            m.error(stage);
        }
        let now = Instant::now();
        let mut logged = self
            .last_logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = logged
            .get(stage)
            .is_none_or(|at| now.duration_since(*at) >= LOG_EVERY);
        if due {
            logged.insert(stage, now);
            warn!(stage, error = %e, "autoscaler: error survived; retrying at the next tick");
        }
    }

    fn retention(&self) -> Retention {
        Retention {
            lease_ttl: self.settings.lease_ttl,
            decisions: self.settings.decisions_kept,
            history_samples: self.settings.history_samples,
            history_ttl: self.settings.interval
                * 2
                * u32::try_from(self.settings.history_samples)
                    .unwrap_or(u32::MAX)
                    .min(100_000),
        }
    }
}
