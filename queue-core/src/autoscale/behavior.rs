//! Kubernetes HPA v2's `behavior`, applied to one queue's recommendations:
//!
//! 1. Stabilization: the recommendations of the last window are kept;
//!    scaling up goes no higher than the lowest recommendation of the
//!    up-window, scaling down no lower than the highest of the
//!    down-window. A burst must last the up-window to scale up; a lull
//!    must last the down-window to scale down.
//! 2. Step limits: each policy allows, per period, a change of `value`
//!    workers or `value` percent of the count at the period's start
//!    (the current count minus the changes made within the period);
//!    `select` takes the policy allowing the biggest (`max`) or smallest
//!    (`min`) change, or none (`disabled`). From zero, one worker is
//!    always allowed (a percent of zero is zero).
//! 3. Min and max bound the result last, so lowering `max_workers` takes
//!    effect at once.
//!
//! Pure: the caller passes the time.

use std::collections::VecDeque;

use super::policy::Policy;
use super::rules::{Rules, Select, StepKind};

/// One queue's scaling memory: recent recommendations and changes.
#[derive(Debug, Clone, Default)]
pub struct Behavior {
    recommendations: VecDeque<(u64, u32)>,
    ups: VecDeque<(u64, u32)>,
    downs: VecDeque<(u64, u32)>,
}

/// What the behaviour made of a recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The new desired count.
    pub desired: u32,
    /// Why it differs from the recommendation, if it does.
    pub held_by: Option<String>,
}

impl Behavior {
    /// Remembers a recommendation made at `at_ms` without acting on it
    /// (to seed a new leader's memory from the published history).
    pub fn remember(&mut self, at_ms: u64, recommended: u32) {
        self.recommendations.push_back((at_ms, recommended));
    }

    /// Turns `recommended` (already within min and max) into the desired
    /// count, moving from `current` at `now_ms`.
    pub fn apply(
        &mut self,
        policy: &Policy,
        now_ms: u64,
        current: u32,
        recommended: u32,
    ) -> Outcome {
        let (up, down) = (&policy.scale_up, &policy.scale_down);
        let keep_ms = 1_000
            * u64::from(
                up.stabilization_window_secs
                    .max(down.stabilization_window_secs),
            );
        self.recommendations.push_back((now_ms, recommended));
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > keep_ms)
        {
            self.recommendations.pop_front();
        }
        let within = |window_secs: u32| {
            let from = now_ms.saturating_sub(u64::from(window_secs) * 1_000);
            self.recommendations
                .iter()
                .filter(move |(at, _)| *at >= from)
                .map(|(_, r)| *r)
        };
        let up_rec = within(up.stabilization_window_secs)
            .min()
            .unwrap_or(recommended);
        let down_rec = within(down.stabilization_window_secs)
            .max()
            .unwrap_or(recommended);
        let mut held_by = None;
        let mut desired = current;
        if desired < up_rec {
            desired = up_rec;
        }
        if desired > down_rec {
            desired = down_rec;
        }
        if desired != recommended {
            held_by = Some(if recommended > current {
                format!(
                    "scale-up stabilization: lowest recommendation of the last {} s is {up_rec}",
                    up.stabilization_window_secs
                )
            } else {
                format!(
                    "scale-down stabilization: highest recommendation of the last {} s is {down_rec}",
                    down.stabilization_window_secs
                )
            });
        }
        self.forget_changes(now_ms, up.longest_period_ms().max(down.longest_period_ms()));
        if desired > current {
            let limit = self.up_limit(up, now_ms, current);
            if desired > limit {
                held_by = Some(format!("scale-up limit {limit} this period"));
                desired = limit;
            }
        } else if desired < current {
            let limit = self.down_limit(down, now_ms, current);
            if desired < limit {
                held_by = Some(format!("scale-down limit {limit} this period"));
                desired = limit;
            }
        }
        let bounded = desired.clamp(policy.min_workers, policy.max_workers);
        if bounded != desired {
            held_by = Some(format!(
                "bounded by min {} and max {}",
                policy.min_workers, policy.max_workers
            ));
            desired = bounded;
        }
        if desired > current {
            self.ups.push_back((now_ms, desired - current));
        } else if desired < current {
            self.downs.push_back((now_ms, current - desired));
        }
        Outcome { desired, held_by }
    }

    fn forget_changes(&mut self, now_ms: u64, keep_ms: u64) {
        for events in [&mut self.ups, &mut self.downs] {
            while events
                .front()
                .is_some_and(|(at, _)| now_ms.saturating_sub(*at) >= keep_ms)
            {
                events.pop_front();
            }
        }
    }

    /// Net change within the last `period_secs`: (added, removed).
    fn changed_within(&self, now_ms: u64, period_secs: u32) -> (u64, u64) {
        let period_ms = u64::from(period_secs) * 1_000;
        let sum = |events: &VecDeque<(u64, u32)>| {
            events
                .iter()
                .filter(|(at, _)| now_ms.saturating_sub(*at) < period_ms)
                .map(|(_, n)| u64::from(*n))
                .sum::<u64>()
        };
        (sum(&self.ups), sum(&self.downs))
    }

    fn period_start(&self, now_ms: u64, period_secs: u32, current: u32) -> f64 {
        let (added, removed) = self.changed_within(now_ms, period_secs);
        (i64::from(current) - added as i64 + removed as i64).max(0) as f64
    }

    fn up_limit(&self, rules: &Rules, now_ms: u64, current: u32) -> u32 {
        if rules.select == Select::Disabled {
            return current;
        }
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(now_ms, p.period_secs, current);
            match p.kind {
                StepKind::Workers => start + f64::from(p.value),
                StepKind::Percent => (start * (1.0 + f64::from(p.value) / 100.0)).ceil(),
            }
        });
        let limit = match rules.select {
            Select::Min => proposals.fold(f64::INFINITY, f64::min),
            _ => proposals.fold(0.0, f64::max),
        };
        to_count(limit).max(current).max(1)
    }

    fn down_limit(&self, rules: &Rules, now_ms: u64, current: u32) -> u32 {
        if rules.select == Select::Disabled {
            return current;
        }
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(now_ms, p.period_secs, current);
            match p.kind {
                StepKind::Workers => start - f64::from(p.value),
                StepKind::Percent => (start * (1.0 - f64::from(p.value) / 100.0)).floor(),
            }
        });
        // The biggest change down is the lowest limit.
        let limit = match rules.select {
            Select::Min => proposals.fold(f64::NEG_INFINITY, f64::max),
            _ => proposals.fold(f64::INFINITY, f64::min),
        };
        to_count(limit).min(current)
    }
}

/// `x` as a count: 0 for negative or NaN, `u32::MAX` above it, else
/// truncated.
pub(super) fn to_count(x: f64) -> u32 {
    if x <= 0.0 || x.is_nan() {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = x as u32;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::policy::test_policy as policy;

    #[test]
    fn default_scale_up_doubles_or_adds_four_per_second() {
        let p = policy(serde_json::json!({"max_workers": 64}));
        let mut b = Behavior::default();
        let mut current = 1;
        let mut seen = Vec::new();
        for tick in 0..5u64 {
            current = b.apply(&p, tick * 1_000, current, 64).desired;
            seen.push(current);
        }
        assert_eq!(seen, [5, 10, 20, 40, 64]);
    }

    #[test]
    fn within_one_period_the_limit_counts_earlier_changes() {
        let p = policy(serde_json::json!({"max_workers": 64,
            "scale_up": {"policies": [{"type": "workers", "value": 4, "period_secs": 10}]}}));
        let mut b = Behavior::default();
        assert_eq!(b.apply(&p, 0, 1, 64).desired, 5);
        assert_eq!(b.apply(&p, 2_000, 5, 64).desired, 5, "same period");
        assert_eq!(b.apply(&p, 10_500, 5, 64).desired, 9, "next period");
    }

    #[test]
    fn scale_down_waits_for_the_window_and_then_steps() {
        let p = policy(serde_json::json!({"max_workers": 8, "scale_down": {
            "stabilization_window_secs": 10,
            "policies": [{"type": "percent", "value": 50, "period_secs": 5}]}}));
        let mut b = Behavior::default();
        assert_eq!(b.apply(&p, 0, 8, 8).desired, 8);
        let mut current = 8;
        for t in 1..=10u64 {
            let o = b.apply(&p, t * 1_000, current, 1);
            assert_eq!(o.desired, 8, "t={t}: {o:?}");
            assert!(o.held_by.unwrap().contains("stabilization"));
        }
        current = b.apply(&p, 11_000, current, 1).desired;
        assert_eq!(current, 4, "half per period once the window passed");
        assert_eq!(b.apply(&p, 12_000, current, 1).desired, 4);
        assert_eq!(b.apply(&p, 16_500, current, 1).desired, 2);
    }

    #[test]
    fn a_short_dip_does_not_scale_down_and_flapping_is_damped() {
        let p = policy(serde_json::json!({"max_workers": 8,
            "scale_down": {"stabilization_window_secs": 30}}));
        let mut b = Behavior::default();
        let mut current = 4;
        for t in 0..120u64 {
            // Recommendations alternate 4, 2, 4, 2...
            let rec = if t % 2 == 0 { 4 } else { 2 };
            current = b.apply(&p, t * 1_000, current, rec).desired;
            assert_eq!(current, 4, "t={t}");
        }
    }

    #[test]
    fn up_stabilization_needs_a_sustained_burst() {
        let p = policy(serde_json::json!({"max_workers": 8,
            "scale_up": {"stabilization_window_secs": 3}}));
        let mut b = Behavior::default();
        assert_eq!(b.apply(&p, 0, 1, 1).desired, 1);
        assert_eq!(b.apply(&p, 1_000, 1, 8).desired, 1, "one high reading");
        assert_eq!(b.apply(&p, 2_000, 1, 1).desired, 1);
        for t in 3..=5u64 {
            assert_eq!(b.apply(&p, t * 1_000, 1, 8).desired, 1, "t={t}");
        }
        assert_eq!(b.apply(&p, 6_000, 1, 8).desired, 5, "sustained for 3 s");
    }

    #[test]
    fn from_zero_one_worker_is_allowed_and_lower_max_applies_at_once() {
        let p = policy(serde_json::json!({"actuator": "process", "min_workers": 0,
            "scale_up": {"policies": [{"type": "percent", "value": 100, "period_secs": 1}]}}));
        let mut b = Behavior::default();
        assert_eq!(b.apply(&p, 0, 0, 3).desired, 1);
        let small = policy(serde_json::json!({"max_workers": 2}));
        let mut b = Behavior::default();
        let o = b.apply(&small, 0, 6, 2);
        assert_eq!(o.desired, 2, "{o:?}");
    }

    #[test]
    fn disabled_directions_never_move() {
        let p = policy(serde_json::json!({"max_workers": 8,
            "scale_down": {"select": "disabled", "policies": []},
            "scale_up": {"select": "disabled", "policies": []}}));
        let mut b = Behavior::default();
        assert_eq!(b.apply(&p, 0, 3, 8).desired, 3);
        assert_eq!(b.apply(&p, 400_000, 3, 1).desired, 3);
    }
}
