//! Worker processes under test: one OS process per case, so its peak RSS
//! is its own.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::QUEUE;
use crate::server::pid_of;

/// The three workers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum WorkerKind {
    /// Node BullMQ's `Worker` (`node/worker.mjs`).
    Node,
    /// bullmq-official's `Worker` with a no-op processor
    /// (`bare-bullmq-worker`).
    Bare,
    /// `drover worker --handler echo`.
    Drover,
}

impl WorkerKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 3] = [Self::Node, Self::Bare, Self::Drover];

    /// Its name in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Bare => "bare",
            Self::Drover => "drover",
        }
    }
}

/// Where the programs under test are.
#[derive(Debug, Clone)]
pub struct Launchers {
    /// The `node` executable.
    pub node: PathBuf,
    /// `bench/node`, holding `worker.mjs` and `enqueue.mjs`.
    pub node_scripts: PathBuf,
    /// The `bare-bullmq-worker` binary.
    pub bare: PathBuf,
    /// The `drover` binary.
    pub drover: PathBuf,
}

impl Launchers {
    /// Finds the programs `workers` need: `drover` and `bare-bullmq-worker`
    /// from the flags, else `bare-bullmq-worker` next to the running
    /// program, else both in `$CARGO_TARGET_DIR/release` (default
    /// `$HOME/.cache/drover-target`). A missing one is an error saying how
    /// to build it.
    pub fn locate(
        node: PathBuf,
        drover_bin: Option<PathBuf>,
        bare_bin: Option<PathBuf>,
        workers: &[WorkerKind],
    ) -> Result<Self> {
        let target = target_dir();
        let release = target.join("release");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let sibling = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("bare-bullmq-worker")))
            .filter(|p| p.is_file());
        let launchers = Self {
            node,
            node_scripts: manifest.join("node"),
            bare: bare_bin
                .or(sibling)
                .unwrap_or_else(|| release.join("bare-bullmq-worker")),
            drover: drover_bin.unwrap_or_else(|| release.join("drover")),
        };
        let missing = |what: &str, path: &Path, package: &str, flag: &str| {
            anyhow::anyhow!(
                "{what} not found at {}; build it with\n  \
                 CARGO_TARGET_DIR={} cargo build --release -p {package}\n\
                 or point to it with {flag}",
                path.display(),
                target.display()
            )
        };
        if workers.contains(&WorkerKind::Drover) && !launchers.drover.is_file() {
            return Err(missing(
                "drover",
                &launchers.drover,
                "drover",
                "--drover-bin",
            ));
        }
        if workers.contains(&WorkerKind::Bare) && !launchers.bare.is_file() {
            return Err(missing(
                "bare-bullmq-worker",
                &launchers.bare,
                "drover-bench",
                "--bare-bin",
            ));
        }
        if workers.contains(&WorkerKind::Node) {
            let bullmq = manifest.join("../compat/node_modules/bullmq/package.json");
            if !bullmq.is_file() {
                bail!(
                    "Node BullMQ is not installed ({} is missing); run `npm ci` in compat/",
                    bullmq.display()
                );
            }
        }
        Ok(launchers)
    }

    /// The command line of `kind` consuming the benchmark queue.
    pub fn command(
        &self,
        kind: WorkerKind,
        (host, port): (&str, u16),
        concurrency: usize,
    ) -> Command {
        let url = format!("redis://{host}:{port}");
        let concurrency = concurrency.to_string();
        let mut cmd;
        match kind {
            WorkerKind::Node => {
                cmd = Command::new(&self.node);
                cmd.arg(self.node_scripts.join("worker.mjs"))
                    .args(["--host", host, "--port", &port.to_string()])
                    .args(["--queue", QUEUE, "--concurrency", &concurrency]);
            }
            WorkerKind::Bare => {
                cmd = Command::new(&self.bare);
                cmd.args(["--redis-url", &url, "--queue", QUEUE])
                    .args(["--concurrency", &concurrency]);
            }
            WorkerKind::Drover => {
                cmd = Command::new(&self.drover);
                // Drover's defaults, whatever the caller's environment says.
                for var in [
                    "RUST_LOG",
                    "REDIS_URL",
                    "DROVER_CONFIG",
                    "DROVER_PREFIX",
                    "DROVER_REDIS_CLUSTER_NODES",
                    "DROVER_METRICS_ADDR",
                    "DROVER_LOG_FORMAT",
                ] {
                    cmd.env_remove(var);
                }
                cmd.args(["--redis-url", &url, "worker", "--queue", QUEUE])
                    .args(["--concurrency", &concurrency, "--handler", "echo"]);
            }
        }
        cmd
    }
}

/// Cargo's target directory as the README's build commands use it:
/// `$CARGO_TARGET_DIR`, else `$HOME/.cache/drover-target`, else `target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/drover-target")))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// `node --version`.
pub fn node_version(node: &Path) -> Result<String> {
    let out = std::process::Command::new(node)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", node.display()))?;
    if !out.status.success() {
        bail!("{} --version failed ({})", node.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A worker process, killed if dropped while running.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    pid: Pid,
    log: PathBuf,
}

/// How a worker ended after SIGTERM.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// Its exit status.
    pub status: ExitStatus,
    /// It exited by itself within the grace period (no SIGKILL).
    pub graceful: bool,
    /// From SIGTERM to exit.
    pub took: Duration,
}

impl WorkerProcess {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let program: OsString = cmd.as_std().get_program().to_owned();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.to_string_lossy()))?;
        let pid = pid_of(&child)?;
        Ok(Self {
            child,
            pid,
            log: log.to_path_buf(),
        })
    }

    /// Fails (quoting the end of its log) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the worker exited early ({status}); its log ends with:\n{}",
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The process's peak resident set size (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        peak_rss_kib(self.pid)
    }

    /// The last `lines` lines of its output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then waits up to `grace` for it to exit; SIGKILL after that.
    pub async fn terminate(mut self, grace: Duration) -> Result<Stopped> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(Stopped {
                status,
                graceful: false,
                took: Duration::ZERO,
            });
        }
        let started = Instant::now();
        kill(self.pid, Signal::SIGTERM).context("sending SIGTERM")?;
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(Stopped {
                status: status?,
                graceful: true,
                took: started.elapsed(),
            }),
            Err(_) => {
                self.child.kill().await?;
                Ok(Stopped {
                    status: self.child.wait().await?,
                    graceful: false,
                    took: started.elapsed(),
                })
            }
        }
    }
}

/// `VmHWM` of `pid` from `/proc/<pid>/status`, in KiB.
pub fn peak_rss_kib(pid: Pid) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_hwm(&status).with_context(|| format!("no VmHWM line in {path}"))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let mut parts = line.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_vm_hwm;

    #[test]
    fn reads_vm_hwm() {
        let status = "Name:\tnode\nVmPeak:\t  999 kB\nVmHWM:\t   51234 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(51_234));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}
