//! The process actuator: `drover worker --supervise` keeps as many
//! `drover worker` child processes per queue as the autoscaler gives this
//! supervisor (like PM2's cluster mode), restarting the ones that die.
//!
//! Scale-down drains: the chosen child (the one with the fewest jobs in
//! flight, by its heartbeat) gets SIGTERM and, started with a long
//! shutdown timeout, stops fetching, finishes its in-flight jobs and
//! exits; it is never killed. When the supervisor itself is told to stop,
//! every child drains the same way; told again, they hand their jobs back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use queue_core::autoscale::{self, Actuator, SupervisedQueue, SupervisorInfo};
use queue_core::registry;
use queue_core::{Connection, QueueName};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How to run and size the children.
#[derive(Debug, Clone)]
pub struct Supervise {
    /// The `drover` executable.
    pub program: PathBuf,
    /// Arguments every child gets (`worker`, handler flags, ...); the
    /// supervisor adds `--queue`, `--concurrency` and `--shutdown-timeout`.
    pub args: Vec<String>,
    /// Environment variables every child gets on top of the supervisor's.
    pub env: Vec<(String, String)>,
    /// The queues, each with its children's concurrency.
    pub queues: Vec<(QueueName, usize)>,
    /// Processes per queue until the autoscaler says otherwise.
    pub initial_processes: u32,
    /// How often the desired count is read and children are checked.
    pub poll: Duration,
    /// A draining child's time to finish its jobs (its shutdown timeout);
    /// after it, unfinished jobs are handed back, never lost.
    pub drain_timeout: Duration,
    /// Live heartbeats of this age count when choosing whom to drain.
    pub heartbeat_timeout: Duration,
}

/// The supervisor's metrics.
#[derive(Debug, Clone)]
pub struct SupervisorMetrics {
    processes: IntGaugeVec,
    exits: IntCounterVec,
    errors: IntCounterVec,
}

impl SupervisorMetrics {
    /// Registers the families in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            processes: IntGaugeVec::new(
                Opts::new(
                    "drover_supervisor_processes",
                    "Worker processes by queue and state (running, draining)",
                ),
                &["queue", "state"],
            )?,
            exits: IntCounterVec::new(
                Opts::new(
                    "drover_supervisor_exits_total",
                    "Worker processes that exited, by queue and how (drained, unexpected)",
                ),
                &["queue", "how"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "drover_supervisor_errors_total",
                    "Errors the supervisor survived, by stage",
                ),
                &["stage"],
            )?,
        };
        registry.register(Box::new(m.processes.clone()))?;
        registry.register(Box::new(m.exits.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        Ok(m)
    }
}

#[derive(Debug)]
struct Proc {
    child: Child,
    pid: u32,
    draining: bool,
}

/// Runs the supervisor until `stop`; `hurry` makes draining children hand
/// their jobs back at once.
pub fn spawn(
    conn: Connection,
    supervise: Supervise,
    metrics: SupervisorMetrics,
    stop: CancellationToken,
    hurry: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let identity = crate::WorkerIdentity::current();
        let mut procs: BTreeMap<QueueName, Vec<Proc>> = BTreeMap::new();
        info!(id = %identity.id, queues = supervise.queues.len(), "supervisor started");
        let mut info = SupervisorInfo {
            id: identity.id.clone(),
            host: identity.host.clone(),
            pid: identity.pid,
            heartbeat_at_ms: 0,
            queues: Vec::new(),
        };
        loop {
            reap(&mut procs, &metrics);
            let targets = targets(&conn, &supervise, &identity.id, &procs, &metrics).await;
            for (queue, concurrency) in &supervise.queues {
                let target = targets
                    .get(queue)
                    .copied()
                    .unwrap_or(supervise.initial_processes);
                let list = procs.entry(queue.clone()).or_default();
                adjust(
                    &conn,
                    &supervise,
                    &identity.host,
                    queue,
                    *concurrency,
                    target,
                    list,
                    &metrics,
                )
                .await;
            }
            info.queues = supervise
                .queues
                .iter()
                .map(|(queue, concurrency)| {
                    let list = procs.get(queue).map(Vec::as_slice).unwrap_or_default();
                    let draining = list.iter().filter(|p| p.draining).count();
                    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                    metrics
                        .processes
                        .with_label_values(&[queue.as_str(), "running"])
                        .set(i64::try_from(list.len() - draining).unwrap_or(0));
                    metrics
                        .processes
                        .with_label_values(&[queue.as_str(), "draining"])
                        .set(i64::try_from(draining).unwrap_or(0));
                    SupervisedQueue {
                        queue: queue.to_string(),
                        running: count(list.len() - draining),
                        draining: count(draining),
                        concurrency: count(*concurrency),
                    }
                })
                .collect();
            if let Err(e) = autoscale::supervisor_heartbeat(&conn, &mut info).await {
                survived(&metrics, "heartbeat", &e);
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(supervise.poll) => {}
            }
        }
        if let Err(e) = autoscale::deregister_supervisor(&conn, &identity.id).await {
            survived(&metrics, "heartbeat", &e);
        }
        let all = procs.values().flatten().count();
        info!(
            processes = all,
            "supervisor stopping: draining every worker process"
        );
        for p in procs.values_mut().flatten() {
            if !p.draining {
                signal(p.pid, Signal::SIGTERM);
                p.draining = true;
            }
        }
        let mut hurried = false;
        loop {
            reap(&mut procs, &metrics);
            if procs.values().all(Vec::is_empty) {
                break;
            }
            tokio::select! {
                () = hurry.cancelled(), if !hurried => {
                    hurried = true;
                    warn!("second signal: worker processes hand their jobs back now");
                    for p in procs.values().flatten() {
                        signal(p.pid, Signal::SIGTERM);
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        info!("supervisor stopped");
    })
}

fn survived(metrics: &SupervisorMetrics, stage: &'static str, e: &dyn std::fmt::Display) {
    metrics.errors.with_label_values(&[stage]).inc();
    warn!(stage, error = %e, "supervisor: error survived");
}

/// Forgets children that exited, saying how.
fn reap(procs: &mut BTreeMap<QueueName, Vec<Proc>>, metrics: &SupervisorMetrics) {
    for (queue, list) in procs.iter_mut() {
        list.retain_mut(|p| match p.child.try_wait() {
            Ok(Some(status)) => {
                let how = if p.draining { "drained" } else { "unexpected" };
                metrics.exits.with_label_values(&[queue.as_str(), how]).inc();
                if p.draining {
                    info!(queue = %queue, pid = p.pid, %status, "worker process drained and exited");
                } else {
                    warn!(queue = %queue, pid = p.pid, %status, "worker process exited unexpectedly; starting another");
                }
                false
            }
            Ok(None) => true,
            Err(e) => {
                survived(metrics, "wait", &e);
                true
            }
        });
    }
}

/// This supervisor's share of each queue's desired process count, for
/// queues the autoscaler scales with the process actuator. Before the
/// leader has counted this supervisor, the running count is kept.
async fn targets(
    conn: &Connection,
    supervise: &Supervise,
    me: &str,
    procs: &BTreeMap<QueueName, Vec<Proc>>,
    metrics: &SupervisorMetrics,
) -> BTreeMap<QueueName, u32> {
    let queues: Vec<QueueName> = supervise.queues.iter().map(|(q, _)| q.clone()).collect();
    let states = match autoscale::desired_states(conn, &queues).await {
        Ok(states) => states,
        Err(e) => {
            survived(metrics, "desired", &e);
            // Keep what runs: a Redis outage is no reason to scale.
            return procs.iter().map(|(q, l)| (q.clone(), running(l))).collect();
        }
    };
    let mut out = BTreeMap::new();
    for (queue, state) in queues.into_iter().zip(states) {
        match state {
            Some(s) if s.actuator == Actuator::Process => {
                let n = match s.assignments.get(me) {
                    Some(n) => *n,
                    None => procs
                        .get(&queue)
                        .map_or(supervise.initial_processes, |l| running(l)),
                };
                out.insert(queue, n);
            }
            _ => {}
        }
    }
    out
}

fn running(list: &[Proc]) -> u32 {
    u32::try_from(list.iter().filter(|p| !p.draining).count()).unwrap_or(u32::MAX)
}

/// Starts or drains children of `queue` until `target` run.
#[allow(clippy::too_many_arguments)]
async fn adjust(
    conn: &Connection,
    supervise: &Supervise,
    host: &str,
    queue: &QueueName,
    concurrency: usize,
    target: u32,
    list: &mut Vec<Proc>,
    metrics: &SupervisorMetrics,
) {
    let now = running(list);
    if now < target {
        for _ in now..target {
            match start(supervise, queue, concurrency) {
                Ok(p) => {
                    info!(queue = %queue, pid = p.pid, target, "worker process started");
                    list.push(p);
                }
                Err(e) => {
                    survived(metrics, "start", &e);
                    break;
                }
            }
        }
    } else if now > target {
        // Drain the least busy first (their heartbeats say how many jobs
        // they hold), the newest among equals.
        let in_flight = match registry::live_workers(
            conn,
            supervise.heartbeat_timeout,
            Duration::from_secs(86_400),
        )
        .await
        {
            Ok(workers) => workers
                .into_iter()
                .filter(|w| w.host == host)
                .map(|w| (w.pid, w.queues.iter().map(|q| q.in_flight).sum::<usize>()))
                .collect::<BTreeMap<u32, usize>>(),
            Err(e) => {
                survived(metrics, "heartbeats", &e);
                BTreeMap::new()
            }
        };
        let mut candidates: Vec<(usize, usize)> = list
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.draining)
            .map(|(i, p)| (in_flight.get(&p.pid).copied().unwrap_or(0), i))
            .collect();
        candidates.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        for (busy, i) in candidates
            .into_iter()
            .take(usize::try_from(now - target).unwrap_or(usize::MAX))
        {
            let p = &mut list[i];
            info!(queue = %queue, pid = p.pid, in_flight = busy, target, "draining a worker process: no new jobs, finishing its jobs");
            signal(p.pid, Signal::SIGTERM);
            p.draining = true;
        }
    }
}

fn start(supervise: &Supervise, queue: &QueueName, concurrency: usize) -> std::io::Result<Proc> {
    let child = Command::new(&supervise.program)
        .args(&supervise.args)
        .arg("--queue")
        .arg(queue.as_str())
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .arg("--shutdown-timeout")
        .arg(supervise.drain_timeout.as_millis().to_string())
        .envs(supervise.env.iter().map(|(k, v)| (k, v)))
        .env("DROVER_SUPERVISOR_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    Ok(Proc {
        child,
        pid,
        draining: false,
    })
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        if let Err(e) = kill(Pid::from_raw(pid), signal) {
            warn!(pid, error = %e, "could not signal a worker process");
        }
    }
}
