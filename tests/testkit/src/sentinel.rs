//! A private Redis Sentinel group per test: one master, replicas of it, and
//! three Sentinels watching it with a short `down-after-milliseconds`, all
//! on free loopback ports and killed when the test ends.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::ChildGuard;
use crate::redis_cluster::role;
use crate::redis_server::{RedisServer, free_port};
use crate::wait::{Check, wait_until};

/// The name of the master group the Sentinels monitor.
pub const SENTINEL_MASTER: &str = "drovermaster";
/// How long the master may be unreachable before the Sentinels fail over.
pub const DOWN_AFTER_MS: u64 = 1_000;

/// A master, its replicas and three Sentinels.
#[derive(Debug)]
pub struct SentinelGroup {
    /// `[0]` is the first master; the rest start as its replicas.
    servers: Vec<RedisServer>,
    sentinels: Vec<(u16, ChildGuard, TempDir)>,
    /// The data servers' password, if they require one.
    password: Option<String>,
}

impl SentinelGroup {
    /// Starts a master with `replicas` replicas in sync, and three
    /// Sentinels that all see it.
    pub async fn start(replicas: usize) -> Self {
        Self::start_with_password(replicas, None).await
    }

    /// [`start`](Self::start), with every data server requiring
    /// `password` (replicas and Sentinels are given it).
    pub async fn start_with_password(replicas: usize, password: Option<&str>) -> Self {
        let master = RedisServer::start().await;
        let port = master.port().to_string();
        let mut servers = vec![master];
        for _ in 0..replicas {
            servers.push(RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]).await);
        }
        let group = Self {
            servers,
            sentinels: Vec::new(),
            password: None,
        };
        wait_until("replicas in sync", Duration::from_secs(30), || async {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut group.servers[0].conn().await)
                .await
                .unwrap();
            if info.matches("state=online").count() == replicas {
                Check::Done(())
            } else {
                Check::NotYet(info)
            }
        })
        .await;
        let mut group = group;
        if let Some(password) = password {
            // Set after start: RedisServer's readiness probe does not
            // authenticate. `masterauth` first, so replicas reconnect.
            for option in ["masterauth", "requirepass"] {
                for server in &group.servers {
                    let _: () = redis::cmd("CONFIG")
                        .arg("SET")
                        .arg(option)
                        .arg(password)
                        .query_async(&mut server.conn().await)
                        .await
                        .unwrap();
                }
            }
            group.password = Some(password.to_owned());
        }
        for _ in 0..3 {
            let sentinel = start_sentinel(group.servers[0].port(), password).await;
            group.sentinels.push(sentinel);
        }
        // Every Sentinel knows the replicas and the other Sentinels, so a
        // failover can be agreed on and has somewhere to go.
        for i in 0..group.sentinels.len() {
            let port = group.sentinels[i].0;
            wait_until(
                "sentinels see the group",
                Duration::from_secs(30),
                || async {
                    let mut conn = sentinel_conn(port).await;
                    let master: Vec<String> = redis::cmd("SENTINEL")
                        .arg("master")
                        .arg(SENTINEL_MASTER)
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    let field = |name: &str| {
                        master
                            .iter()
                            .position(|f| f == name)
                            .and_then(|i| master.get(i + 1))
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0)
                    };
                    let (replicas_seen, others) =
                        (field("num-slaves"), field("num-other-sentinels"));
                    if replicas_seen == replicas && others == 2 {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!(
                            "{replicas_seen} replicas, {others} other sentinels"
                        ))
                    }
                },
            )
            .await;
        }
        group
    }

    /// `redis+sentinel://` URL naming every Sentinel and the group.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(port, _, _)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{SENTINEL_MASTER}", hosts.join(","))
    }

    /// The data servers (`[0]` started as the master).
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// Kills data server `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Asks the Sentinels for a failover while the master is healthy
    /// (`SENTINEL FAILOVER`): it is demoted to a replica and stays
    /// reachable, read-only.
    pub async fn failover(&self) {
        let mut conn = sentinel_conn(self.sentinels[0].0).await;
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(SENTINEL_MASTER)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    /// A connection to data server `i`, authenticated when it needs it.
    pub async fn data_conn(&self, i: usize) -> redis::aio::MultiplexedConnection {
        let auth = self
            .password
            .as_deref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        redis::Client::open(format!(
            "redis://{auth}127.0.0.1:{}",
            self.servers[i].port()
        ))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
    }

    /// The index of the data server the Sentinels name as master now.
    pub async fn master(&self) -> Option<usize> {
        let mut conn = sentinel_conn(self.sentinels[0].0).await;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SENTINEL_MASTER)
            .query_async(&mut conn)
            .await
            .ok()?;
        self.servers.iter().position(|s| s.port() == port)
    }

    /// Waits until a server other than `old` is master by the Sentinels and
    /// by its own `ROLE`; returns its index.
    pub async fn wait_failover(&self, old: usize, deadline: Duration) -> usize {
        wait_until("sentinel failover", deadline, || async {
            match self.master().await {
                Some(m) if m != old => {
                    if role(self.data_conn(m).await).await.as_deref() == Some("master") {
                        Check::Done(m)
                    } else {
                        Check::NotYet(format!("server {m} named, not master yet"))
                    }
                }
                seen => Check::NotYet(format!("master {seen:?}")),
            }
        })
        .await
    }
}

async fn sentinel_conn(port: u16) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// Starts one Sentinel watching the master on `master_port`.
async fn start_sentinel(master_port: u16, password: Option<&str>) -> (u16, ChildGuard, TempDir) {
    for _ in 0..10 {
        let dir = tempfile::Builder::new()
            .prefix("drover-sentinel-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 10000\n\
                 sentinel parallel-syncs {SENTINEL_MASTER} 1\n{auth}",
                dir = dir.path().display(),
                auth = password
                    .map(|p| format!("sentinel auth-pass {SENTINEL_MASTER} {p}\n"))
                    .unwrap_or_default(),
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts");
        let mut child = ChildGuard::new(format!("redis-sentinel:{port}"), child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait().is_some() {
                break; // the port was taken: try another
            }
            if crate::redis_server::answers(port).await {
                return (port, child, dir);
            }
            assert!(
                Instant::now() < deadline,
                "sentinel on {port} never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("no sentinel started after 10 attempts");
}
