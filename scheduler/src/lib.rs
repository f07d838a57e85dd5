//! `drover scheduler`: keeps Redis holding the declared schedules.
//!
//! Schedules are declared in the config file (`[[schedule]]`) and through
//! the API or `drover schedule set` (kept in the durable store). BullMQ's
//! job schedulers do the ticking: each run is made by the worker that takes
//! the previous one, so nothing here fires jobs. The [`Reconciler`] makes
//! Redis match the declarations, on start and every period:
//!
//! - a declared schedule missing from Redis (a flush, a restart without
//!   persistence, a first start) is created;
//! - one whose definition changed, or that another client rewrote, is
//!   updated;
//! - one Drover owns that is no longer declared is removed;
//! - schedulers Drover does not own (made by a Node or Python client) are
//!   never touched, even when a declaration has their id;
//! - ticks missed while nothing ran are skipped with a log line or caught
//!   up, by each schedule's policy.
//!
//! A pass runs under a Redis lease, so any number of reconcilers produce
//! the state one would, and a pass that changes nothing writes nothing.
//!
//! The same process runs the workflow [`Orchestrator`], which moves
//! workflow runs forward step by step (the engine is
//! `queue_core::workflow`).
//!
//! The crate also holds the [`autoscaler`]'s control loop, which
//! `drover serve` runs: like the reconciler it is a control-plane loop
//! over Redis with a lease, so it lives here rather than in a crate of its
//! own.

pub mod autoscaler;
mod orchestrator;

pub use orchestrator::{Orchestrator, OrchestratorMetrics};

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use queue_core::schedule::{self, MissedTicks, Owner, Schedule, ScheduleLock, live};
use queue_core::store::Store;
use queue_core::{Connection, QueueError, QueueName, now_ms};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The `[scheduler]` table of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// How often Redis is brought back in line with the declarations.
    pub reconcile_interval_ms: u64,
    /// Most jobs one catch-up adds per schedule (the latest ticks).
    pub catch_up_max: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            reconcile_interval_ms: 10_000,
            catch_up_max: 100,
        }
    }
}

impl SchedulerConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.reconcile_interval_ms < 100 {
            return Err("[scheduler] reconcile_interval_ms must be at least 100".into());
        }
        if self.catch_up_max == 0 || self.catch_up_max > 10_000 {
            return Err("[scheduler] catch_up_max must be between 1 and 10000".into());
        }
        Ok(())
    }

    fn period(&self) -> Duration {
        Duration::from_millis(self.reconcile_interval_ms)
    }

    /// The lease outlives a pass by far (a pass is a few round trips per
    /// schedule) but a killed holder only briefly.
    fn lease(&self) -> Duration {
        (self.period() * 2).max(Duration::from_secs(5))
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Another reconciler held the lease; this pass did nothing.
    pub lease_busy: bool,
    /// Declared schedules Redis lacked, now created.
    pub created: Vec<String>,
    /// Schedules whose definition differed, now updated.
    pub updated: Vec<String>,
    /// Schedules Drover owned that are no longer declared, now removed.
    pub removed: Vec<String>,
    /// Declared schedules already as declared.
    pub unchanged: usize,
    /// Declared ids held by schedulers Drover does not own; left alone.
    pub foreign: Vec<String>,
    /// Declared schedules past their end date, not created.
    pub ended: Vec<String>,
    /// Declared schedules that could not be applied, with the reason.
    pub failed: Vec<(String, String)>,
    /// Missed ticks found: schedule, count, and jobs added for them.
    pub missed: Vec<(String, u64, usize)>,
}

impl PassReport {
    /// Whether the pass changed Redis.
    pub fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.removed.is_empty())
    }
}

/// Where a declaration came from.
#[derive(Debug, Clone)]
struct Declared {
    schedule: Schedule,
    owner: Owner,
}

fn label(queue: &QueueName, id: &str) -> String {
    format!("{queue}/{id}")
}

/// Brings Redis in line with the declared schedules.
#[derive(Debug)]
pub struct Reconciler {
    conn: Connection,
    store: Option<Store>,
    from_config: Vec<Schedule>,
    config: SchedulerConfig,
    /// Conflicts already logged, so each is logged once.
    warned: Mutex<HashSet<String>>,
}

impl Reconciler {
    /// A reconciler for the schedules of the config file and, with a
    /// store, those declared through the API and the CLI.
    pub fn new(
        conn: Connection,
        store: Option<Store>,
        from_config: Vec<Schedule>,
        config: SchedulerConfig,
    ) -> Self {
        Self {
            conn,
            store,
            from_config,
            config,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Runs passes until `stop`, the first at once; a failed pass is
    /// logged and the next one tried a period later.
    pub async fn run(&self, stop: CancellationToken) {
        info!(
            declared_in_config = self.from_config.len(),
            interval_ms = self.config.reconcile_interval_ms,
            "schedule reconciler started"
        );
        loop {
            match self.pass().await {
                Ok(report) if report.lease_busy => {
                    debug!("another reconciler holds the schedule lease; skipping this pass");
                }
                Ok(report) => log_report(&report),
                Err(e) => warn!(error = %e, "schedule reconcile pass failed; retrying next period"),
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.config.period()) => {}
            }
        }
        info!("schedule reconciler stopped");
    }

    /// One pass, if the lease is free.
    pub async fn pass(&self) -> Result<PassReport, QueueError> {
        let Some(lock) = ScheduleLock::try_acquire(&self.conn, self.config.lease()).await? else {
            return Ok(PassReport {
                lease_busy: true,
                ..PassReport::default()
            });
        };
        let result = self.pass_locked().await;
        if let Err(e) = lock.release().await {
            warn!(error = %e, "could not release the schedule lease; it expires by itself");
        }
        result
    }

    async fn declared(&self) -> Result<BTreeMap<(QueueName, String), Declared>, QueueError> {
        let mut declared = BTreeMap::new();
        if let Some(store) = &self.store {
            for stored in store.list_schedules().await? {
                let s = stored.schedule;
                declared.insert(
                    (s.queue().clone(), s.id().to_string()),
                    Declared {
                        schedule: s,
                        owner: Owner::Api,
                    },
                );
            }
        }
        for s in &self.from_config {
            let key = (s.queue().clone(), s.id().to_string());
            if declared.contains_key(&key) {
                self.warn_once(
                    format!("shadow:{}", label(&key.0, &key.1)),
                    &format!(
                        "schedule {} is declared both in the config file and through the API; the config file wins",
                        label(&key.0, &key.1)
                    ),
                );
            }
            declared.insert(
                key,
                Declared {
                    schedule: s.clone(),
                    owner: Owner::Config,
                },
            );
        }
        Ok(declared)
    }

    async fn pass_locked(&self) -> Result<PassReport, QueueError> {
        let mut report = PassReport::default();
        let declared = self.declared().await?;
        let owned: BTreeMap<(QueueName, String), schedule::OwnerRecord> = live::owned(&self.conn)
            .await?
            .into_iter()
            .map(|(q, id, r)| ((q, id), r))
            .collect();
        let now = now_ms();
        for ((queue, id), d) in &declared {
            let name = label(queue, id);
            let record = owned.get(&(queue.clone(), id.clone()));
            let current = live::get(&self.conn, queue, id).await?;
            if record.is_none() && current.is_some() {
                self.warn_once(
                    format!("foreign:{name}"),
                    &format!(
                        "schedule {name} is declared but Redis holds a scheduler of that id that Drover did not make (another BullMQ client?); leaving it alone"
                    ),
                );
                report.foreign.push(name);
                continue;
            }
            let up_to_date = match (record, &current) {
                (Some(r), Some(live)) => {
                    r.applied
                        && r.owner == d.owner
                        && r.fingerprint == d.schedule.fingerprint()
                        && live::matches_live(&d.schedule, live)
                }
                _ => false,
            };
            if !up_to_date {
                if d.schedule.spec().end_date.is_some_and(|end| end <= now) {
                    if current.is_none() {
                        report.ended.push(name);
                    } else {
                        report.unchanged += 1;
                    }
                    continue;
                }
                match live::apply(&self.conn, &d.schedule, d.owner).await {
                    Ok(()) if current.is_none() => report.created.push(name.clone()),
                    Ok(()) => report.updated.push(name.clone()),
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) => {
                        report.failed.push((name, e.to_string()));
                        continue;
                    }
                }
            } else {
                report.unchanged += 1;
            }
            if let Some(missed) =
                live::account_missed(&self.conn, &d.schedule, self.config.catch_up_max).await?
            {
                log_missed(&name, d.schedule.spec().missed, &missed);
                report
                    .missed
                    .push((name.clone(), missed.ticks, missed.added.len()));
            }
        }
        for (queue, id) in owned.keys() {
            if !declared.contains_key(&(queue.clone(), id.clone())) {
                live::remove(&self.conn, queue, id).await?;
                report.removed.push(label(queue, id));
            }
        }
        Ok(report)
    }

    fn warn_once(&self, key: String, message: &str) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key);
        if first {
            warn!("{message}");
        }
    }
}

fn log_missed(name: &str, policy: MissedTicks, missed: &live::Missed) {
    let first = missed
        .first_ms
        .map_or_else(|| "?".into(), |t| t.to_string());
    let last = missed.last_ms.map_or_else(|| "?".into(), |t| t.to_string());
    match policy {
        MissedTicks::Skip => warn!(
            schedule = name,
            ticks = missed.ticks,
            first_ms = first,
            last_ms = last,
            "schedule {name} missed {} tick(s) while nothing ran it; policy skip: they will not run",
            missed.ticks
        ),
        MissedTicks::CatchUp => info!(
            schedule = name,
            ticks = missed.ticks,
            first_ms = first,
            last_ms = last,
            "schedule {name} missed {} tick(s) while nothing ran it; policy catch-up: added {} job(s)",
            missed.ticks,
            missed.added.len()
        ),
    }
}

fn log_report(report: &PassReport) {
    for name in &report.created {
        info!(schedule = name, "schedule created in redis");
    }
    for name in &report.updated {
        info!(schedule = name, "schedule updated in redis");
    }
    for name in &report.removed {
        info!(
            schedule = name,
            "schedule no longer declared; removed from redis"
        );
    }
    for name in &report.ended {
        debug!(
            schedule = name,
            "schedule is past its end date; not created"
        );
    }
    for (name, reason) in &report.failed {
        warn!(schedule = name, reason, "schedule could not be applied");
    }
    debug!(
        unchanged = report.unchanged,
        changed = report.changed(),
        "schedule reconcile pass done"
    );
}
