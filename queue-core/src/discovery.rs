//! Which queues exist under the prefix, found with `SCAN` (never `KEYS`) and
//! cached so request paths do not walk the keyspace.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bullmq::redis_connection::AnyConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use tokio::sync::Mutex;

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;

/// Keys asked per `SCAN` call: large enough to finish big keyspaces in few
/// round trips, small enough that each call stays short on the server.
const SCAN_COUNT: usize = 1_000;

/// Lists the queues under a prefix, caching the answer for `ttl`.
///
/// Concurrent callers share one refresh: the first one scans, the others
/// wait for its answer.
#[derive(Debug)]
pub struct QueueDiscovery {
    conn: Connection,
    ttl: Duration,
    cache: Mutex<Option<(Instant, Arc<[QueueName]>)>>,
}

impl QueueDiscovery {
    /// A discovery over `conn`'s prefix whose answers live for `ttl`.
    pub fn new(conn: Connection, ttl: Duration) -> Self {
        Self {
            conn,
            ttl,
            cache: Mutex::new(None),
        }
    }

    /// The queues, sorted by name; at most `ttl` old.
    pub async fn queues(&self) -> Result<Arc<[QueueName]>> {
        let mut cache = self.cache.lock().await;
        if let Some((at, queues)) = cache.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(queues.clone());
            }
        }
        let queues: Arc<[QueueName]> = scan_queues(&self.conn).await?.into();
        *cache = Some((Instant::now(), queues.clone()));
        Ok(queues)
    }

    /// Forgets the cached answer (after creating or obliterating a queue).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }
}

/// Scans the keyspace for queue `meta`/`id` keys; every master of a cluster.
async fn scan_queues(conn: &Connection) -> Result<Vec<QueueName>> {
    let prefix = conn.prefix();
    let mut found = BTreeSet::new();
    for pattern in keys::discovery_patterns(prefix) {
        for key in scan(conn, &pattern).await? {
            if let Some(queue) = keys::queue_from_discovered_key(prefix, &key) {
                found.insert(queue);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// All keys matching `pattern`, walking every node of a cluster.
pub(crate) async fn scan(conn: &Connection, pattern: &str) -> Result<Vec<String>> {
    let mut redis = conn.redis();
    if !conn.is_cluster() {
        return scan_node(&mut redis, None, pattern).await;
    }
    let mut keys = Vec::new();
    for node in cluster_primaries(&mut redis).await? {
        keys.extend(scan_node(&mut redis, Some(&node), pattern).await?);
    }
    Ok(keys)
}

async fn scan_node(
    redis: &mut AnyConnection,
    node: Option<&(String, u16)>,
    pattern: &str,
) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, batch): (u64, Vec<String>) = match (node, &mut *redis) {
            (Some((host, port)), AnyConnection::Cluster(cluster)) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                redis::from_redis_value(cluster.route_command(cmd, routing).await?)?
            }
            _ => cmd.query_async(redis).await?,
        };
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// The (host, port) of every primary in the cluster, from `CLUSTER SLOTS`.
async fn cluster_primaries(redis: &mut AnyConnection) -> Result<BTreeSet<(String, u16)>> {
    let AnyConnection::Cluster(cluster) = redis else {
        return Err(QueueError::Protocol("not a cluster connection".into()));
    };
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let reply = cluster
        .route_command(
            cmd,
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
        )
        .await?;
    let slots: Vec<Vec<redis::Value>> = redis::from_redis_value(reply)?;
    let mut primaries = BTreeSet::new();
    for range in slots {
        // [start, end, [host, port, id, ...], replicas...]
        if let Some(primary) = range.get(2) {
            let node: Vec<redis::Value> = redis::from_redis_value(primary.clone())?;
            if let (Some(host), Some(port)) = (node.first(), node.get(1)) {
                let host: String = redis::from_redis_value(host.clone())?;
                let port: u16 = redis::from_redis_value(port.clone())?;
                primaries.insert((host, port));
            }
        }
    }
    Ok(primaries)
}
