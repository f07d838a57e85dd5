//! `drover dev`: everything on one machine on embedded defaults. Uses the
//! configured Redis when one was configured and answers, else starts a
//! private redis-server in the data directory; a SQLite store there too;
//! serves the HTTP API without authentication; runs workers with the
//! built-in handlers; keeps the declared schedules in Redis; serves
//! metrics. Binds to loopback only.

use drover_api::{ApiState, AuthMode};
use drover_scheduler::{Orchestrator, OrchestratorMetrics, Reconciler};
use drover_worker::WorkerConfig;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::connect;
use super::worker::{Served, builtin_handlers, serve_until_signal};
use crate::api_server;
use crate::cli::{DevArgs, HandlerKind};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::redis_child::RedisChild;
use crate::signals::Signals;

pub(crate) async fn run(mut config: FileConfig, args: DevArgs) -> anyhow::Result<()> {
    let metrics_addr: std::net::SocketAddr = args
        .metrics_addr
        .parse()
        .map_err(|e| UsageError(format!("--metrics-addr {}: {e}", args.metrics_addr)))?;
    let api_addr: std::net::SocketAddr = args
        .addr
        .parse()
        .map_err(|e| UsageError(format!("--addr {}: {e}", args.addr)))?;
    if !metrics_addr.ip().is_loopback() || !api_addr.ip().is_loopback() {
        return Err(UsageError(
            "drover dev has no authentication, so it serves on loopback addresses only".into(),
        )
        .into());
    }
    let data_dir = config.data_dir();
    let api_settings = config.api_settings()?;
    let dashboard = config.dashboard_settings()?;
    let store_settings = config.store_settings()?;
    let declared = config.schedules()?;
    config.worker = WorkerConfig {
        queues: args.queue.clone(),
        concurrency: args.concurrency,
        ..config.worker
    };
    let settings = config.worker.resolve().map_err(UsageError)?;
    let kind = if args.url.is_some() {
        config.handler.http.url = args.url.clone();
        HandlerKind::Http
    } else {
        HandlerKind::Echo
    };
    let handlers = builtin_handlers(kind, &config)?;
    let signals = Signals::listen()?;

    let mut private = None;
    let conn = match config.redis_url_explicit {
        true => match connect(config.redis_settings()?).await {
            Ok(conn) => Some(conn),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "configured Redis unreachable; starting a private one");
                None
            }
        },
        false => None,
    };
    let conn = match conn {
        Some(conn) => conn,
        None => {
            let child = RedisChild::start(&data_dir).await?;
            config.redis.url = child.url();
            config.redis.cluster_nodes.clear();
            private = Some(child);
            connect(config.redis_settings()?).await?
        }
    };
    let store = super::store::open(&store_settings, true).await?;
    super::schedule::register_workflows(&store, &config).await?;
    warn!(
        redis = %conn.settings().describe(),
        store = %store_settings.describe(),
        api = %api_addr,
        queues = ?args.queue,
        handler = ?kind,
        "drover dev: DEVELOPMENT MODE, the API has no authentication (loopback only); use `drover serve` with API keys anywhere else"
    );
    let registry = prometheus::Registry::new();
    let state = ApiState::new(
        conn.clone(),
        store.clone(),
        AuthMode::Disabled,
        api_settings,
        registry.clone(),
    )?;
    let stop_api = CancellationToken::new();
    let api = api_server::spawn(api_addr, state, dashboard, stop_api.clone()).await?;
    let stop_scheduler = CancellationToken::new();
    let scheduler = super::schedule::spawn_scheduler(
        Reconciler::new(
            conn.clone(),
            Some(store.clone()),
            declared,
            config.scheduler.clone(),
        ),
        Orchestrator::new(
            conn.clone(),
            store.clone(),
            Some(OrchestratorMetrics::new(&registry)?),
        ),
        stop_scheduler.clone(),
    );

    let url = queue_core::config::redact_url(conn.settings().url());
    let served = serve_until_signal(
        &conn,
        &settings,
        handlers,
        Served {
            registry,
            metrics_addr: Some(&args.metrics_addr),
            stop_first: Some(stop_api.clone()),
        },
        &signals,
        || {
            info!(
                "ready: the dashboard is at http://{api_addr}/; enqueue with `curl -X POST http://{api_addr}/api/v1/queues/{}/jobs -H 'content-type: application/json' -d '{{\"name\":\"hello\"}}'` or `REDIS_URL={url} drover enqueue {} <name> --data '{{}}'`",
                args.queue[0], args.queue[0]
            );
        },
    )
    .await;
    stop_api.cancel();
    stop_scheduler.cancel();
    let _ = api.await;
    let _ = scheduler.await;
    store.close().await;
    if let Some(child) = private {
        child.stop().await;
    }
    served
}
