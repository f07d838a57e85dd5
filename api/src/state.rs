//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use queue_core::store::Store;
use queue_core::{Connection, QueueDiscovery};
use tokio::sync::Semaphore;

use crate::auth::{AuthMode, KeyCache};
use crate::config::ApiSettings;
use crate::metrics::ApiMetrics;

/// How long the list of queues is used before it is scanned again (in the
/// background: requests get the last answer at once).
const DISCOVERY_TTL: Duration = Duration::from_secs(10);

/// The state behind every route: Redis, the store, settings, metrics.
#[derive(Debug)]
pub struct ApiState {
    pub(crate) conn: Connection,
    pub(crate) store: Store,
    pub(crate) auth: AuthMode,
    pub(crate) settings: ApiSettings,
    pub(crate) keys: KeyCache,
    pub(crate) discovery: QueueDiscovery,
    pub(crate) metrics: ApiMetrics,
    pub(crate) registry: Registry,
    pub(crate) event_streams: Arc<Semaphore>,
    /// Requests being handled (`[api] max_in_flight_requests`).
    pub(crate) in_flight: Semaphore,
}

impl ApiState {
    /// State for one API process. The API's metrics are registered in
    /// `registry`, which `/metrics` serves (with whatever else the process
    /// registered there, such as a worker pool's metrics in `drover dev`).
    pub fn new(
        conn: Connection,
        store: Store,
        auth: AuthMode,
        settings: ApiSettings,
        registry: Registry,
    ) -> prometheus::Result<Arc<Self>> {
        let metrics = ApiMetrics::new(&registry)?;
        Ok(Arc::new(Self {
            discovery: QueueDiscovery::new(conn.clone(), DISCOVERY_TTL),
            event_streams: Arc::new(Semaphore::new(settings.max_event_streams)),
            in_flight: Semaphore::new(settings.max_in_flight_requests),
            keys: KeyCache::default(),
            conn,
            store,
            auth,
            settings,
            metrics,
            registry,
        }))
    }

    /// The Redis connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The durable store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether requests need an API key.
    pub fn auth_mode(&self) -> AuthMode {
        self.auth
    }

    /// The queues under the prefix (cached; see [`QueueDiscovery`]).
    pub fn discovery(&self) -> &QueueDiscovery {
        &self.discovery
    }

    /// The metrics registry `/metrics` serves.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
