//! A fresh, empty store database per test, on SQLite or PostgreSQL, and
//! `on_both_engines!`, which runs a test on each.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail by panicking
#![allow(unused_macros)] // test binaries without store tests do not use it

use std::path::Path;

use queue_core::store::{Store, StoreBackend, StoreConfig, StoreSettings};
use sqlx::AnyPool;
use tempfile::TempDir;
use testkit::{PgBouncer, TestDatabase};

/// One empty database on one engine; dropped by `finish`, or when a failed
/// test drops it.
pub struct Engine {
    pub settings: StoreSettings,
    /// A URL for opening a second, raw connection to the same database.
    pub raw_url: String,
    _dir: Option<TempDir>,
    db: Option<TestDatabase>,
    _bouncer: Option<PgBouncer>,
}

impl Engine {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(StoreConfig::default()).await
    }

    pub async fn sqlite_with(config: StoreConfig) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("drover-store-")
            .tempdir()
            .unwrap();
        // A directory that does not exist yet: connecting creates it.
        let data_dir = dir.path().join("data");
        let settings = config.resolve(&data_dir).unwrap();
        assert_eq!(settings.backend(), StoreBackend::Sqlite);
        Self {
            settings,
            raw_url: format!("sqlite://{}", data_dir.join("drover.db").display()),
            _dir: Some(dir),
            db: None,
            _bouncer: None,
        }
    }

    pub async fn postgres() -> Self {
        Self::postgres_with(StoreConfig::default()).await
    }

    pub async fn postgres_with(config: StoreConfig) -> Self {
        let db = TestDatabase::create().await;
        let settings = StoreConfig {
            url: Some(db.url.clone()),
            ..config
        }
        .resolve(Path::new("unused"))
        .unwrap();
        assert_eq!(settings.backend(), StoreBackend::Postgres);
        Self {
            settings,
            raw_url: db.url.clone(),
            _dir: None,
            db: Some(db),
            _bouncer: None,
        }
    }

    /// PostgreSQL through PgBouncer in transaction pool mode, with 2
    /// server connections for the store's 10 (`[store]
    /// transaction_pooling`, migrations over the direct URL).
    pub async fn pgbouncer() -> Self {
        Self::pgbouncer_with(StoreConfig::default()).await
    }

    pub async fn pgbouncer_with(config: StoreConfig) -> Self {
        let db = TestDatabase::create().await;
        let bouncer = PgBouncer::start(2).await;
        let settings = StoreConfig {
            url: Some(bouncer.url_for(&db.url)),
            transaction_pooling: true,
            migrate_url: Some(db.url.clone()),
            ..config
        }
        .resolve(Path::new("unused"))
        .unwrap();
        Self {
            settings,
            raw_url: db.url.clone(),
            _dir: None,
            db: Some(db),
            _bouncer: Some(bouncer),
        }
    }

    /// A store on the database, not migrated.
    pub async fn store(&self) -> Store {
        Store::connect(&self.settings).await.unwrap()
    }

    /// A store on the database, migrated.
    pub async fn migrated(&self) -> Store {
        let store = self.store().await;
        store.migrate().await.unwrap();
        store
    }

    /// A plain sqlx pool on the same database, to look at rows directly.
    pub async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.raw_url).await.unwrap()
    }

    pub async fn finish(self) {
        if let Some(db) = self.db {
            db.drop_database().await;
        }
    }
}

/// For each named `async fn(&Engine)`, a module of three tests: `sqlite`,
/// `postgres`, and `pgbouncer` (PostgreSQL through PgBouncer in
/// transaction mode).
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let engine = super::Engine::sqlite().await;
                super::$name(&engine).await;
                engine.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let engine = super::Engine::postgres().await;
                super::$name(&engine).await;
                engine.finish().await;
            }

            #[tokio::test]
            async fn pgbouncer() {
                let engine = super::Engine::pgbouncer().await;
                super::$name(&engine).await;
                engine.finish().await;
            }
        }
    )*};
}
