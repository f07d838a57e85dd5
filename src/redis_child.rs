//! A private `redis-server` for `drover dev`: data in the data directory
//! (append-only file on), reached over a unix socket so it never competes
//! for a port, stopped when Drover stops.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use tracing::{info, warn};

/// A running private redis-server.
#[derive(Debug)]
pub(crate) struct RedisChild {
    child: Child,
    socket: PathBuf,
}

impl RedisChild {
    /// Starts redis-server with its files in `dir`.
    pub(crate) async fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("data directory {}", dir.display()))?;
        let socket = dir.join("redis.sock");
        if socket.exists() {
            if ping(&socket).await {
                bail!(
                    "a redis-server already serves {}; is another `drover dev` using {}?",
                    socket.display(),
                    dir.display()
                );
            }
            // Left behind by a crashed run.
            std::fs::remove_file(&socket).ok();
        }
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocketperm", "700", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context(
                "cannot start redis-server; install it (e.g. `apt-get install redis-server`) \
                 or point REDIS_URL at a running Redis",
            )?;
        let mut me = Self { child, socket };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !ping(&me.socket).await {
            if let Some(status) = me.child.try_wait()? {
                bail!(
                    "redis-server exited at start ({status}); see {}",
                    dir.join("redis.log").display()
                );
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer within 15s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        info!(socket = %me.socket.display(), dir = %dir.display(), "started a private redis-server");
        Ok(me)
    }

    /// The URL to reach it.
    pub(crate) fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Stops it with SIGTERM (Redis flushes its append-only file) and waits.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => info!("private redis-server stopped"),
            Err(_) => {
                warn!("redis-server did not stop within 10s; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}

async fn ping(socket: &Path) -> bool {
    queue_core::answers_ping(
        &format!("redis+unix://{}", socket.display()),
        Duration::from_secs(1),
    )
    .await
}
