//! `drover dev`: everything on one machine on embedded defaults. Uses the
//! configured Redis when one was configured and answers, else starts a
//! private redis-server in the data directory; runs workers with the
//! built-in handlers; serves metrics. Binds to loopback only.

use drover_worker::WorkerConfig;
use tracing::{info, warn};

use super::connect;
use super::worker::{builtin_handlers, serve_until_signal};
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
    if !metrics_addr.ip().is_loopback() {
        return Err(UsageError("drover dev serves on loopback addresses only".into()).into());
    }
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
            let child = RedisChild::start(&args.data_dir).await?;
            config.redis.url = child.url();
            config.redis.cluster_nodes.clear();
            private = Some(child);
            connect(config.redis_settings()?).await?
        }
    };
    warn!(
        redis = %conn.settings().describe(),
        queues = ?args.queue,
        handler = ?kind,
        "drover dev: development mode, loopback only, no authentication"
    );

    let url = queue_core::config::redact_url(conn.settings().url());
    let served = serve_until_signal(
        &conn,
        &settings,
        handlers,
        Some(&args.metrics_addr),
        &signals,
        || {
            info!(
                "ready: enqueue with `REDIS_URL={url} drover enqueue {} <name> --data '{{}}'`",
                args.queue[0]
            );
        },
    )
    .await;
    if let Some(child) = private {
        child.stop().await;
    }
    served
}
