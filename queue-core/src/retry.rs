//! BullMQ's retry decision, made client-side as BullMQ's workers make it:
//! whether a failed attempt is retried, and after how long.
//!
//! bullmq-official implements `fixed` and `exponential` but drops `jitter`
//! and cannot retry after a delay the handler chose; this module computes the
//! full rule and says whether bullmq-official's own retry path gives the
//! same answer (then it is used, atomically) or Drover must apply it.

use serde_json::Value;

use crate::producer::MAX_DELAY_MS;

/// A job's `backoff` option as stored by any client: `{type, delay, jitter}`
/// or a bare number (Node's shorthand for fixed).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBackoff {
    /// `fixed`, `exponential`, or a custom strategy name.
    pub kind: String,
    /// Base delay in ms.
    pub delay: u64,
    /// Fraction of the delay that is randomized, in (0, 1]; 0 for none.
    pub jitter: f64,
}

impl StoredBackoff {
    /// Reads `opts.backoff` from a job's stored options.
    pub fn from_opts(opts: &Value) -> Option<Self> {
        match opts.get("backoff")? {
            Value::Number(n) => Some(Self {
                kind: "fixed".into(),
                delay: n.as_u64()?,
                jitter: 0.0,
            }),
            Value::Object(o) => Some(Self {
                kind: o.get("type")?.as_str()?.to_string(),
                delay: o.get("delay").and_then(Value::as_u64).unwrap_or(0),
                jitter: o
                    .get("jitter")
                    .and_then(Value::as_f64)
                    .filter(|j| *j > 0.0)
                    .map_or(0.0, |j| j.min(1.0)),
            }),
            _ => None,
        }
    }
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// No retry: the job moves to `failed`.
    Fail,
    /// Retry after `delay_ms` (0: at once). `engine` says bullmq-official's
    /// own retry path computes exactly this delay, so it can be used.
    Retry {
        /// Delay before the next attempt, in ms.
        delay_ms: u64,
        /// Whether bullmq-official's retry computes the same delay.
        engine: bool,
    },
}

/// The facts the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct FailedAttempt<'a> {
    /// `opts.attempts` (0 and 1 both mean one try).
    pub attempts: u64,
    /// Attempts finished before this one (`atm`).
    pub attempts_made: u64,
    /// The handler said retrying cannot help.
    pub unrecoverable: bool,
    /// The job's backoff option.
    pub backoff: Option<&'a StoredBackoff>,
    /// A delay the handler asked for (e.g. from `Retry-After`), overriding
    /// the backoff.
    pub retry_after_ms: Option<u64>,
}

/// Decides like BullMQ's worker: retry iff `attempts_made + 1 < attempts`
/// and the error is recoverable; the delay comes from the backoff for
/// attempt number `attempts_made + 1`. `random` yields values in [0, 1).
pub fn decide(attempt: FailedAttempt<'_>, random: impl FnOnce() -> f64) -> RetryDecision {
    if attempt.unrecoverable || attempt.attempts_made + 1 >= attempt.attempts {
        return RetryDecision::Fail;
    }
    if let Some(after) = attempt.retry_after_ms {
        return RetryDecision::Retry {
            delay_ms: after.min(MAX_DELAY_MS),
            engine: false,
        };
    }
    let Some(backoff) = attempt.backoff else {
        return RetryDecision::Retry {
            delay_ms: 0,
            engine: true,
        };
    };
    let n = attempt.attempts_made + 1;
    let (base, engine_exact) = match backoff.kind.as_str() {
        "fixed" => (backoff.delay, true),
        "exponential" => {
            // round(2^(n-1) * delay), computed without overflow; the
            // engine's own arithmetic is only trusted while it cannot
            // overflow either.
            let factor = 1u64.checked_shl(u32::try_from(n - 1).unwrap_or(u32::MAX));
            match factor.and_then(|f| f.checked_mul(backoff.delay)) {
                Some(v) if v <= MAX_DELAY_MS => (v, true),
                _ => (MAX_DELAY_MS, false),
            }
        }
        // An unknown strategy with no custom function: retry at once, as
        // bullmq-official does.
        _ => {
            return RetryDecision::Retry {
                delay_ms: 0,
                engine: true,
            };
        }
    };
    if backoff.jitter > 0.0 && base > 0 {
        let j = backoff.jitter;
        let b = base as f64;
        let delay = (random() * b * j + b * (1.0 - j)).floor() as u64;
        RetryDecision::Retry {
            delay_ms: delay,
            engine: false,
        }
    } else {
        RetryDecision::Retry {
            delay_ms: base,
            engine: engine_exact,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attempt(attempts: u64, made: u64, backoff: Option<&StoredBackoff>) -> FailedAttempt<'_> {
        FailedAttempt {
            attempts,
            attempts_made: made,
            unrecoverable: false,
            backoff,
            retry_after_ms: None,
        }
    }

    #[allow(clippy::needless_pass_by_value)] // reads better at call sites
    fn backoff(v: Value) -> StoredBackoff {
        StoredBackoff::from_opts(&json!({ "backoff": v })).unwrap()
    }

    #[test]
    fn attempts_zero_or_one_never_retry() {
        for attempts in [0, 1] {
            assert_eq!(
                decide(attempt(attempts, 0, None), || 0.5),
                RetryDecision::Fail
            );
        }
    }

    #[test]
    fn retries_until_attempts_are_used() {
        assert!(matches!(
            decide(attempt(3, 1, None), || 0.5),
            RetryDecision::Retry {
                delay_ms: 0,
                engine: true
            }
        ));
        assert_eq!(decide(attempt(3, 2, None), || 0.5), RetryDecision::Fail);
    }

    #[test]
    fn unrecoverable_never_retries() {
        let mut a = attempt(5, 0, None);
        a.unrecoverable = true;
        assert_eq!(decide(a, || 0.5), RetryDecision::Fail);
    }

    #[test]
    fn fixed_and_bare_number() {
        for b in [json!({"type": "fixed", "delay": 1000}), json!(1000)] {
            let b = backoff(b);
            assert_eq!(
                decide(attempt(3, 1, Some(&b)), || 0.5),
                RetryDecision::Retry {
                    delay_ms: 1000,
                    engine: true
                }
            );
        }
    }

    #[test]
    fn exponential_doubles_per_attempt() {
        let b = backoff(json!({"type": "exponential", "delay": 100}));
        let delays: Vec<_> = (0..4)
            .map(|made| match decide(attempt(10, made, Some(&b)), || 0.5) {
                RetryDecision::Retry { delay_ms, engine } => {
                    assert!(engine);
                    delay_ms
                }
                RetryDecision::Fail => panic!("should retry"),
            })
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800]);
    }

    #[test]
    fn exponential_caps_instead_of_overflowing() {
        let b = backoff(json!({"type": "exponential", "delay": 1000}));
        assert_eq!(
            decide(attempt(200, 150, Some(&b)), || 0.5),
            RetryDecision::Retry {
                delay_ms: MAX_DELAY_MS,
                engine: false
            }
        );
    }

    #[test]
    fn jitter_follows_bullmq_formula() {
        // fixed 1000 with jitter 0.5: floor(r * 1000 * 0.5 + 500)
        let b = backoff(json!({"type": "fixed", "delay": 1000, "jitter": 0.5}));
        for (r, want) in [(0.0, 500), (0.5, 750), (0.999, 999)] {
            assert_eq!(
                decide(attempt(3, 0, Some(&b)), || r),
                RetryDecision::Retry {
                    delay_ms: want,
                    engine: false
                }
            );
        }
        // exponential 100, 3rd attempt: max 400; jitter 1: floor(r * 400)
        let b = backoff(json!({"type": "exponential", "delay": 100, "jitter": 1}));
        assert_eq!(
            decide(attempt(5, 2, Some(&b)), || 0.25),
            RetryDecision::Retry {
                delay_ms: 100,
                engine: false
            }
        );
    }

    #[test]
    fn retry_after_overrides_backoff_but_not_attempts() {
        let b = backoff(json!({"type": "fixed", "delay": 1000}));
        let mut a = attempt(3, 0, Some(&b));
        a.retry_after_ms = Some(42);
        assert_eq!(
            decide(a, || 0.5),
            RetryDecision::Retry {
                delay_ms: 42,
                engine: false
            }
        );
        a.attempts_made = 2;
        assert_eq!(decide(a, || 0.5), RetryDecision::Fail);
    }

    #[test]
    fn unknown_strategy_retries_at_once() {
        let b = backoff(json!({"type": "custom", "delay": 5}));
        assert_eq!(
            decide(attempt(3, 0, Some(&b)), || 0.5),
            RetryDecision::Retry {
                delay_ms: 0,
                engine: true
            }
        );
    }
}
