//! Request rate limits shared by every API instance: one counter per
//! subject (an API key id) per one-second window, kept in Redis so several
//! `drover serve` processes behind a load balancer enforce one limit.
//!
//! A fixed window lets a client send up to twice its limit across a window
//! boundary; for a per-second limit that protects Redis, that is the right
//! trade for one round trip (`INCR` and `PEXPIRE` pipelined) per request.

use std::time::Duration;

use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::Result;
use crate::keys;

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the limit; `remaining` more requests fit in this window.
    Allowed {
        /// Requests left in the current window.
        remaining: u64,
    },
    /// Over the limit; the next window opens after `retry_after`.
    Limited {
        /// Time until the next window.
        retry_after: Duration,
    },
}

/// Counts one request of `subject` against `limit_per_sec`.
pub async fn hit(conn: &Connection, subject: &str, limit_per_sec: u32) -> Result<RateDecision> {
    let now = now_ms();
    let window = now / 1_000;
    let key = keys::rate_limit_window(conn.prefix(), subject, window);
    let mut redis = conn.redis();
    // The counter outlives its window by a second so a slow clock on
    // another instance still finds it; then Redis drops it.
    let (count, _): (u64, i64) = redis::pipe()
        .incr(&key, 1)
        .pexpire(&key, 2_000)
        .query_async(&mut redis)
        .await?;
    Ok(decide(count, limit_per_sec, now))
}

fn decide(count: u64, limit_per_sec: u32, now_ms: u64) -> RateDecision {
    let limit = u64::from(limit_per_sec);
    if count <= limit {
        RateDecision::Allowed {
            remaining: limit - count,
        }
    } else {
        RateDecision::Limited {
            retry_after: Duration::from_millis(1_000 - now_ms % 1_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_and_over_the_limit() {
        assert_eq!(decide(1, 2, 5_000), RateDecision::Allowed { remaining: 1 });
        assert_eq!(decide(2, 2, 5_000), RateDecision::Allowed { remaining: 0 });
        assert_eq!(
            decide(3, 2, 5_250),
            RateDecision::Limited {
                retry_after: Duration::from_millis(750)
            }
        );
    }
}
