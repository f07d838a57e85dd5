//! A private `redis-server` child: no persistence, bound to 127.0.0.1 on a
//! port that was free a moment before, stopped (and its directory removed)
//! at the end.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long the server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries with a new port when the server exits at once (the port was taken
/// between our probe and its bind).
const START_ATTEMPTS: u32 = 3;

/// A running `redis-server` owned by this process (killed on drop).
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    pid: Pid,
    port: u16,
    // Kept for its Drop: the server's working directory.
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `program` and waits until it answers PING.
    pub async fn start(program: &OsStr) -> Result<Self> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(program).await {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    async fn try_start(program: &OsStr) -> Result<Self> {
        let port = free_port()?;
        let dir = tempfile::Builder::new()
            .prefix("drover-bench-redis-")
            .tempdir()
            .context("creating a directory for redis-server")?;
        let child = Command::new(program)
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.to_string_lossy()))?;
        let pid = pid_of(&child)?;
        let mut server = Self {
            child,
            pid,
            port,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = redis::Client::open(self.url())?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("redis-server exited at start ({status})");
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "redis-server on port {} did not answer within {START_TIMEOUT:?}",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The host the server listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The server's process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGTERM, then SIGKILL if it has not exited within a few seconds.
    pub async fn stop(mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        kill(self.pid, Signal::SIGTERM).context("signalling redis-server")?;
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// A port nothing listened on a moment ago (on 127.0.0.1).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The pid of a child just spawned.
pub fn pid_of(child: &Child) -> Result<Pid> {
    let id = child
        .id()
        .context("the child exited before its pid was read")?;
    Ok(Pid::from_raw(i32::try_from(id)?))
}
