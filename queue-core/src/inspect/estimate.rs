//! How many jobs an action would touch, for the confirmation people see
//! before they act: counts by score, never a walk over the jobs.

use std::time::Duration;

use serde::Serialize;

use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::Result;
use crate::keys;
use crate::names::QueueName;
use crate::state::JobState;

/// How many jobs a clean would remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CleanEstimate {
    /// The number.
    pub count: u64,
    /// Whether it is exact. `completed` and `failed` are kept by finish
    /// time, so their count by age is exact; other states are kept in
    /// another order, so the count is every job of the state, an upper
    /// bound (the clean itself checks each job's age, and keeps pending
    /// scheduler runs and locked active jobs).
    pub exact: bool,
}

/// What `admin::clean(queue, state, grace, None)` would remove, at most.
pub async fn clean_estimate(
    conn: &Connection,
    queue: &QueueName,
    state: JobState,
    grace: Duration,
) -> Result<CleanEstimate> {
    let k = keys::queue(conn.prefix(), queue);
    let mut redis = conn.redis();
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let cutoff = now_ms().saturating_sub(grace_ms);
    Ok(match state {
        JobState::Completed | JobState::Failed => CleanEstimate {
            count: redis::cmd("ZCOUNT")
                .arg(k.get(state.key_suffix()))
                .arg(0)
                .arg(cutoff)
                .query_async(&mut redis)
                .await?,
            exact: true,
        },
        JobState::Waiting => {
            let (wait, paused): (u64, u64) = redis::pipe()
                .llen(k.wait())
                .llen(k.paused())
                .query_async(&mut redis)
                .await?;
            CleanEstimate {
                count: wait + paused,
                exact: false,
            }
        }
        JobState::Active => CleanEstimate {
            count: redis::cmd("LLEN")
                .arg(k.active())
                .query_async(&mut redis)
                .await?,
            exact: false,
        },
        other => CleanEstimate {
            count: redis::cmd("ZCARD")
                .arg(k.get(other.key_suffix()))
                .query_async(&mut redis)
                .await?,
            exact: false,
        },
    })
}
