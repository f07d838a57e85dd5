//! Child processes that die with the test.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // tests/testkit -> tests -> root
    here.parent()
        .and_then(|p| p.parent())
        .expect("testkit lives two levels below the workspace root")
        .to_path_buf()
}

/// A child process that is killed (SIGKILL) when dropped, unless it already
/// exited.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    /// Wraps a spawned child; `name` appears in panic messages.
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        Self {
            name: name.into(),
            child: Some(child),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child present").id()
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid fits i32"));
        kill(pid, signal).unwrap_or_else(|e| panic!("kill {signal} {}: {e}", self.name));
    }

    /// Whether the child has exited (reaping it if so).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .expect("child present")
            .try_wait()
            .unwrap_or_else(|e| panic!("try_wait {}: {e}", self.name))
    }

    /// Waits for the child to exit within `deadline`.
    ///
    /// # Panics
    ///
    /// If it is still running at the deadline.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < deadline,
                "{} did not exit within {:?}",
                self.name,
                deadline
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
