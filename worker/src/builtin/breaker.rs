//! A circuit breaker per target URL: after repeated failures the target is
//! given a rest, and jobs for it are delayed (no attempt spent) instead of
//! failing one after another.
//!
//! Closed: requests flow; consecutive failures are counted. Open: nothing is
//! sent until the cooldown ends. Half-open: one probe request is sent; its
//! success closes the circuit, its failure opens it again for twice as long
//! (capped).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Targets remembered at most; closed ones are forgotten first.
const MAX_TARGETS: usize = 10_000;
/// Longest cooldown after repeated failed probes.
const MAX_COOLDOWN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        cooldown: Duration,
    },
    HalfOpen {
        probe_since: Instant,
        cooldown: Duration,
    },
}

/// Whether a request may go out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Send it.
    Go,
    /// The target is resting; try again at this instant.
    WaitUntil(Instant),
}

/// Circuit breakers by target.
#[derive(Debug)]
pub(crate) struct Breakers {
    threshold: u32,
    cooldown: Duration,
    states: Mutex<HashMap<String, State>>,
}

impl Breakers {
    /// Breakers that open after `threshold` consecutive failures and rest
    /// for `cooldown` (0 threshold: never open).
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// May a request to `target` go out at `now`?
    pub(crate) fn admit(&self, target: &str, now: Instant) -> Admission {
        if self.threshold == 0 {
            return Admission::Go;
        }
        let mut states = self.states();
        let Some(state) = states.get_mut(target) else {
            return Admission::Go;
        };
        match *state {
            State::Closed { .. } => Admission::Go,
            State::Open { until, cooldown } => {
                if now >= until {
                    *state = State::HalfOpen {
                        probe_since: now,
                        cooldown,
                    };
                    Admission::Go
                } else {
                    Admission::WaitUntil(until)
                }
            }
            State::HalfOpen {
                probe_since,
                cooldown,
            } => {
                // One probe at a time; a probe that never reported back
                // (its job was cancelled) frees the slot after a cooldown.
                if now >= probe_since + cooldown {
                    *state = State::HalfOpen {
                        probe_since: now,
                        cooldown,
                    };
                    Admission::Go
                } else {
                    Admission::WaitUntil(probe_since + cooldown.min(Duration::from_secs(1)))
                }
            }
        }
    }

    /// Records the result of a request to `target` at `now`.
    pub(crate) fn record(&self, target: &str, success: bool, now: Instant) {
        if self.threshold == 0 {
            return;
        }
        let mut states = self.states();
        if success {
            // Healthy targets need no memory.
            states.remove(target);
            return;
        }
        if states.len() >= MAX_TARGETS && !states.contains_key(target) {
            states.retain(|_, s| !matches!(s, State::Closed { .. }));
            if states.len() >= MAX_TARGETS {
                return;
            }
        }
        let state = states
            .entry(target.to_string())
            .or_insert(State::Closed { failures: 0 });
        *state = match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => State::Open {
                until: now + self.cooldown,
                cooldown: self.cooldown,
            },
            State::Closed { failures } => State::Closed {
                failures: failures + 1,
            },
            State::HalfOpen { cooldown, .. } => {
                let cooldown = (cooldown * 2).min(MAX_COOLDOWN);
                State::Open {
                    until: now + cooldown,
                    cooldown,
                }
            }
            // A request admitted before the circuit opened failed late.
            open @ State::Open { .. } => open,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "http://app/jobs";

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let b = Breakers::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.admit(T, t0), Admission::Go);
            b.record(T, false, t0);
        }
        assert_eq!(b.admit(T, t0), Admission::Go, "2 failures: still closed");
        b.record(T, false, t0);
        let resting = b.admit(T, t0 + Duration::from_secs(1));
        assert_eq!(resting, Admission::WaitUntil(t0 + Duration::from_secs(10)));
        // After the cooldown, one probe goes; others wait.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(T, t1), Admission::Go);
        assert!(matches!(b.admit(T, t1), Admission::WaitUntil(_)));
        // The probe succeeds: closed again.
        b.record(T, true, t1);
        assert_eq!(b.admit(T, t1), Admission::Go);
    }

    #[test]
    fn failed_probe_doubles_the_cooldown() {
        let b = Breakers::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        b.record(T, false, t0);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(T, t1), Admission::Go);
        b.record(T, false, t1);
        assert_eq!(
            b.admit(T, t1 + Duration::from_secs(1)),
            Admission::WaitUntil(t1 + Duration::from_secs(20))
        );
    }

    #[test]
    fn success_resets_the_count_and_targets_are_separate() {
        let b = Breakers::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        b.record(T, false, t0);
        b.record(T, true, t0);
        b.record(T, false, t0);
        assert_eq!(
            b.admit(T, t0),
            Admission::Go,
            "count restarted after success"
        );
        b.record("http://other", false, t0);
        b.record("http://other", false, t0);
        assert!(matches!(
            b.admit("http://other", t0),
            Admission::WaitUntil(_)
        ));
        assert_eq!(b.admit(T, t0), Admission::Go);
    }

    #[test]
    fn threshold_zero_disables() {
        let b = Breakers::new(0, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..10 {
            b.record(T, false, t0);
        }
        assert_eq!(b.admit(T, t0), Admission::Go);
    }
}
