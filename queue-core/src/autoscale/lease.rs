//! The autoscaler's leader lease with fencing, and the fenced write of a
//! control tick.
//!
//! Several `drover serve` processes may run the autoscaler; the one holding
//! the lease (`drover:<prefix>:{autoscale}:leader`, with a PX expiry)
//! leads. Each acquisition takes a new epoch from a counter that only
//! grows. Every write of the leader goes through `publish.lua`, which
//! first checks that the lease is still the caller's (and renews it), so a
//! leader that lost its lease (a long pause, a partition) writes nothing.
//! If the leader dies, the lease expires and another process takes it at
//! its next try. The three scripts are `lua/*.lua` beside this file, run
//! by SHA with NOSCRIPT recovery (`redis::Script`).

use std::sync::LazyLock;
use std::time::Duration;

use super::record::{Decision, DesiredState, HistorySample, LeaderInfo, QueueStatus};
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;

static ACQUIRE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/acquire.lua")));
static RELEASE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/release.lua")));
static PUBLISH: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/publish.lua")));

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    token: String,
    info: LeaderInfo,
}

impl Lease {
    /// Takes the lease for `ttl` as `holder` if nobody holds it.
    pub async fn try_acquire(
        conn: &Connection,
        holder: &str,
        ttl: Duration,
        now_ms: u64,
    ) -> Result<Option<Self>> {
        let holder = holder.replace('|', "_");
        let mut redis = conn.redis();
        let token: Option<String> = ACQUIRE
            .key(keys::autoscale(conn.prefix(), "leader"))
            .key(keys::autoscale(conn.prefix(), "fence"))
            .arg(&holder)
            .arg(ms(ttl))
            .arg(now_ms)
            .invoke_async(&mut redis)
            .await?;
        token
            .map(|token| {
                let info = LeaderInfo::parse(&token).ok_or_else(|| {
                    QueueError::Protocol(format!("unreadable autoscaler lease {token:?}"))
                })?;
                Ok(Self { token, info })
            })
            .transpose()
    }

    /// The lease's epoch (fencing token).
    pub fn epoch(&self) -> u64 {
        self.info.epoch
    }

    /// Who holds it and since when.
    pub fn info(&self) -> &LeaderInfo {
        &self.info
    }

    /// Lets go of the lease, if it is still ours; true if it was.
    pub async fn release(self, conn: &Connection) -> Result<bool> {
        let mut redis = conn.redis();
        let released: i64 = RELEASE
            .key(keys::autoscale(conn.prefix(), "leader"))
            .arg(&self.token)
            .invoke_async(&mut redis)
            .await?;
        Ok(released == 1)
    }
}

/// How much of the autoscaler's output Redis keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The lease's time to live (renewed by every publish).
    pub lease_ttl: Duration,
    /// Decisions kept, all queues together.
    pub decisions: usize,
    /// Samples kept per queue.
    pub history_samples: usize,
    /// A queue's history expires this long after its last sample.
    pub history_ttl: Duration,
}

/// One control tick's output.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    /// The desired state of every scaled queue (replaces the previous).
    pub desired: Vec<DesiredState>,
    /// The status of every watched queue (replaces the previous).
    pub status: Vec<QueueStatus>,
    /// Decisions taken this tick.
    pub decisions: Vec<Decision>,
    /// One sample per scaled queue.
    pub history: Vec<(QueueName, HistorySample)>,
}

/// Writes `tick` and renews the lease, if `lease` is still held; false
/// (nothing written) when it is not: the caller is no longer the leader.
pub async fn publish(
    conn: &Connection,
    lease: &Lease,
    tick: &Tick,
    retention: &Retention,
) -> Result<bool> {
    let prefix = conn.prefix();
    let mut invocation = PUBLISH.prepare_invoke();
    invocation
        .key(keys::autoscale(prefix, "leader"))
        .key(keys::autoscale(prefix, "desired"))
        .key(keys::autoscale(prefix, "status"))
        .key(keys::autoscale(prefix, "decisions"));
    for (queue, _) in &tick.history {
        invocation.key(keys::autoscale_history(prefix, queue));
    }
    invocation
        .arg(&lease.token)
        .arg(ms(retention.lease_ttl))
        .arg(retention.decisions.max(1))
        .arg(retention.history_samples.max(1))
        .arg(ms(retention.history_ttl))
        .arg(tick.desired.len())
        .arg(tick.status.len())
        .arg(tick.decisions.len());
    for d in &tick.desired {
        invocation.arg(&d.queue).arg(encode(d)?);
    }
    for s in &tick.status {
        invocation.arg(&s.queue).arg(encode(s)?);
    }
    for d in &tick.decisions {
        invocation.arg(encode(d)?);
    }
    for (_, sample) in &tick.history {
        invocation.arg(encode(sample)?);
    }
    let mut redis = conn.redis();
    let written: i64 = invocation.invoke_async(&mut redis).await?;
    Ok(written == 1)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A record as JSON.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| QueueError::Protocol(format!("cannot encode an autoscaler record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_into_leader_info() {
        let info = LeaderInfo::parse("7|1700000000000|host:42:ab|c").unwrap();
        assert_eq!(info.epoch, 7);
        assert_eq!(info.since_ms, 1_700_000_000_000);
        assert_eq!(info.holder, "host:42:ab|c");
        assert!(LeaderInfo::parse("x|1|h").is_none());
    }
}
