//! What a leader remembers between ticks, and how a new leader recovers
//! it from what the previous one published.

use std::collections::HashMap;
use std::time::Instant;

use queue_core::autoscale::{self, Behavior, Lease, Policy, RateWindow};
use queue_core::{QueueName, now_ms};

use super::Autoscaler;
use super::kubernetes::Scale;

/// A leader's memory: its lease and each scaled queue's state.
#[derive(Debug)]
pub(super) struct Leading {
    pub(super) lease: Lease,
    pub(super) renewed: Instant,
    pub(super) queues: HashMap<QueueName, QueueControl>,
}

impl Leading {
    pub(super) fn new(lease: Lease) -> Self {
        Self {
            lease,
            renewed: Instant::now(),
            queues: HashMap::new(),
        }
    }
}

#[derive(Debug)]
pub(super) struct QueueControl {
    pub(super) rates: RateWindow,
    pub(super) behavior: Behavior,
    pub(super) desired: Option<u32>,
    pub(super) scale: Option<Scale>,
}

/// A new leader's memory of a queue: the published desired count, and
/// the recommendations of the scale-down window from the history, so a
/// takeover does not scale down early.
pub(super) async fn seed(a: &Autoscaler, queue: &QueueName, policy: &Policy) -> QueueControl {
    let mut control = QueueControl {
        rates: RateWindow::new(
            u64::try_from(a.settings.rate_window.as_millis()).unwrap_or(u64::MAX),
        ),
        behavior: Behavior::default(),
        desired: None,
        scale: None,
    };
    let window_ms = 1_000 * u64::from(policy.scale_down.stabilization_window_secs);
    let interval_ms = u64::try_from(a.settings.interval.as_millis())
        .unwrap_or(1)
        .max(1);
    let samples = usize::try_from(window_ms / interval_ms + 1).unwrap_or(usize::MAX);
    match autoscale::desired_states(&a.conn, std::slice::from_ref(queue)).await {
        Ok(states) => {
            control.desired = states.into_iter().flatten().next().map(|d| d.workers);
        }
        Err(e) => a.survived("signals", &e),
    }
    match autoscale::worker_history(&a.conn, queue, samples).await {
        Ok(history) => {
            let from = now_ms().saturating_sub(window_ms);
            for s in history.iter().filter(|s| s.at_ms >= from) {
                control.behavior.remember(s.at_ms, s.recommended);
            }
        }
        Err(e) => a.survived("signals", &e),
    }
    control
}
