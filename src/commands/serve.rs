//! `drover serve`: the HTTP API, until SIGTERM/SIGINT.

use std::net::SocketAddr;

use drover_api::{ApiState, AuthMode};
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
    let store_settings = config.store_settings()?;
    let redis = config.redis_settings()?;
    info!(redis = ?redis, store = %store_settings.describe(), api = ?api, %addr, "starting the API");
    let signals = Signals::listen()?;
    let conn = connect(redis).await?;
    let store = store::open(&store_settings, args.migrate).await?;
    let state = ApiState::new(
        conn,
        store.clone(),
        AuthMode::ApiKeys,
        api,
        prometheus::Registry::new(),
    )?;
    let stop = CancellationToken::new();
    let server = api_server::spawn(addr, state, dashboard, stop.clone()).await?;
    info!("ready");
    signals.graceful.cancelled().await;
    info!("shutting down: finishing in-flight requests");
    stop.cancel();
    tokio::select! {
        _ = server => {}
        () = signals.hurry.cancelled() => info!("second signal: not waiting for open requests"),
    }
    store.close().await;
    Ok(())
}
