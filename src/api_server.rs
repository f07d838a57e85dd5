//! Runs the HTTP API, and the dashboard beside it, on a listener until a
//! stop token fires.

use std::net::SocketAddr;
use std::sync::Arc;

use drover_api::ApiState;
use drover_dashboard::DashboardSettings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Binds `addr` and serves the API (and refreshes its queue metrics), and
/// the dashboard at `/` when it is enabled, until `stop`; in-flight
/// requests finish first.
pub(crate) async fn spawn(
    addr: SocketAddr,
    state: Arc<ApiState>,
    dashboard: DashboardSettings,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the API on {addr}: {e}"))?;
    info!(addr = %listener.local_addr()?, "serving the HTTP API");
    let refresher = drover_api::spawn_queue_refresher(Arc::clone(&state), stop.clone());
    let mut app = drover_api::router(Arc::clone(&state));
    if dashboard.enabled() {
        app = app.merge(drover_dashboard::router(state, dashboard, stop.clone()));
        info!(addr = %listener.local_addr()?, "serving the dashboard at /");
    }
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "the API server stopped");
        }
        let _ = refresher.await;
        info!("API server stopped");
    }))
}
