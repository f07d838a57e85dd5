//! Who is working: Drover workers' heartbeats (our own registry key), and
//! any BullMQ worker's connection as BullMQ's `getWorkers()` sees it.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::Result;
use crate::keys;

/// A Drover worker counts as live if it beat within this.
pub const LIVE_WITHIN: Duration = Duration::from_secs(30);
/// Heartbeat records older than this (workers that died without
/// deregistering) are deleted when read.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3_600);

/// A Drover worker process, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique per process start.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Drover version.
    pub version: String,
    /// When the process started, ms since the epoch.
    pub started_at_ms: u64,
    /// When this record was written, ms since the epoch.
    pub heartbeat_at_ms: u64,
    /// The queues it consumes.
    pub queues: Vec<WorkerQueue>,
}

/// One queue a worker consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerQueue {
    /// Queue name.
    pub queue: String,
    /// Jobs it processes at once.
    pub concurrency: usize,
    /// Jobs it is processing now.
    pub in_flight: usize,
}

/// Writes `info` (stamped with the current time) to the registry.
pub async fn heartbeat(conn: &Connection, info: &mut WorkerInfo) -> Result<()> {
    info.heartbeat_at_ms = now_ms();
    let json = serde_json::to_string(info)
        .map_err(|e| crate::error::QueueError::Protocol(format!("cannot encode heartbeat: {e}")))?;
    redis::cmd("HSET")
        .arg(keys::worker_registry(conn.prefix()))
        .arg(&info.id)
        .arg(json)
        .query_async::<()>(&mut conn.redis())
        .await?;
    Ok(())
}

/// Removes a worker from the registry (clean shutdown).
pub async fn deregister(conn: &Connection, worker_id: &str) -> Result<()> {
    redis::cmd("HDEL")
        .arg(keys::worker_registry(conn.prefix()))
        .arg(worker_id)
        .query_async::<()>(&mut conn.redis())
        .await?;
    Ok(())
}

/// Live workers: those whose last heartbeat is younger than `live_within`.
/// Records older than `forget_after` (workers that died without
/// deregistering) are deleted on the way.
pub async fn live_workers(
    conn: &Connection,
    live_within: Duration,
    forget_after: Duration,
) -> Result<Vec<WorkerInfo>> {
    let key = keys::worker_registry(conn.prefix());
    let entries: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn.redis())
        .await?;
    let now = now_ms();
    let age = |info: &WorkerInfo| Duration::from_millis(now.saturating_sub(info.heartbeat_at_ms));
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for (id, raw) in entries {
        match serde_json::from_str::<WorkerInfo>(&raw) {
            Ok(info) if age(&info) <= live_within => live.push(info),
            Ok(info) if age(&info) <= forget_after => {}
            _ => dead.push(id),
        }
    }
    if !dead.is_empty() {
        redis::cmd("HDEL")
            .arg(&key)
            .arg(&dead)
            .query_async::<()>(&mut conn.redis())
            .await?;
    }
    live.sort_by(|a, b| (&a.host, a.pid, &a.id).cmp(&(&b.host, b.pid, &b.id)));
    Ok(live)
}

/// A connection that names itself as a BullMQ worker (`P:<base64 queue>`
/// or `P:<base64 queue>:w:<name>`), from any client: Node, Python, Drover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BullmqWorkerClient {
    /// The queue it blocks on.
    pub queue: String,
    /// The worker's name, if it set one.
    pub name: Option<String>,
    /// Client address.
    pub addr: String,
    /// Seconds since it connected.
    pub age_secs: u64,
}

/// What the BullMQ worker name of every Drover worker starts with
/// (`drover-<host>-<pid>`), so listings can tell Drover's engine
/// connections from other clients' workers.
pub const DROVER_WORKER_NAME_PREFIX: &str = "drover-";

impl BullmqWorkerClient {
    /// Whether a Drover worker process opened it (it is then listed from
    /// the heartbeats, with more detail).
    pub fn is_drover(&self) -> bool {
        self.name
            .as_deref()
            .is_some_and(|n| n.starts_with(DROVER_WORKER_NAME_PREFIX))
    }
}

/// BullMQ workers connected now, read from `CLIENT LIST` as BullMQ's
/// `Queue.getWorkers()` does (empty where the server refuses the command).
pub async fn bullmq_worker_clients(conn: &Connection) -> Result<Vec<BullmqWorkerClient>> {
    let list: String = match redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn.redis())
        .await
    {
        Ok(list) => list,
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(parse_client_list(conn.prefix(), &list))
}

fn parse_client_list(prefix: &str, list: &str) -> Vec<BullmqWorkerClient> {
    let mut clients = Vec::new();
    for line in list.lines() {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        let Some(client_name) = field("name") else {
            continue;
        };
        let Some(rest) = client_name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(':'))
        else {
            continue;
        };
        let (encoded, name) = match rest.split_once(":w:") {
            Some((q, n)) => (q, Some(n.to_string())),
            None => (rest, None),
        };
        // Node names the blocking connection `P:<b64>`; any other suffix is
        // another kind of connection (e.g. QueueEvents' `:qe`).
        if encoded.contains(':') {
            continue;
        }
        let Some(queue) = decode_base64(encoded).and_then(|b| String::from_utf8(b).ok()) else {
            continue;
        };
        clients.push(BullmqWorkerClient {
            queue,
            name,
            addr: field("addr").unwrap_or_default().to_string(),
            age_secs: field("age").and_then(|a| a.parse().ok()).unwrap_or(0),
        });
    }
    clients
}

/// Standard base64 with padding, as Node's `Buffer.toString('base64')`.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 != 0 || bytes.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let produced = chunk.len() * 6 / 8;
        for i in 0..produced {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_like_node() {
        assert_eq!(decode_base64("cTI=").unwrap(), b"q2");
        assert_eq!(decode_base64("ZW1haWxz").unwrap(), b"emails");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert!(decode_base64("abc").is_none());
        assert!(decode_base64("a$==").is_none());
    }

    #[test]
    fn client_list_names_bullmq_workers() {
        let list = "id=1 addr=127.0.0.1:5000 laddr=x fd=8 name=bull:cTI= age=12 idle=0\n\
                    id=2 addr=127.0.0.1:5001 fd=9 name=bull:cTI=:w:wname age=3 idle=0\n\
                    id=3 addr=127.0.0.1:5002 fd=10 name=bull:cTI=:qe age=3 idle=0\n\
                    id=4 addr=127.0.0.1:5003 fd=11 name= age=1 idle=0\n\
                    id=5 addr=127.0.0.1:5004 fd=12 name=other:cTI= age=1 idle=0";
        let clients = parse_client_list("bull", list);
        assert_eq!(clients.len(), 2, "{clients:?}");
        assert_eq!(clients[0].queue, "q2");
        assert_eq!(clients[0].name, None);
        assert_eq!(clients[0].age_secs, 12);
        assert_eq!(clients[1].name.as_deref(), Some("wname"));
        assert_eq!(clients[1].addr, "127.0.0.1:5001");
    }
}
