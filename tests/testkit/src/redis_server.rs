//! A private `redis-server` per test: its own port and directory, nothing
//! persisted, killed when the test ends.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::ChildGuard;

/// A `redis-server` child process owned by one test.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: ChildGuard,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a fresh server with persistence off on a free loopback port.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a fresh server with extra `redis-server` arguments
    /// (e.g. `["--appendonly", "yes"]`).
    pub async fn start_with(extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("drover-redis-")
            .tempdir()
            .expect("temp dir for redis-server");
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        // A port found free can be taken by a parallel test before redis
        // binds it; retry with another one when that happens.
        for _ in 0..10 {
            let port = free_port();
            let mut child = spawn(port, &dir, &extra_args);
            if wait_ready(port, &mut child).await {
                return Self {
                    port,
                    dir,
                    child,
                    extra_args,
                };
            }
        }
        panic!("redis-server did not start after 10 attempts");
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` URL for this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A fresh multiplexed connection, for assertions.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        // Assertions may read large structures (a 40,000-entry stream);
        // redis-rs's default 500 ms response timeout is too short for that
        // on a busy test machine.
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect to test redis")
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts the server again on the same port and directory (after
    /// [`kill`](Self::kill)); data survives only if persistence was enabled.
    pub async fn restart(&mut self) {
        self.child.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = spawn(self.port, &self.dir, &self.extra_args);
            if wait_ready(self.port, &mut self.child).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server could not restart on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until the server answers PING; false if the process died first
/// (typically: the port was taken).
async fn wait_ready(port: u16, child: &mut ChildGuard) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("redis url");
    loop {
        if child.try_wait().is_some() {
            return false;
        }
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
            if pong.is_ok() {
                return true;
            }
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} never answered PING"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn(port: u16, dir: &TempDir, extra_args: &[String]) -> ChildGuard {
    let child = Command::new("redis-server")
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .arg("--logfile")
        .arg(dir.path().join("redis.log"))
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}); .ci/run installs it on a fresh machine")
        });
    ChildGuard::new(format!("redis-server:{port}"), child)
}

/// Whether something answers PING on 127.0.0.1:`port` now.
pub(crate) async fn answers(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
