//! A private Redis Cluster per test: masters (and optionally a replica of
//! each) on free loopback ports, persistence off, killed when the test
//! ends.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::redis_server::RedisServer;
use crate::wait::{Check, wait_until};

/// How long a node may be unreachable before the cluster marks it failed
/// and a replica takes its slots over. Short, so failover tests are quick.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1_000;

/// A running cluster of `redis-server`s.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes and joins them into one cluster covering all
    /// slots.
    pub async fn start(masters: usize) -> Self {
        Self::start_with_replicas(masters, 0).await
    }

    /// Starts `masters` masters with `replicas` replicas each, joined by
    /// `redis-cli --cluster create`; returns once every node sees the
    /// cluster as `ok` and every master has its replicas in sync.
    pub async fn start_with_replicas(masters: usize, replicas: usize) -> Self {
        let timeout = CLUSTER_NODE_TIMEOUT_MS.to_string();
        let mut nodes = Vec::with_capacity(masters * (1 + replicas));
        for _ in 0..masters * (1 + replicas) {
            nodes.push(
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &timeout,
                ])
                .await,
            );
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        for i in 0..cluster.nodes.len() {
            cluster.wait_node_ok(i).await;
        }
        if replicas > 0 {
            wait_until("replicas in sync", Duration::from_secs(30), || async {
                let masters = cluster.masters().await;
                let mut lagging = Vec::new();
                for &m in &masters {
                    let info = cluster.info(m, "replication").await;
                    let online = info.matches("state=online").count();
                    if online < replicas {
                        lagging.push(cluster.nodes[m].port());
                    }
                }
                if masters.len() == cluster.nodes.len() / (1 + replicas) && lagging.is_empty() {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("masters {masters:?}, lagging {lagging:?}"))
                }
            })
            .await;
        }
        cluster
    }

    /// `redis://` URLs of every node, to use as seeds.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, for direct inspection.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Indexes of the nodes that are masters now, by their own `ROLE`
    /// (killed nodes are skipped).
    pub async fn masters(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(conn) = try_conn(node).await else {
                continue;
            };
            if role(conn).await.as_deref() == Some("master") {
                out.push(i);
            }
        }
        out
    }

    /// The index of the node serving `key`'s slot as master, as the node at
    /// `ask` sees the cluster.
    pub async fn master_for_key(&self, ask: usize, key: &str) -> usize {
        let mut conn = self.nodes[ask].conn().await;
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let shards: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .unwrap();
        let redis::Value::Array(ranges) = shards else {
            panic!("CLUSTER SLOTS answered {shards:?}");
        };
        for range in ranges {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (Some(redis::Value::Int(from)), Some(redis::Value::Int(to))) =
                (parts.first(), parts.get(1))
            else {
                continue;
            };
            if !(*from..=*to).contains(&slot) {
                continue;
            }
            let Some(redis::Value::Array(master)) = parts.get(2) else {
                continue;
            };
            let Some(redis::Value::Int(port)) = master.get(1) else {
                continue;
            };
            return self
                .nodes
                .iter()
                .position(|n| i64::from(n.port()) == *port)
                .expect("the slot's master is one of ours");
        }
        panic!("no master serves slot {slot} of {key}");
    }

    /// Kills node `i` (SIGKILL), as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts killed node `i` again with its data directory (and so its
    /// `nodes.conf`): it rejoins the cluster, as a replica of whichever
    /// node took its slots over.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].restart().await;
    }

    /// `INFO <section>` of node `i`.
    pub async fn info(&self, i: usize, section: &str) -> String {
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.nodes[i].conn().await)
            .await
            .unwrap()
    }

    async fn wait_node_ok(&self, i: usize) {
        let node = &self.nodes[i];
        wait_until("cluster state ok", Duration::from_secs(30), || async {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut node.conn().await)
                .await
                .unwrap();
            if info.contains("cluster_state:ok") {
                Check::Done(())
            } else {
                Check::NotYet(info)
            }
        })
        .await;
    }
}

/// A connection to `node`, or `None` when it does not answer (killed).
async fn try_conn(node: &RedisServer) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(node.url()).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()
}

/// The first field of `ROLE` (`master`, `slave`, `sentinel`).
pub(crate) async fn role(mut conn: redis::aio::MultiplexedConnection) -> Option<String> {
    let value: redis::Value = redis::cmd("ROLE").query_async(&mut conn).await.ok()?;
    match value {
        redis::Value::Array(parts) => match parts.first() {
            Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Some(redis::Value::SimpleString(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}
