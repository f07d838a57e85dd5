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
use crate::error::Result;
use crate::names::QueueName;

/// A cloneable handle on Redis, with the key prefix it serves.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConnection,
    settings: RedisSettings,
    /// bullmq `Queue` handles by name; creating one writes the queue's
    /// `meta`, so they are made only for queues being written to.
    queues: Mutex<HashMap<QueueName, bullmq::Queue>>,
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
        let redis = RedisConnection::new_managed_only(&bullmq_options(&settings)).await?;
        redis.ping().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                redis,
                settings,
                queues: Mutex::new(HashMap::new()),
            }),
        })
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
        bullmq_options(&self.inner.settings)
    }

    /// A bullmq `Queue` handle for writing to `queue` (enqueue, admin).
    pub(crate) async fn bullmq_queue(&self, queue: &QueueName) -> Result<bullmq::Queue> {
        if let Some(q) = self.lock_queues().get(queue) {
            return Ok(q.clone());
        }
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

fn bullmq_options(settings: &RedisSettings) -> RedisConnectionOptions {
    let mut options = RedisConnectionOptions::new().url(settings.url.clone());
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
