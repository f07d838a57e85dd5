//! The raw recommendation: how many workers a queue wants right now,
//! before the HPA behaviour (stabilization, step limits) smooths it.
//!
//! Slots wanted, per target (the larger wins, as HPA takes the largest
//! metric):
//! - backlog per slot `b`: `active + backlog / b`; every busy slot stays,
//!   plus one per `b` waiting jobs;
//! - longest wait `T` (s): `(arrival rate + backlog / T) × mean job
//!   duration`, the slots that drain the backlog within `T` while keeping
//!   up with arrivals; before any job finished (no duration known yet), the
//!   current slots scaled by `oldest wait / T` when it is over `T`.
//!
//! A change smaller than the tolerance keeps the current count. Workers =
//! slots / slots per worker, rounded up. A backlog always wants at least
//! one worker; zero needs an empty queue with nothing due within the cold
//! start. The queue's global concurrency and global rate limit cap it
//! (more would only wait), then min and max bound it.

use super::policy::Policy;
use super::rates::Rates;
use super::signals::QueueSample;

/// A recommendation and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// Workers recommended, within min and max.
    pub workers: u32,
    /// Slots the targets want.
    pub slots_wanted: f64,
    /// How it was reached, for people.
    pub reason: String,
}

/// Recommends a worker count for a queue whose desired count is `current`
/// and whose workers run `slots_per_worker` jobs at once.
pub fn recommend(
    policy: &Policy,
    s: &QueueSample,
    rates: &Rates,
    current: u32,
    slots_per_worker: f64,
) -> Recommendation {
    let k = slots_per_worker.max(1.0);
    let backlog = s.backlog() as f64;
    let active = s.active as f64;
    let current_slots = f64::from(current) * k;
    let mut notes = vec![format!(
        "backlog {}, active {}{}",
        s.backlog(),
        s.active,
        if s.paused { " (paused)" } else { "" }
    )];
    let mut wanted: f64 = 0.0;
    if let Some(b) = policy.target_backlog_per_slot {
        let slots = active + backlog / b;
        notes.push(format!("{slots:.1} slots for {b} waiting per slot"));
        wanted = wanted.max(slots);
    }
    if let Some(t_ms) = policy.target_wait_ms {
        let t = t_ms as f64 / 1_000.0;
        let wait_ms = s.oldest_wait_ms.unwrap_or(0);
        let slots = match (rates.service_secs(), rates.arrival_per_sec) {
            (Some(service), Some(arrival)) => {
                let slots = (arrival + backlog / t) * service;
                notes.push(format!(
                    "{slots:.1} slots to keep waits under {t_ms} ms ({arrival:.1} jobs/s in, {:.0} ms per job)",
                    service * 1_000.0
                ));
                slots
            }
            _ if wait_ms > t_ms => {
                let slots = current_slots.max(active + 1.0) * wait_ms as f64 / t_ms as f64;
                notes.push(format!(
                    "{slots:.1} slots: oldest wait {wait_ms} ms over {t_ms} ms"
                ));
                slots
            }
            _ => active,
        };
        wanted = wanted.max(slots);
    }
    let within_tolerance =
        current_slots > 0.0 && ((wanted / current_slots) - 1.0).abs() <= policy.tolerance;
    let mut workers = if within_tolerance {
        notes.push(format!(
            "within {:.0}% of the current {current_slots:.0} slots",
            policy.tolerance * 100.0
        ));
        current
    } else {
        ceil_workers(wanted / k)
    };
    if k > 1.0 && !within_tolerance {
        notes.push(format!("{k:.0} slots per worker"));
    }
    if workers == 0 && backlog > 0.0 {
        workers = 1;
    }
    if workers == 0 && policy.min_workers == 0 {
        let horizon = s.at_ms.saturating_add(policy.cold_start_ms);
        let due = [s.next_delayed_ms, s.next_schedule_ms]
            .into_iter()
            .flatten()
            .filter(|at| *at <= horizon)
            .min();
        if s.active > 0 {
            workers = 1;
        } else if let Some(at) = due {
            workers = 1;
            notes.push(format!(
                "kept above zero: a job is due in {} ms, within the {} ms cold start",
                at.saturating_sub(s.at_ms),
                policy.cold_start_ms
            ));
        }
    }
    if let Some(cap) = cap_workers(s, rates, k) {
        if workers > cap {
            notes.push(format!("capped at {cap} by the queue's global limits"));
            workers = cap;
        }
    }
    let bounded = workers.clamp(policy.min_workers, policy.max_workers);
    if bounded != workers {
        notes.push(format!(
            "{workers} bounded to {bounded} (min {}, max {})",
            policy.min_workers, policy.max_workers
        ));
    }
    Recommendation {
        workers: bounded,
        slots_wanted: wanted,
        reason: notes.join("; "),
    }
}

/// Most workers that can be busy at once under the queue's global
/// concurrency and global rate limit (the latter needs a known job
/// duration).
fn cap_workers(s: &QueueSample, rates: &Rates, k: f64) -> Option<u32> {
    let by_concurrency = s.global_concurrency.map(|c| c as f64);
    let by_rate = match (
        s.rate_limit_max,
        s.rate_limit_duration_ms,
        rates.service_secs(),
    ) {
        (Some(max), Some(ms), Some(service)) => {
            Some((max as f64 / (ms as f64 / 1_000.0) * service).max(1.0))
        }
        _ => None,
    };
    let slots = [by_concurrency, by_rate]
        .into_iter()
        .flatten()
        .min_by(f64::total_cmp)?;
    Some(ceil_workers(slots / k).max(1))
}

/// `x` rounded up to whole workers, forgiving float noise just above an
/// integer.
fn ceil_workers(x: f64) -> u32 {
    super::behavior::to_count((x - 1e-9).ceil())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::policy::test_policy as policy;

    fn sample(waiting: u64, active: u64) -> QueueSample {
        QueueSample {
            at_ms: 1_000_000,
            waiting,
            active,
            ..QueueSample::default()
        }
    }

    #[test]
    fn a_burst_wants_the_maximum() {
        let p = policy(serde_json::json!({"actuator": "process", "max_workers": 8}));
        let r = recommend(&p, &sample(20_000, 0), &Rates::default(), 1, 8.0);
        assert_eq!(r.workers, 8, "{}", r.reason);
        assert!(r.reason.contains("bounded to 8"), "{}", r.reason);
    }

    #[test]
    fn busy_slots_stay_and_small_backlogs_are_tolerated() {
        let p =
            policy(serde_json::json!({"actuator": "process", "min_workers": 1, "max_workers": 8}));
        // 8 busy slots of 4-slot workers, 2 waiting: 8.2 slots, within 10%.
        let r = recommend(&p, &sample(2, 8), &Rates::default(), 2, 4.0);
        assert_eq!(r.workers, 2, "{}", r.reason);
        // 20 waiting: 10 slots, 3 workers.
        let r = recommend(&p, &sample(20, 8), &Rates::default(), 2, 4.0);
        assert_eq!(r.workers, 3, "{}", r.reason);
        // Idle: the minimum.
        let r = recommend(&p, &sample(0, 0), &Rates::default(), 2, 4.0);
        assert_eq!(r.workers, 1, "{}", r.reason);
    }

    #[test]
    fn a_paused_queue_has_no_backlog() {
        let p = policy(serde_json::json!({"max_workers": 50}));
        let mut s = sample(1_000, 0);
        s.paused = true;
        assert_eq!(recommend(&p, &s, &Rates::default(), 5, 1.0).workers, 1);
    }

    #[test]
    fn the_latency_target_uses_arrivals_and_job_duration() {
        let p = policy(serde_json::json!({"target_wait_ms": 1000, "max_workers": 100}));
        let rates = Rates {
            arrival_per_sec: Some(100.0),
            completion_per_sec: Some(100.0),
            busy_avg: 5.0,
        };
        // 50 ms per job; (100/s + 200 waiting / 1 s) × 0.05 s = 15 slots.
        let r = recommend(&p, &sample(200, 5), &rates, 5, 1.0);
        assert_eq!(r.workers, 15, "{}", r.reason);
        // Unknown duration: scaled by how late the oldest job is.
        let mut s = sample(10, 2);
        s.oldest_wait_ms = Some(3_000);
        assert_eq!(recommend(&p, &s, &Rates::default(), 4, 1.0).workers, 12);
    }

    #[test]
    fn zero_only_when_nothing_is_due_within_the_cold_start() {
        let p = policy(
            serde_json::json!({"actuator": "process", "min_workers": 0, "cold_start_ms": 60000}),
        );
        let idle = sample(0, 0);
        assert_eq!(recommend(&p, &idle, &Rates::default(), 1, 1.0).workers, 0);
        let mut soon = idle.clone();
        soon.next_schedule_ms = Some(idle.at_ms + 30_000);
        let r = recommend(&p, &soon, &Rates::default(), 1, 1.0);
        assert_eq!(r.workers, 1, "{}", r.reason);
        let mut later = idle.clone();
        later.next_delayed_ms = Some(idle.at_ms + 120_000);
        assert_eq!(recommend(&p, &later, &Rates::default(), 1, 1.0).workers, 0);
        // From zero, one waiting job wakes a worker.
        assert_eq!(
            recommend(&p, &sample(1, 0), &Rates::default(), 0, 1.0).workers,
            1
        );
    }

    #[test]
    fn global_limits_cap_the_count() {
        let p = policy(serde_json::json!({"max_workers": 100}));
        let mut s = sample(5_000, 4);
        s.global_concurrency = Some(6);
        let r = recommend(&p, &s, &Rates::default(), 4, 1.0);
        assert_eq!(r.workers, 6, "{}", r.reason);
        // 10 jobs/s at 0.5 s each keeps 5 slots busy; more cannot help.
        s.global_concurrency = None;
        s.rate_limit_max = Some(10);
        s.rate_limit_duration_ms = Some(1_000);
        let rates = Rates {
            arrival_per_sec: Some(50.0),
            completion_per_sec: Some(8.0),
            busy_avg: 4.0,
        };
        assert_eq!(recommend(&p, &s, &rates, 4, 1.0).workers, 5);
    }
}
