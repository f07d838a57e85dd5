//! The shared Redis connection of a Drover process.
//!
//! One [`Connection`] is opened per process and cloned freely. It wraps
//! bullmq-official's auto-reconnecting connection (a `ConnectionManager` for
//! one server, a cluster client for a Redis Cluster), so a Redis restart or
//! failover costs the commands in flight, not the process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bullmq::options::RedisConnectionOptions;
use bullmq::redis_connection::{AnyConnection, RedisConnection};

use crate::config::RedisSettings;
use crate::error::{QueueError, Result};
use crate::names::QueueName;
use crate::sentinel::Relay;

/// A cloneable handle on Redis, with the key prefix it serves.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConnection,
    settings: RedisSettings,
    /// What bullmq's connections open: the settings' URL, or with Sentinel
    /// the relay's socket.
    url: String,
    /// With Sentinel, the relay that follows the master (dropped last).
    relay: Option<Relay>,
    /// bullmq `Queue` handles by name; creating one writes the queue's
    /// `meta`, so they are made only for queues being written to.
    queues: Mutex<HashMap<QueueName, bullmq::Queue>>,
    /// Queues whose last `WAIT` fell short, and until when adds to them
    /// are refused before anything is written (see `confirm_replicated`).
    short_of_replicas: Mutex<HashMap<QueueName, Instant>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects and checks the server answers.
    pub async fn connect(settings: RedisSettings) -> Result<Self> {
        let (relay, url) = match &settings.sentinel {
            Some(sentinel) => {
                let relay = Relay::start(sentinel).await?;
                let url = sentinel.relay_url(relay.socket());
                (Some(relay), url)
            }
            None => (None, settings.url.clone()),
        };
        let redis = RedisConnection::new_managed_only(&bullmq_options(&settings, &url)).await?;
        redis.ping().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                redis,
                settings,
                url,
                relay,
                queues: Mutex::new(HashMap::new()),
                short_of_replicas: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// With Sentinel, the master's address now (for logs and tests).
    pub fn sentinel_master(&self) -> Option<std::net::SocketAddr> {
        self.inner.relay.as_ref().map(Relay::master)
    }

    /// Refuses an add to `queue` before anything is written while its
    /// master was recently short of replicas (its last `WAIT` fell short,
    /// less than `wait_timeout_ms` ago). A `WAIT` blocks the shared
    /// connection it is sent on, so without this every add to a master
    /// that lost its replica would hold up the process's other commands
    /// for the whole timeout; instead one add per timeout probes whether a
    /// replica is back.
    pub(crate) fn check_replicas(&self, queue: &QueueName) -> Result<()> {
        if self.inner.settings.wait_replicas == 0 {
            return Ok(());
        }
        let mut short = self
            .inner
            .short_of_replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match short.get(queue) {
            Some(until) if Instant::now() < *until => Err(QueueError::NotReplicated {
                queue: queue.to_string(),
                acked: 0,
                wanted: self.inner.settings.wait_replicas,
                written: false,
            }),
            Some(_) => {
                // Let this add probe; the next ones wait for its outcome.
                short.insert(
                    queue.clone(),
                    Instant::now() + self.inner.settings.wait_timeout,
                );
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Waits until `[redis] wait_replicas` replicas hold every write this
    /// process sent so far on the shared connection (Redis `WAIT`, sent to
    /// the master of `queue`'s slot on a cluster). Called after an add, so
    /// an acknowledged job survives its master's death. Fewer confirmations
    /// within `wait_timeout_ms` fail as retryable: the job may exist on the
    /// master alone.
    pub(crate) async fn confirm_replicated(&self, queue: &QueueName) -> Result<()> {
        let settings = &self.inner.settings;
        let wanted = settings.wait_replicas;
        if wanted == 0 {
            return Ok(());
        }
        let timeout_ms = u64::try_from(settings.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(wanted).arg(timeout_ms);
        let acked: i64 = match self.redis() {
            AnyConnection::Cluster(mut cluster) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let slot =
                    crate::keys::cluster_slot(&crate::keys::queue(self.prefix(), queue).meta());
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                redis::from_redis_value(cluster.route_command(cmd, route).await?)?
            }
            mut single => cmd.query_async(&mut single).await?,
        };
        let mut short = self
            .inner
            .short_of_replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if acked < i64::from(wanted) {
            short.insert(queue.clone(), Instant::now() + settings.wait_timeout);
            return Err(QueueError::NotReplicated {
                queue: queue.to_string(),
                acked: u32::try_from(acked.max(0)).unwrap_or(0),
                wanted,
                written: true,
            });
        }
        short.remove(queue);
        Ok(())
    }

    /// The settings this connection was opened with.
    pub fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    /// The BullMQ key prefix.
    pub fn prefix(&self) -> &str {
        self.inner.settings.prefix()
    }

    /// Round-trip time of a PING.
    pub async fn ping(&self) -> Result<Duration> {
        let started = Instant::now();
        self.inner.redis.ping().await?;
        Ok(started.elapsed())
    }

    /// A connection for Drover's own commands (reads, pipelines).
    pub(crate) fn redis(&self) -> AnyConnection {
        self.inner.redis.connection()
    }

    /// Whether this is a Redis Cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        self.inner.redis.is_cluster()
    }

    /// Options for the connections bullmq's `Worker` opens for itself.
    pub(crate) fn bullmq_options(&self) -> RedisConnectionOptions {
        bullmq_options(&self.inner.settings, &self.inner.url)
    }

    /// A bullmq `Queue` handle for writing to `queue` (enqueue, admin).
    pub(crate) async fn bullmq_queue(&self, queue: &QueueName) -> Result<bullmq::Queue> {
        if let Some(q) = self.lock_queues().get(queue) {
            return Ok(q.clone());
        }
        self.check_cluster_queue(queue)?;
        let opts = bullmq::QueueOptions::new()
            .prefix(self.prefix())
            .skip_version_check();
        let handle =
            bullmq::Queue::with_connection(queue.as_str(), self.inner.redis.clone(), opts).await?;
        // Listed at once by every process's discovery (see `discovery.rs`).
        redis::cmd("SADD")
            .arg(crate::keys::queue_registry(self.prefix()))
            .arg(queue.as_str())
            .query_async::<()>(&mut self.redis())
            .await?;
        self.lock_queues().insert(queue.clone(), handle.clone());
        Ok(handle)
    }

    /// On a Redis Cluster, refuses a queue whose keys would spread over
    /// several slots: BullMQ's scripts would fail with CROSSSLOT on every
    /// call, so writing to or consuming such a queue is refused up front,
    /// with what to do instead. Reads (counts, pages) of such a queue still
    /// work, one key at a time.
    pub(crate) fn check_cluster_queue(&self, queue: &QueueName) -> Result<()> {
        if !self.is_cluster() || crate::keys::queue_shares_slot(self.prefix(), queue) {
            return Ok(());
        }
        Err(QueueError::InvalidQueueName {
            name: queue.to_string(),
            reason: "has no {hash tag}, and on a Redis Cluster every key of a queue must share \
                     one slot: name it like \"{emails}\" (one slot per queue, spread over the \
                     masters) or set a prefix like \"{bull}\" (all queues in one slot)",
        })
    }

    /// A bullmq `FlowProducer` on the shared connection, for atomic bulk
    /// adds (cheap: it only clones the connection handle).
    pub(crate) fn flow_producer(&self) -> Result<bullmq::FlowProducer> {
        Ok(bullmq::FlowProducer::with_connection(
            self.inner.redis.clone(),
            Some(self.prefix().to_string()),
        )?)
    }

    /// A new connection of its own, with no response timeout, for blocking
    /// reads (`XREAD BLOCK`) that must not hold up the shared connection.
    pub(crate) async fn dedicated(&self) -> Result<AnyConnection> {
        Ok(self.inner.redis.dedicated_any_connection().await?)
    }

    fn lock_queues(&self) -> std::sync::MutexGuard<'_, HashMap<QueueName, bullmq::Queue>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (inserts are single calls), so a poisoned lock is still usable.
        self.inner
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a Redis answers PING at `url` within `timeout`: one attempt, no
/// retries (for start-up probes such as `drover dev` waiting for its own
/// redis-server).
pub async fn answers_ping(url: &str, timeout: Duration) -> bool {
    let attempt = async {
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(_)))
}

fn bullmq_options(settings: &RedisSettings, url: &str) -> RedisConnectionOptions {
    let mut options = RedisConnectionOptions::new().url(url);
    if !settings.cluster_nodes.is_empty() {
        options = options.cluster_nodes(settings.cluster_nodes.iter().cloned());
    }
    if let Some(pem) = settings.tls() {
        options = options.tls_certs(bullmq::options::TlsCerts {
            root_cert: pem.ca.clone(),
            client_cert: pem.cert.clone(),
            client_key: pem.key.clone(),
        });
    }
    options
}
