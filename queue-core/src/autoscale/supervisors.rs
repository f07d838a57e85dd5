//! `drover worker --supervise` processes register here, so the leader can
//! share a queue's desired process count among them (one per host,
//! usually) and count the processes they run.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lease::encode;
use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;

/// A supervisor, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    /// Unique per process start.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// When this record was written, ms since the epoch.
    pub heartbeat_at_ms: u64,
    /// The queues it runs worker processes for.
    pub queues: Vec<SupervisedQueue>,
}

/// One queue a supervisor runs processes for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisedQueue {
    /// The queue.
    pub queue: String,
    /// Processes running (not draining).
    pub running: u32,
    /// Processes draining (finishing their jobs before they exit).
    pub draining: u32,
    /// Jobs each of its processes runs at once on the queue.
    pub concurrency: u32,
}

/// Writes `info`, stamped with the current time.
pub async fn supervisor_heartbeat(conn: &Connection, info: &mut SupervisorInfo) -> Result<()> {
    info.heartbeat_at_ms = now_ms();
    redis::cmd("HSET")
        .arg(keys::autoscale(conn.prefix(), "supervisors"))
        .arg(&info.id)
        .arg(encode(info)?)
        .query_async::<()>(&mut conn.redis())
        .await?;
    Ok(())
}

/// Removes a supervisor (clean shutdown).
pub async fn deregister_supervisor(conn: &Connection, id: &str) -> Result<()> {
    redis::cmd("HDEL")
        .arg(keys::autoscale(conn.prefix(), "supervisors"))
        .arg(id)
        .query_async::<()>(&mut conn.redis())
        .await?;
    Ok(())
}

/// Supervisors that beat within `live_within`, sorted by id; records of
/// the others are deleted on the way.
pub async fn live_supervisors(
    conn: &Connection,
    live_within: Duration,
) -> Result<Vec<SupervisorInfo>> {
    let key = keys::autoscale(conn.prefix(), "supervisors");
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn.redis())
        .await?;
    let now = now_ms();
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for (id, raw) in all {
        let info: std::result::Result<SupervisorInfo, _> = serde_json::from_str(&raw);
        match info {
            Ok(info)
                if Duration::from_millis(now.saturating_sub(info.heartbeat_at_ms))
                    <= live_within =>
            {
                live.push(info);
            }
            _ => dead.push(id),
        }
    }
    if !dead.is_empty() {
        redis::cmd("HDEL")
            .arg(&key)
            .arg(&dead)
            .query_async::<()>(&mut conn.redis())
            .await
            .map_err(QueueError::from)?;
    }
    live.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(live)
}
