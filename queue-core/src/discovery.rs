//! Which queues exist under the prefix: the queues Drover processes wrote
//! to or consume (a set every process adds to, read on each call), and the
//! ones other clients made, found with `SCAN` (never `KEYS`) in the
//! background so request paths do not walk the keyspace.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bullmq::redis_connection::AnyConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use tokio::sync::Mutex;

use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;

/// Keys asked per `SCAN` call: large enough to finish big keyspaces in few
/// round trips, small enough that each call stays short on the server
/// (about a millisecond).
const SCAN_COUNT: usize = 2_000;

/// A background rescan waits at least this many times as long as the last
/// scan took, so a keyspace of millions of job keys (seconds per scan) is
/// not walked over and over: Redis spends at most ~1/30 of its time on it.
const RESCAN_SPACING: u32 = 30;

/// Lists the queues under a prefix: the last scan's answer (cached for
/// `ttl`) with the registered queues added.
///
/// Only the first call scans while the caller waits. Later, a caller that
/// finds the answer stale gets it at once and starts one scan in the
/// background, so a request path never walks a large keyspace (a queue
/// holding millions of jobs has millions of keys). Queues a Drover process
/// wrote to or consumes are in the registry set and show up at once; other
/// clients' new queues show up after the next scan.
#[derive(Debug, Clone)]
pub struct QueueDiscovery {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Connection,
    ttl: Duration,
    cache: Mutex<Option<Scanned>>,
    refreshing: AtomicBool,
}

/// One scan's answer.
#[derive(Debug)]
struct Scanned {
    at: Instant,
    took: Duration,
    queues: Arc<[QueueName]>,
}

impl Scanned {
    fn is_stale(&self, ttl: Duration) -> bool {
        self.at.elapsed() >= ttl.max(self.took * RESCAN_SPACING)
    }
}

impl QueueDiscovery {
    /// A discovery over `conn`'s prefix whose answers live for `ttl`.
    pub fn new(conn: Connection, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn,
                ttl,
                cache: Mutex::new(None),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// The queues, sorted by name. The first call scans; later ones answer
    /// from the cache, refreshing it in the background once it is stale:
    /// `ttl` old, and at least [`RESCAN_SPACING`] times as old as the last
    /// scan took.
    pub async fn queues(&self) -> Result<Arc<[QueueName]>> {
        let mut cache = self.inner.cache.lock().await;
        if let Some(scanned) = cache.as_ref() {
            if scanned.is_stale(self.inner.ttl)
                && !self.inner.refreshing.swap(true, Ordering::AcqRel)
            {
                let inner = Arc::clone(&self.inner);
                tokio::spawn(async move {
                    match Scanned::take(&inner.conn).await {
                        Ok(fresh) => *inner.cache.lock().await = Some(fresh),
                        Err(e) => tracing::warn!(error = %e, "cannot list queues; will retry"),
                    }
                    inner.refreshing.store(false, Ordering::Release);
                });
            }
            let scanned = Arc::clone(&scanned.queues);
            drop(cache);
            return with_registered(&self.inner.conn, scanned).await;
        }
        let scanned = Scanned::take(&self.inner.conn).await?;
        let queues = Arc::clone(&scanned.queues);
        *cache = Some(scanned);
        Ok(queues)
    }

    /// Forgets the cached answer (after obliterating a queue), so the next
    /// call scans.
    pub async fn invalidate(&self) {
        *self.inner.cache.lock().await = None;
    }
}

/// `scanned` plus the queues in the registry set it lacks, sorted.
async fn with_registered(conn: &Connection, scanned: Arc<[QueueName]>) -> Result<Arc<[QueueName]>> {
    let registered = registered(conn).await?;
    if registered.iter().all(|q| scanned.binary_search(q).is_ok()) {
        return Ok(scanned);
    }
    let all: BTreeSet<QueueName> = scanned.iter().cloned().chain(registered).collect();
    Ok(all.into_iter().collect::<Vec<_>>().into())
}

/// The queues in the registry set (names that are not queue names, which
/// no Drover process writes, are skipped).
async fn registered(conn: &Connection) -> Result<Vec<QueueName>> {
    let names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::queue_registry(conn.prefix()))
        .query_async(&mut conn.redis())
        .await?;
    Ok(names
        .into_iter()
        .filter_map(|n| QueueName::new(n).ok())
        .collect())
}

impl Scanned {
    /// Scans the keyspace for queue `meta`/`id` keys, on every primary of
    /// a cluster, and adds the registered queues that still exist (and
    /// forgets those that do not: obliterated, or removed by another
    /// client).
    async fn take(conn: &Connection) -> Result<Self> {
        let started = Instant::now();
        let prefix = conn.prefix();
        let mut found = BTreeSet::new();
        for key in scan(conn, &keys::discovery_pattern(prefix)).await? {
            if let Some(queue) = keys::queue_from_discovered_key(prefix, &key) {
                found.insert(queue);
            }
        }
        let unseen: Vec<QueueName> = registered(conn)
            .await?
            .into_iter()
            .filter(|q| !found.contains(q))
            .collect();
        for queue in unseen {
            let k = keys::queue(prefix, &queue);
            let (meta, id): (bool, bool) = redis::pipe()
                .exists(k.meta())
                .exists(k.get("id"))
                .query_async(&mut conn.redis())
                .await?;
            if meta || id {
                found.insert(queue);
            } else {
                redis::cmd("SREM")
                    .arg(keys::queue_registry(prefix))
                    .arg(queue.as_str())
                    .query_async::<()>(&mut conn.redis())
                    .await?;
            }
        }
        let queues: Vec<QueueName> = found.into_iter().collect();
        Ok(Self {
            at: Instant::now(),
            took: started.elapsed(),
            queues: queues.into(),
        })
    }
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
pub(crate) async fn cluster_primaries(
    redis: &mut AnyConnection,
) -> Result<BTreeSet<(String, u16)>> {
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
