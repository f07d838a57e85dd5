//! `drover worker --supervise`: the process actuator's host side. The
//! supervisor runs no jobs; it starts `drover worker` children per queue
//! (this same executable, with the same settings passed on through the
//! environment and flags) and drains them as the autoscaler wants.

use std::time::Duration;

use drover_worker::WorkerSettings;
use drover_worker::supervise::{self, Supervise, SupervisorMetrics};
use queue_core::RedisSettings;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::connect;
use crate::cli::{GlobalArgs, HandlerKind, WorkerArgs};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::metrics_server;
use crate::signals::Signals;

/// The environment variable naming a child's supervisor.
const SUPERVISOR_PID: &str = "DROVER_SUPERVISOR_PID";

pub(crate) async fn run(
    config: &FileConfig,
    args: &WorkerArgs,
    global: &GlobalArgs,
    settings: &WorkerSettings,
    redis: RedisSettings,
) -> anyhow::Result<()> {
    config.supervise.validate().map_err(UsageError)?;
    let program = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the drover executable to start workers: {e}"))?;
    let supervise = Supervise {
        program,
        args: child_args(args),
        env: child_env(global, config),
        queues: settings
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.concurrency))
            .collect(),
        initial_processes: config.supervise.processes,
        poll: Duration::from_millis(config.supervise.poll_interval_ms),
        drain_timeout: Duration::from_millis(config.supervise.drain_timeout_ms),
        heartbeat_timeout: settings.heartbeat_interval * 3,
    };
    info!(redis = ?redis, supervise = ?config.supervise, queues = supervise.queues.len(), "starting the supervisor");
    let signals = Signals::listen()?;
    let conn = connect(redis).await?;
    let registry = prometheus::Registry::new();
    let metrics = SupervisorMetrics::new(&registry)?;
    let stop_metrics = CancellationToken::new();
    let metrics_server = match config.metrics.addr.as_deref() {
        Some(addr) => Some(metrics_server::spawn(addr, registry, stop_metrics.clone()).await?),
        None => None,
    };
    let task = supervise::spawn(
        conn,
        supervise,
        metrics,
        signals.graceful.clone(),
        signals.hurry.clone(),
    );
    info!("ready");
    let _ = task.await;
    stop_metrics.cancel();
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    Ok(())
}

/// The worker flags every child gets; `--queue`, `--concurrency` and
/// `--shutdown-timeout` are the supervisor's to add per child. Metrics
/// stay with the supervisor (children would fight over the address).
fn child_args(args: &WorkerArgs) -> Vec<String> {
    let mut out = vec!["worker".to_string(), "--handler".to_string()];
    out.push(
        match args.handler {
            HandlerKind::Echo => "echo",
            HandlerKind::Http => "http",
            HandlerKind::CacheWarm => "cache-warm",
        }
        .to_string(),
    );
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push(format!("--{name}"));
            out.push(v);
        }
    };
    flag("url", args.url.clone());
    flag("job-timeout", args.job_timeout.map(|v| v.to_string()));
    flag("lock-duration", args.lock_duration.map(|v| v.to_string()));
    flag(
        "stalled-interval",
        args.stalled_interval.map(|v| v.to_string()),
    );
    flag(
        "max-stalled-count",
        args.max_stalled_count.map(|v| v.to_string()),
    );
    out
}

/// Global settings given on the command line, passed on as the
/// environment variables those flags also read (so secrets stay out of
/// the children's command lines).
fn child_env(global: &GlobalArgs, config: &FileConfig) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(path) = &global.config {
        env.push(("DROVER_CONFIG".into(), path.display().to_string()));
    }
    if let Some(url) = &global.redis_url {
        env.push(("REDIS_URL".into(), url.clone()));
    }
    if !global.redis_cluster_nodes.is_empty() {
        env.push((
            "DROVER_REDIS_CLUSTER_NODES".into(),
            global.redis_cluster_nodes.join(","),
        ));
    }
    if let Some(prefix) = &global.prefix {
        env.push(("DROVER_PREFIX".into(), prefix.clone()));
    }
    if let Some(secret) = &config.handler.http.secret {
        env.push(("DROVER_HTTP_SECRET".into(), secret.clone()));
    }
    env
}

/// Whether this process is a supervised child.
pub(crate) fn is_supervised() -> bool {
    std::env::var_os(SUPERVISOR_PID).is_some()
}

/// In a supervised child: stop gracefully (drain) when the supervisor is
/// gone, so a killed supervisor leaves no orphans behind.
pub(crate) fn stop_with_supervisor(signals: &Signals) {
    let Some(parent) = std::env::var(SUPERVISOR_PID)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    let graceful = signals.graceful.clone();
    tokio::spawn(async move {
        loop {
            if nix::unistd::getppid().as_raw() != parent {
                warn!(
                    supervisor = parent,
                    "the supervisor is gone: draining and exiting"
                );
                graceful.cancel();
                return;
            }
            tokio::select! {
                () = graceful.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}
