//! `drover worker`: consume queues until SIGTERM/SIGINT, then shut down
//! gracefully.

use std::sync::Arc;

use drover_worker::builtin::{CacheWarm, Echo, HttpHandler};
use drover_worker::{
    HandlerOptions, HandlerRegistry, WorkerIdentity, WorkerMetrics, WorkerPool, WorkerSettings,
};
use queue_core::Connection;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::connect;
use crate::cli::{GlobalArgs, HandlerKind, WorkerArgs};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::metrics_server;
use crate::signals::Signals;

pub(crate) async fn run(
    mut config: FileConfig,
    args: &WorkerArgs,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    config.apply_worker_flags(args);
    if super::supervise::is_supervised() {
        // The supervisor serves the metrics; siblings would fight over
        // one address.
        config.metrics.addr = None;
    }
    let settings = config.worker.resolve().map_err(UsageError)?;
    let handlers = builtin_handlers(args.handler, &config)?;
    let redis = config.redis_settings()?;
    if args.supervise {
        return super::supervise::run(&config, args, global, &settings, redis).await;
    }
    info!(redis = ?redis, worker = ?settings, handler = ?args.handler, "starting worker");
    let signals = Signals::listen()?;
    super::supervise::stop_with_supervisor(&signals);
    let conn = connect(redis).await?;
    serve_until_signal(
        &conn,
        &settings,
        handlers,
        Served {
            registry: prometheus::Registry::new(),
            metrics_addr: config.metrics.addr.as_deref(),
            stop_first: None,
        },
        &signals,
        || {
            info!("ready");
        },
    )
    .await
}

/// What a worker pool is served with besides its jobs.
pub(crate) struct Served<'a> {
    /// Where the pool's metrics are registered.
    pub(crate) registry: prometheus::Registry,
    /// Serve that registry on `/metrics` here.
    pub(crate) metrics_addr: Option<&'a str>,
    /// Cancelled as soon as the signal comes, before the pool drains (the
    /// API of `drover dev`, so no new work is accepted while it drains).
    pub(crate) stop_first: Option<CancellationToken>,
}

/// Runs a worker pool (and `/metrics` when `metrics_addr` is set) until
/// the first termination signal, then shuts it down gracefully; the second
/// signal hurries the shutdown. `ready` runs once the pool consumes.
pub(crate) async fn serve_until_signal(
    conn: &Connection,
    settings: &WorkerSettings,
    handlers: HandlerRegistry,
    served: Served<'_>,
    signals: &Signals,
    ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let Served {
        registry,
        metrics_addr,
        stop_first,
    } = served;
    let metrics = Arc::new(WorkerMetrics::new(&registry)?);
    let stop_metrics = CancellationToken::new();
    let metrics_server = match metrics_addr {
        Some(addr) => Some(metrics_server::spawn(addr, registry, stop_metrics.clone()).await?),
        None => None,
    };
    let pool =
        WorkerPool::start(conn, settings, handlers, metrics, WorkerIdentity::current()).await?;
    ready();
    signals.graceful.cancelled().await;
    if let Some(stop) = stop_first {
        stop.cancel();
    }
    pool.shutdown(signals.hurry.clone()).await;
    stop_metrics.cancel();
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    Ok(())
}

/// The registry for a built-in handler serving every job name. When
/// `[handler.cache_warm]` has targets, jobs named `cache-warm` go to the
/// cache-warm handler whatever the kind.
pub(crate) fn builtin_handlers(
    kind: HandlerKind,
    config: &FileConfig,
) -> Result<HandlerRegistry, UsageError> {
    let mut registry = HandlerRegistry::new();
    let warm_config = &config.handler.cache_warm;
    let warm = || {
        CacheWarm::new(warm_config.clone())
            .map_err(|e| UsageError(format!("[handler.cache_warm]: {e}")))
    };
    match kind {
        HandlerKind::Echo => {
            registry.fallback(Echo, HandlerOptions::default());
        }
        HandlerKind::Http => {
            let settings = config.handler.http.resolve().map_err(UsageError)?;
            let handler = HttpHandler::new(settings).map_err(UsageError)?;
            registry.fallback(handler, HandlerOptions::default());
        }
        HandlerKind::CacheWarm => {
            if !warm_config.is_configured() {
                return Err(UsageError(
                    "--handler cache-warm needs [handler.cache_warm] sources and targets in the config file"
                        .into(),
                ));
            }
            registry.fallback(warm()?, HandlerOptions::default());
        }
    }
    if kind != HandlerKind::CacheWarm && warm_config.is_configured() {
        registry.register(CACHE_WARM_JOB, warm()?, HandlerOptions::default());
    }
    Ok(registry)
}

/// The job name the cache-warm handler serves next to another handler.
const CACHE_WARM_JOB: &str = "cache-warm";
