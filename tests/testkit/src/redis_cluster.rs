//! A private Redis Cluster per test: N masters (no replicas) on free
//! loopback ports, persistence off, killed when the test ends.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::redis_server::RedisServer;
use crate::wait::{Check, wait_until};

/// A running cluster of `redis-server`s.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes and joins them into one cluster covering all
    /// slots.
    pub async fn start(masters: usize) -> Self {
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            nodes.push(
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
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
            .args(["--cluster-replicas", "0", "--cluster-yes"])
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
        for node in &cluster.nodes {
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
}
