//! Running the real `drover` binary from tests.
#![allow(dead_code)] // each test binary uses a subset
#![allow(unreachable_pub)] // shared between test files, not exported
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test helpers fail by panicking

pub mod load;

pub mod sink;
pub mod stack;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use testkit::{ChildGuard, RedisServer};

/// The `drover` binary pointed at one test's Redis.
pub struct Drover {
    redis_url: String,
    /// Logs of spawned processes live here (kept for post-mortems).
    pub dir: TempDir,
}

impl Drover {
    pub fn new(server: &RedisServer) -> Self {
        Self {
            redis_url: server.url(),
            dir: tempfile::Builder::new()
                .prefix("drover-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn bin() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_drover"))
    }

    /// A command with this test's Redis and no inherited Drover settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(Self::bin());
        cmd.args(args)
            .env("REDIS_URL", &self.redis_url)
            .env_remove("DROVER_PREFIX")
            .env_remove("DROVER_CONFIG")
            .env_remove("DROVER_REDIS_CLUSTER_NODES")
            .env_remove("RUST_LOG")
            .env_remove("DATABASE_URL")
            .env_remove("DROVER_MIGRATE_URL")
            .env_remove("DROVER_API_ADDR")
            .env("DROVER_DATA_DIR", self.dir.path().join("data"))
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs a one-shot command to completion.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::from(self.command(args));
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("drover {args:?} did not finish in 60s"))
            .unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "drover {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must succeed and print JSON.
    pub async fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args).await;
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("drover {args:?} printed no JSON ({e}): {stdout}"))
    }

    /// Adds a job with `drover enqueue`; returns its id.
    pub async fn enqueue(&self, queue: &str, name: &str, data: &Value, extra: &[&str]) -> String {
        let data = data.to_string();
        let mut args = vec!["enqueue", queue, name, "--data", &data];
        args.extend_from_slice(extra);
        self.ok(&args).await.trim().to_string()
    }

    /// Starts `drover worker ...` in the background; its output goes to
    /// `<dir>/<label>.log`.
    pub fn spawn_worker(&self, label: &str, args: &[&str]) -> ChildGuard {
        let mut full = vec!["worker"];
        full.extend_from_slice(args);
        self.spawn(label, &full)
    }

    /// Starts `drover <args>` in the background; its output goes to
    /// `<dir>/<label>.log`.
    pub fn spawn(&self, label: &str, full: &[&str]) -> ChildGuard {
        self.spawn_env(label, full, &[])
    }

    /// [`spawn`](Self::spawn) with more environment variables.
    pub fn spawn_env(&self, label: &str, full: &[&str], env: &[(&str, &str)]) -> ChildGuard {
        let log = std::fs::File::create(self.log_path(label)).unwrap();
        let child = self
            .command(full)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        ChildGuard::new(format!("drover {} ({label})", full[0]), child)
    }

    pub fn log_path(&self, label: &str) -> PathBuf {
        self.dir.path().join(format!("{label}.log"))
    }

    /// What a spawned process logged so far.
    pub fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.log_path(label)).unwrap_or_default()
    }
}

/// Counts events of one kind per job id in the queue's stream.
pub async fn event_counts(
    server: &RedisServer,
    queue: &str,
    event: &str,
) -> std::collections::HashMap<String, usize> {
    event_counts_on(&server.conn().await, queue, event).await
}

/// [`event_counts`] through any connection (a cluster's, say).
pub async fn event_counts_on<C>(
    conn: &C,
    queue: &str,
    event: &str,
) -> std::collections::HashMap<String, usize>
where
    C: redis::aio::ConnectionLike + Clone + Send,
{
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(format!("bull:{queue}:events"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    let mut counts = std::collections::HashMap::new();
    for (_, e) in entries {
        if e.get("event").map(String::as_str) == Some(event) {
            *counts.entry(e["jobId"].clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// The number of jobs in `bull:<queue>:active`.
pub async fn active_len(server: &RedisServer, queue: &str) -> usize {
    server.list(queue, "active").await.len()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client for talking to `drover serve` (plain HTTP; rustls with
/// ring is installed as the process's provider, as the binary does).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Waits until `GET http://addr/health` answers 200.
pub async fn wait_healthy(addr: &str, what: &str) {
    let client = http_client();
    let url = format!("http://{addr}/health");
    testkit::wait_until(what, Duration::from_secs(30), || {
        let req = client.get(&url).send();
        async move {
            match req.await {
                Ok(r) if r.status().is_success() => testkit::Check::Done(()),
                Ok(r) => testkit::Check::NotYet(r.status().to_string()),
                Err(e) => testkit::Check::NotYet(e.to_string()),
            }
        }
    })
    .await;
}
