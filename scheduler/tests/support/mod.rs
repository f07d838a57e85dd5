//! Shared helpers for the scheduler crate's integration tests.
#![allow(dead_code)] // each test binary uses a subset
#![allow(unreachable_pub)] // shared between test files, not exported
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking

use queue_core::store::{Store, StoreConfig};
use queue_core::{
    Connection, ConsumerEvent, ConsumerObserver, QueueName, RedisSettings, SettledJob,
};
use testkit::RedisServer;

pub async fn connect(server: &RedisServer) -> Connection {
    Connection::connect(RedisSettings::for_url(server.url()).unwrap())
        .await
        .unwrap()
}

/// A migrated SQLite store in `dir`.
pub async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let settings = StoreConfig::default().resolve(dir.path()).unwrap();
    let store = Store::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A consumer observer that records nothing.
pub struct Quiet;

impl ConsumerObserver for Quiet {
    fn settled(&self, _job: &SettledJob<'_>) {}
    fn event(&self, _queue: &QueueName, _event: ConsumerEvent) {}
}
