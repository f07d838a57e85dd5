//! Redis itself, as ops want it next to the queues: memory, clients,
//! version (`INFO`, summed over every primary of a cluster).

use bullmq::redis_connection::AnyConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use serde::Serialize;

use crate::connection::Connection;
use crate::discovery::cluster_primaries;
use crate::error::Result;

/// Figures from Redis `INFO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    /// `redis_version` (of the first node answering).
    pub version: String,
    /// Servers read: 1, or the primaries of a cluster.
    pub nodes: usize,
    /// `used_memory`, bytes.
    pub used_memory_bytes: u64,
    /// `maxmemory`, bytes; 0 for no limit.
    pub maxmemory_bytes: u64,
    /// `connected_clients`.
    pub connected_clients: u64,
    /// `uptime_in_seconds` (the shortest among the nodes).
    pub uptime_secs: u64,
    /// `maxmemory_policy` (of the first node answering).
    pub maxmemory_policy: String,
}

/// Reads `INFO server`, `memory` and `clients`.
pub async fn server_info(conn: &Connection) -> Result<ServerInfo> {
    let mut redis = conn.redis();
    let texts: Vec<String> = match &mut redis {
        AnyConnection::Cluster(cluster) => {
            let mut texts = Vec::new();
            for (host, port) in cluster_primaries(&mut conn.redis()).await? {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port,
                });
                let reply = cluster.route_command(info_command(), routing).await?;
                texts.push(redis::from_redis_value(reply)?);
            }
            texts
        }
        _ => vec![info_command().query_async(&mut redis).await?],
    };
    let mut info = ServerInfo::default();
    for text in &texts {
        add(&mut info, text);
    }
    Ok(info)
}

fn info_command() -> redis::Cmd {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("server").arg("memory").arg("clients");
    cmd
}

/// Adds one node's `INFO` text to the totals.
fn add(info: &mut ServerInfo, text: &str) {
    let first = info.nodes == 0;
    info.nodes += 1;
    for line in text.lines() {
        let Some((field, value)) = line.trim_end().split_once(':') else {
            continue;
        };
        let number = || value.parse::<u64>().unwrap_or(0);
        match field {
            "redis_version" if first => info.version = value.to_string(),
            "maxmemory_policy" if first => info.maxmemory_policy = value.to_string(),
            "used_memory" => info.used_memory_bytes += number(),
            "maxmemory" => info.maxmemory_bytes += number(),
            "connected_clients" => info.connected_clients += number(),
            "uptime_in_seconds" if first || number() < info.uptime_secs => {
                info.uptime_secs = number();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_text_is_summed_over_nodes() {
        let mut info = ServerInfo::default();
        let node = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:50\r\n# Memory\r\nused_memory:1000\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n# Clients\r\nconnected_clients:3\r\n";
        add(&mut info, node);
        add(&mut info, &node.replace(":50", ":20"));
        assert_eq!(info.nodes, 2);
        assert_eq!(info.version, "7.0.15");
        assert_eq!(info.used_memory_bytes, 2000);
        assert_eq!(info.connected_clients, 6);
        assert_eq!(info.uptime_secs, 20);
        assert_eq!(info.maxmemory_policy, "noeviction");
    }
}
