//! One control tick of the leader.

use std::collections::BTreeMap;
use std::time::Duration;

use queue_core::autoscale::{
    self, Actuator, Decision, DesiredState, Direction, HistorySample, Policy, PolicySource,
    PolicySpec, QueueSample, QueueStatus, Rates, SignalsView, SupervisorInfo, Tick,
};
use queue_core::registry::{self, WorkerInfo};
use queue_core::{QueueDiscovery, QueueError, QueueName, now_ms};
use tracing::info;

use super::Autoscaler;
use super::actuate::{actuate_kubernetes, read_scale};
use super::memory::{Leading, QueueControl, seed};

/// Heartbeat records older than this are deleted when read.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3_600);

pub(super) type Effective = BTreeMap<QueueName, (PolicySpec, Policy, PolicySource)>;

/// Runs one tick; `Ok(false)` when the lease turned out to be lost. An
/// error carries the stage it happened in.
pub(super) async fn run(
    a: &Autoscaler,
    lead: &mut Leading,
    discovery: &QueueDiscovery,
) -> Result<bool, (&'static str, QueueError)> {
    let conn = &a.conn;
    let now = now_ms();
    let policies = effective_policies(a, discovery).await?;
    let mut queues: Vec<QueueName> = discovery
        .queues()
        .await
        .map_err(|e| ("signals", e))?
        .to_vec();
    queues.extend(policies.keys().cloned());
    queues.sort();
    queues.dedup();
    let due_within = u64::try_from(a.settings.interval.as_millis()).unwrap_or(u64::MAX);
    let samples = autoscale::read_samples(conn, &queues, now, due_within)
        .await
        .map_err(|e| ("signals", e))?;
    let workers = registry::live_workers(conn, a.settings.heartbeat_timeout, FORGET_AFTER)
        .await
        .map_err(|e| ("signals", e))?;
    let supervisors = if policies.values().any(|p| p.1.actuator == Actuator::Process) {
        autoscale::live_supervisors(conn, a.settings.heartbeat_timeout)
            .await
            .map_err(|e| ("signals", e))?
    } else {
        Vec::new()
    };
    for queue in policies.keys() {
        if !lead.queues.contains_key(queue) {
            let control = seed(a, queue, &policies[queue].1).await;
            lead.queues.insert(queue.clone(), control);
        }
    }
    lead.queues.retain(|q, _| policies.contains_key(q));

    let mut out = Tick::default();
    for (queue, sample) in queues.iter().zip(&samples) {
        let consuming: Vec<(&WorkerInfo, u32)> = workers
            .iter()
            .filter_map(|w| {
                let wq = w.queues.iter().find(|wq| wq.queue == queue.as_str())?;
                Some((w, u32::try_from(wq.concurrency).unwrap_or(u32::MAX)))
            })
            .collect();
        let supervising: Vec<&SupervisorInfo> = supervisors
            .iter()
            .filter(|s| s.queues.iter().any(|q| q.queue == queue.as_str()))
            .collect();
        let live_workers = u32::try_from(consuming.len()).unwrap_or(u32::MAX);
        let live_slots: u32 = consuming.iter().map(|(_, c)| *c).sum();
        let mut view = SignalsView {
            backlog: sample.backlog(),
            active: sample.active,
            paused: sample.paused,
            oldest_wait_ms: sample.oldest_wait_ms,
            live_workers,
            live_slots,
            global_concurrency: sample.global_concurrency,
            rate_limit_max: sample.rate_limit_max,
            rate_limit_duration_ms: sample.rate_limit_duration_ms,
            ..SignalsView::default()
        };
        let Some((spec, policy, source)) = policies.get(queue) else {
            record_unscaled(a, &mut out, queue, sample, view, now);
            continue;
        };
        let Some(control) = lead.queues.get_mut(queue) else {
            continue;
        };
        let rates = control.rates.observe(sample);
        view.arrival_per_sec = rates.arrival_per_sec;
        view.completion_per_sec = rates.completion_per_sec;
        view.job_ms = rates.service_secs().map(|s| s * 1_000.0);
        if policy.actuator == Actuator::Kubernetes {
            control.scale = read_scale(a, policy).await;
        }
        let actual = match policy.actuator {
            Actuator::Concurrency => live_slots,
            Actuator::Process => supervising
                .iter()
                .flat_map(|s| s.queues.iter().filter(|q| q.queue == queue.as_str()))
                .map(|q| q.running)
                .sum(),
            Actuator::Kubernetes => control.scale.as_ref().map_or(0, |s| s.current),
            Actuator::External => live_workers,
        };
        let slots_per_worker =
            slots_per_worker(policy, queue, &supervising, live_workers, live_slots);
        let decided = decide(
            control,
            policy,
            sample,
            &rates,
            actual,
            slots_per_worker,
            now,
        );
        if let Some((from, reason)) = &decided.change {
            let direction = if decided.desired > *from {
                Direction::Up
            } else {
                Direction::Down
            };
            info!(queue = %queue, from, to = decided.desired, direction = direction.as_str(), reason = %reason, "autoscaler decision");
            if let Some(m) = &a.metrics {
                m.decision(queue.as_str(), direction.as_str());
            }
            out.decisions.push(Decision {
                at_ms: now,
                queue: queue.to_string(),
                from: *from,
                to: decided.desired,
                direction,
                reason: reason.clone(),
                signals: view.clone(),
                epoch: lead.lease.epoch(),
            });
        }
        let members: Vec<String> = match policy.actuator {
            Actuator::Concurrency => consuming.iter().map(|(w, _)| w.id.clone()).collect(),
            Actuator::Process => supervising.iter().map(|s| s.id.clone()).collect(),
            Actuator::Kubernetes | Actuator::External => Vec::new(),
        };
        let floor = u32::from(policy.actuator == Actuator::Concurrency);
        out.desired.push(DesiredState {
            queue: queue.to_string(),
            actuator: policy.actuator,
            workers: decided.desired,
            assignments: autoscale::share(decided.desired, &members, floor),
            epoch: lead.lease.epoch(),
            at_ms: now,
        });
        out.history.push((
            queue.clone(),
            HistorySample {
                at_ms: now,
                desired: decided.desired,
                actual,
                recommended: decided.recommended,
            },
        ));
        if let Some(m) = &a.metrics {
            m.observe(
                queue.as_str(),
                Some(decided.desired),
                actual,
                sample.backlog(),
                sample.oldest_wait_ms,
            );
        }
        out.status.push(QueueStatus {
            queue: queue.to_string(),
            policy: Some(spec.clone()),
            source: Some(*source),
            actuator: Some(policy.actuator),
            desired: Some(decided.desired),
            actual,
            recommended: Some(decided.recommended),
            reason: Some(decided.reason),
            signals: view,
            at_ms: now,
        });
    }
    let written = autoscale::publish(conn, &lead.lease, &out, &a.retention())
        .await
        .map_err(|e| ("publish", e))?;
    if written {
        actuate_kubernetes(a, lead, &policies).await;
    }
    Ok(written)
}

/// The policy of each scaled queue: the API's, else the config file's
/// own, else its default (for discovered queues).
async fn effective_policies(
    a: &Autoscaler,
    discovery: &QueueDiscovery,
) -> Result<Effective, (&'static str, QueueError)> {
    let mut out: Effective = BTreeMap::new();
    if let Some((spec, policy)) = &a.settings.default {
        for q in discovery.queues().await.map_err(|e| ("signals", e))?.iter() {
            out.insert(
                q.clone(),
                (spec.clone(), policy.clone(), PolicySource::Default),
            );
        }
    }
    for (q, (spec, policy)) in &a.settings.queues {
        out.insert(
            q.clone(),
            (spec.clone(), policy.clone(), PolicySource::Config),
        );
    }
    let api = autoscale::api_policies(&a.conn)
        .await
        .map_err(|e| ("policies", e))?;
    for (q, spec) in api {
        match spec.check() {
            Ok(policy) => {
                out.insert(q, (spec, policy, PolicySource::Api));
            }
            Err(e) => a.survived("policies", &e),
        }
    }
    Ok(out)
}

struct Decided {
    desired: u32,
    recommended: u32,
    reason: String,
    /// The count before, and why, when it changed.
    change: Option<(u32, String)>,
}

fn decide(
    control: &mut QueueControl,
    policy: &Policy,
    sample: &QueueSample,
    rates: &Rates,
    actual: u32,
    slots_per_worker: f64,
    now: u64,
) -> Decided {
    let first = control.desired.is_none();
    let current = control
        .desired
        .unwrap_or_else(|| actual.clamp(policy.min_workers, policy.max_workers));
    let rec = autoscale::recommend(policy, sample, rates, current, slots_per_worker);
    let outcome = control.behavior.apply(policy, now, current, rec.workers);
    let reason = match outcome.held_by {
        Some(held) => format!("{}; {held}", rec.reason),
        None => rec.reason,
    };
    control.desired = Some(outcome.desired);
    let from = if first { actual } else { current };
    let change = (outcome.desired != from).then(|| {
        let why = if first {
            format!("autoscaling starts; {reason}")
        } else {
            reason.clone()
        };
        (from, why)
    });
    Decided {
        desired: outcome.desired,
        recommended: rec.workers,
        reason,
        change,
    }
}

/// Slots one worker brings: 1 for the concurrency actuator (a worker is
/// a slot); else the policy's, the supervisors' children's, or the
/// average of the live workers'.
fn slots_per_worker(
    policy: &Policy,
    queue: &QueueName,
    supervising: &[&SupervisorInfo],
    live_workers: u32,
    live_slots: u32,
) -> f64 {
    if policy.actuator == Actuator::Concurrency {
        return 1.0;
    }
    if let Some(c) = policy.worker_concurrency {
        return f64::from(c);
    }
    let supervised: Vec<u32> = supervising
        .iter()
        .flat_map(|s| s.queues.iter().filter(|q| q.queue == queue.as_str()))
        .map(|q| q.concurrency)
        .collect();
    if !supervised.is_empty() {
        return f64::from(supervised.iter().sum::<u32>()) / supervised.len() as f64;
    }
    if live_workers > 0 {
        return f64::from(live_slots) / f64::from(live_workers);
    }
    1.0
}

fn record_unscaled(
    a: &Autoscaler,
    out: &mut Tick,
    queue: &QueueName,
    sample: &QueueSample,
    view: SignalsView,
    now: u64,
) {
    if let Some(m) = &a.metrics {
        m.observe(
            queue.as_str(),
            None,
            view.live_workers,
            sample.backlog(),
            sample.oldest_wait_ms,
        );
    }
    out.status.push(QueueStatus {
        queue: queue.to_string(),
        policy: None,
        source: None,
        actuator: None,
        desired: None,
        actual: view.live_workers,
        recommended: None,
        reason: None,
        signals: view,
        at_ms: now,
    });
}
