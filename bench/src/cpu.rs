//! Where the CPU went during a measurement: the machine as a whole
//! (`/proc/stat`), single processes (`/proc/<pid>/stat`, all threads), and
//! this program's waited-for children (`cutime`/`cstime` of
//! `/proc/self/stat`, which is how a child that has already exited, like
//! wrk, is accounted). On a small machine shared by the load generator,
//! Redis and the server under test, this shows which one was the
//! bottleneck and whether anything else ran.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::unistd::Pid;

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on every
/// Linux architecture Drover builds for).
const TICKS_PER_SEC: f64 = 100.0;

/// `utime + stime` of `pid` (every thread), in ticks.
pub fn process_ticks(pid: Pid) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let fields = stat_fields(&stat).with_context(|| format!("parsing {path}"))?;
    Ok(fields.utime + fields.stime)
}

/// `cutime + cstime` of this process: CPU of the children it has waited
/// for, in ticks.
pub fn waited_children_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let fields = stat_fields(&stat).context("parsing /proc/self/stat")?;
    Ok(fields.cutime + fields.cstime)
}

/// `utime + stime` of this process, in ticks.
pub fn own_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let fields = stat_fields(&stat).context("parsing /proc/self/stat")?;
    Ok(fields.utime + fields.stime)
}

/// Busy ticks of the whole machine, summed over its CPUs (everything but
/// idle and iowait).
pub fn machine_busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    machine_busy(&stat).context("parsing the cpu line of /proc/stat")
}

struct StatFields {
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

/// Fields 14-17 of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so counting starts after its last `)`.
fn stat_fields(stat: &str) -> Option<StatFields> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(StatFields {
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

fn machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice],
    // guest time being already counted in user.
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some(total - idle)
}

/// CPU used over a window, in cores (1.0 = one core busy the whole time).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    /// The whole machine.
    pub machine: f64,
    /// The server under test.
    pub server: f64,
    /// redis-server.
    pub redis: f64,
    /// The load generator (a child waited for within the window).
    pub load: f64,
    /// This program.
    pub harness: f64,
}

impl CpuUse {
    /// Machine CPU not accounted for by the processes of the benchmark:
    /// other programs on the machine (and the kernel's own work).
    pub fn other(&self) -> f64 {
        (self.machine - self.server - self.redis - self.load - self.harness).max(0.0)
    }
}

/// Counters at the start of a window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    at: Instant,
    machine: u64,
    server: u64,
    redis: u64,
    children: u64,
    own: u64,
    server_pid: Pid,
    redis_pid: Pid,
}

impl Window {
    /// Starts a window over `server` and `redis`.
    pub fn start(server_pid: Pid, redis_pid: Pid) -> Result<Self> {
        Ok(Self {
            at: Instant::now(),
            machine: machine_busy_ticks()?,
            server: process_ticks(server_pid)?,
            redis: process_ticks(redis_pid)?,
            children: waited_children_ticks()?,
            own: own_ticks()?,
            server_pid,
            redis_pid,
        })
    }

    /// CPU used since the start, in cores. The load generator must have
    /// been waited for by now (and no other child in between).
    pub fn finish(&self) -> Result<CpuUse> {
        let secs = self
            .at
            .elapsed()
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let cores = |now: u64, then: u64| now.saturating_sub(then) as f64 / TICKS_PER_SEC / secs;
        Ok(CpuUse {
            machine: cores(machine_busy_ticks()?, self.machine),
            server: cores(process_ticks(self.server_pid)?, self.server),
            redis: cores(process_ticks(self.redis_pid)?, self.redis),
            load: cores(waited_children_ticks()?, self.children),
            harness: cores(own_ticks()?, self.own),
        })
    }
}

/// The machine's busy CPU, in cores, averaged over `sample`.
pub async fn machine_busy_over(sample: Duration) -> Result<f64> {
    let (at, before) = (Instant::now(), machine_busy_ticks()?);
    tokio::time::sleep(sample).await;
    let ticks = machine_busy_ticks()?.saturating_sub(before);
    Ok(ticks as f64 / TICKS_PER_SEC / at.elapsed().as_secs_f64())
}

/// How a wait for a quiet machine ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietWait {
    /// How long it waited.
    pub waited: Duration,
    /// The machine's busy CPU in the last sample, in cores.
    pub busy: f64,
    /// The machine was quiet (below the threshold) when it ended.
    pub quiet: bool,
}

/// Samples the machine's busy CPU over `sample` until it is below
/// `threshold` cores or `max_wait` has passed.
pub async fn wait_quiet(threshold: f64, sample: Duration, max_wait: Duration) -> Result<QuietWait> {
    let started = Instant::now();
    loop {
        let busy = machine_busy_over(sample).await?;
        let waited = started.elapsed();
        if busy < threshold || waited >= max_wait {
            return Ok(QuietWait {
                waited,
                busy,
                quiet: busy < threshold,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_process_times_after_the_command_name() {
        let stat = "4242 (node (x) y) S 1 2 3 4 5 6 7 8 9 10 150 25 7 3 20 0 11 0 99 1000 50";
        let f = stat_fields(stat).unwrap_or_else(|| panic!("unparsed"));
        assert_eq!((f.utime, f.stime, f.cutime, f.cstime), (150, 25, 7, 3));
        assert!(stat_fields("garbage").is_none());
    }

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(machine_busy(stat), Some(100 + 5 + 50 + 3 + 2 + 1));
    }

    #[test]
    fn other_is_what_the_benchmark_did_not_use() {
        let u = CpuUse {
            machine: 1.9,
            server: 1.0,
            redis: 0.3,
            load: 0.4,
            harness: 0.0,
        };
        assert!((u.other() - 0.2).abs() < 1e-9);
    }
}
