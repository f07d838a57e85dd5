//! `drover serve`: the HTTP API, until SIGTERM/SIGINT.

use std::net::SocketAddr;

use drover_api::{ApiState, AuthMode};
use drover_scheduler::autoscaler::{Autoscaler, AutoscalerMetrics};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{connect, store};
use crate::api_server;
use crate::cli::ServeArgs;
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::signals::Signals;

pub(crate) async fn run(config: FileConfig, args: &ServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = args
        .addr
        .parse()
        .map_err(|e| UsageError(format!("--addr {}: {e}", args.addr)))?;
    let api = config.api_settings()?;
    let dashboard = config.dashboard_settings()?;
    let autoscaler = config.autoscaler.resolve().map_err(UsageError)?;
    let kube = super::kube::client(&config.autoscaler.kubernetes, &autoscaler)?;
    let store_settings = config.store_settings()?;
    let redis = config.redis_settings()?;
    info!(redis = ?redis, store = %store_settings.describe(), api = ?api, %addr, "starting the API");
    let signals = Signals::listen()?;
    let conn = connect(redis).await?;
    let store = store::open(&store_settings, args.migrate).await?;
    let registry = prometheus::Registry::new();
    let stop_autoscaler = CancellationToken::new();
    let autoscaler_task = if autoscaler.enabled {
        let metrics = AutoscalerMetrics::new(&registry)?;
        Some(
            Autoscaler::new(conn.clone(), autoscaler, Some(metrics), kube, holder_id())
                .spawn(stop_autoscaler.clone()),
        )
    } else {
        None
    };
    let state = ApiState::new(conn, store.clone(), AuthMode::ApiKeys, api, registry)?;
    let stop = CancellationToken::new();
    let server = api_server::spawn(addr, state, dashboard, stop.clone()).await?;
    info!("ready");
    signals.graceful.cancelled().await;
    info!("shutting down: finishing in-flight requests");
    // The autoscaler lets go of its lease first, so another instance
    // leads at once.
    stop_autoscaler.cancel();
    if let Some(task) = autoscaler_task {
        let _ = task.await;
    }
    stop.cancel();
    tokio::select! {
        _ = server => {}
        () = signals.hurry.cancelled() => info!("second signal: not waiting for open requests"),
    }
    store.close().await;
    Ok(())
}

/// This process in the autoscaler's lease: host, pid and a random part.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}
