//! Reading what the autoscaler published, with bounded reads only, and
//! the policies declared through the API.
//!
//! For the dashboard: [`recent_decisions`] (a bounded list, newest first)
//! and [`worker_history`] (desired vs actual workers of one queue, one
//! sample per control tick, oldest first).

use std::collections::HashMap;

use super::lease::encode;
use super::policy::PolicySpec;
use super::record::{
    AutoscalerStatus, Decision, DesiredState, HistorySample, LeaderInfo, QueueStatus,
};
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;

/// Most decisions one read returns.
pub const MAX_DECISIONS: usize = 1_000;
/// Most history samples one read returns (an hour at the default two
/// ticks a second).
pub const MAX_HISTORY: usize = 7_200;

fn decode<T: serde::de::DeserializeOwned>(what: &str, raw: &str) -> Result<T> {
    serde_json::from_str(raw)
        .map_err(|e| QueueError::Protocol(format!("unreadable autoscaler {what}: {e}")))
}

/// The leader, if one holds the lease.
pub async fn leader(conn: &Connection) -> Result<Option<LeaderInfo>> {
    let token: Option<String> = redis::cmd("GET")
        .arg(keys::autoscale(conn.prefix(), "leader"))
        .query_async(&mut conn.redis())
        .await?;
    Ok(token.as_deref().and_then(LeaderInfo::parse))
}

/// The newest decisions (at most `limit`, capped at [`MAX_DECISIONS`]),
/// newest first; with `queue`, only that queue's among them.
pub async fn recent_decisions(
    conn: &Connection,
    queue: Option<&QueueName>,
    limit: usize,
) -> Result<Vec<Decision>> {
    let limit = limit.clamp(1, MAX_DECISIONS);
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(keys::autoscale(conn.prefix(), "decisions"))
        .arg(0)
        .arg(limit - 1)
        .query_async(&mut conn.redis())
        .await?;
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let d: Decision = decode("decision", &r)?;
        if queue.is_none_or(|q| q.as_str() == d.queue) {
            out.push(d);
        }
    }
    Ok(out)
}

/// The last `limit` samples (capped at [`MAX_HISTORY`]) of desired vs
/// actual workers of `queue`, oldest first.
pub async fn worker_history(
    conn: &Connection,
    queue: &QueueName,
    limit: usize,
) -> Result<Vec<HistorySample>> {
    let limit = limit.clamp(1, MAX_HISTORY);
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(keys::autoscale_history(conn.prefix(), queue))
        .arg(0)
        .arg(limit - 1)
        .query_async(&mut conn.redis())
        .await?;
    let mut out = raw
        .iter()
        .map(|r| decode("history sample", r))
        .collect::<Result<Vec<HistorySample>>>()?;
    out.reverse();
    Ok(out)
}

/// Each queue's status at the leader's last tick, by name.
pub async fn queue_statuses(conn: &Connection) -> Result<Vec<QueueStatus>> {
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::autoscale(conn.prefix(), "status"))
        .query_async(&mut conn.redis())
        .await?;
    let mut out = all
        .values()
        .map(|r| decode("queue status", r))
        .collect::<Result<Vec<QueueStatus>>>()?;
    out.sort_by(|a, b| a.queue.cmp(&b.queue));
    Ok(out)
}

/// One queue's status at the leader's last tick.
pub async fn queue_status(conn: &Connection, queue: &QueueName) -> Result<Option<QueueStatus>> {
    let raw: Option<String> = redis::cmd("HGET")
        .arg(keys::autoscale(conn.prefix(), "status"))
        .arg(queue.as_str())
        .query_async(&mut conn.redis())
        .await?;
    raw.map(|r| decode("queue status", &r)).transpose()
}

/// Leader, queues and the newest `decisions` decisions.
pub async fn status(conn: &Connection, decisions: usize) -> Result<AutoscalerStatus> {
    Ok(AutoscalerStatus {
        leader: leader(conn).await?,
        queues: queue_statuses(conn).await?,
        decisions: recent_decisions(conn, None, decisions).await?,
    })
}

/// The desired state of each of `queues` (what actuators act on).
pub async fn desired_states(
    conn: &Connection,
    queues: &[QueueName],
) -> Result<Vec<Option<DesiredState>>> {
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = queues.iter().map(QueueName::as_str).collect();
    let raw: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(keys::autoscale(conn.prefix(), "desired"))
        .arg(&names)
        .query_async(&mut conn.redis())
        .await?;
    raw.iter()
        .map(|r| r.as_deref().map(|r| decode("desired state", r)).transpose())
        .collect()
}

/// Every policy declared through the API, by queue. Unreadable entries
/// (written by a newer Drover) are skipped with a warning.
pub async fn api_policies(conn: &Connection) -> Result<Vec<(QueueName, PolicySpec)>> {
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::autoscale(conn.prefix(), "policies"))
        .query_async(&mut conn.redis())
        .await?;
    let mut out = Vec::with_capacity(all.len());
    for (queue, raw) in all {
        match (
            QueueName::new(queue.as_str()),
            decode::<PolicySpec>("policy", &raw),
        ) {
            (Ok(q), Ok(spec)) => out.push((q, spec)),
            _ => tracing::warn!(queue, "ignoring an unreadable autoscaling policy"),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The policy declared through the API for `queue`.
pub async fn api_policy(conn: &Connection, queue: &QueueName) -> Result<Option<PolicySpec>> {
    let raw: Option<String> = redis::cmd("HGET")
        .arg(keys::autoscale(conn.prefix(), "policies"))
        .arg(queue.as_str())
        .query_async(&mut conn.redis())
        .await?;
    raw.map(|r| decode("policy", &r)).transpose()
}

/// Declares `spec` for `queue` (checked first: nothing is written for a
/// bad policy). It overrides the config file's; the leader applies it at
/// its next tick.
pub async fn put_policy(conn: &Connection, queue: &QueueName, spec: &PolicySpec) -> Result<()> {
    spec.check()?;
    redis::cmd("HSET")
        .arg(keys::autoscale(conn.prefix(), "policies"))
        .arg(queue.as_str())
        .arg(encode(spec)?)
        .query_async::<()>(&mut conn.redis())
        .await?;
    Ok(())
}

/// Removes the API's policy for `queue` (the config file's, if any,
/// applies again); true if there was one.
pub async fn remove_policy(conn: &Connection, queue: &QueueName) -> Result<bool> {
    let removed: i64 = redis::cmd("HDEL")
        .arg(keys::autoscale(conn.prefix(), "policies"))
        .arg(queue.as_str())
        .query_async(&mut conn.redis())
        .await?;
    Ok(removed == 1)
}
