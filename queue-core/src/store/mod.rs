//! The durable store: Drover's state that is not jobs: API keys, dashboard
//! sessions, the audit log, declared schedules and workflows.
//!
//! One code path serves SQLite (the default: a file in the data directory,
//! for one machine) and PostgreSQL (any number of machines) through sqlx's
//! `Any` driver. Queries use `$1`-style parameters, which both engines
//! accept, and keep to SQL both understand; times are BIGINT milliseconds
//! since the epoch. The schema is one set of numbered migrations written
//! in each dialect (`migrations/sqlite`, `migrations/postgres`), embedded
//! in the binary ([`Store::migrate`]).
//!
//! [`StoreConfig`] → [`StoreSettings`] checks the URL once; [`Store`] is
//! the pool, cheap to clone.

mod api_keys;
mod audit;
mod migrate;
mod pinned;
mod schedules;
mod scope;
mod sessions;
mod settings;
pub(crate) mod workflows;

use std::sync::Once;
use std::time::{Duration, Instant};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::error::{QueueError, Result};

pub use api_keys::{ApiKey, NewApiKey};
pub use audit::{AuditEntry, AuditRecord, MAX_AUDIT_PAGE};
pub use schedules::{MAX_STORED_SCHEDULES, StoredSchedule};
pub use scope::{QueueGlob, Scope};
pub use sessions::{NewSession, Session};
pub use settings::{StoreBackend, StoreConfig, StoreSettings};
pub use workflows::{
    MAX_WORKFLOW_PAGE, RunDetail, RunRecord, RunState, StepRecord, StepState, StoredWorkflowType,
    WorkflowEvent,
};

/// A pool of connections to the store; clones share it.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: StoreBackend,
    /// PostgreSQL behind a pooler in transaction mode (see `pinned.rs`).
    transaction_pooling: bool,
    /// A direct URL for migrations when going through such a pooler.
    migrate_url: Option<String>,
}

/// How the pool is used right now, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Most connections the pool opens.
    pub max: u32,
}

impl Store {
    /// Opens a pool on the store.
    ///
    /// For SQLite it first creates the file's directory, and the file
    /// unless the URL sets a `mode`; every connection then runs in WAL mode
    /// (readers never wait for the writer) and waits up to 5 s for another
    /// writer instead of failing at once. One connection is opened here, so
    /// an unreachable database fails now rather than at the first query.
    /// The schema is not checked: see [`Store::check_schema`].
    pub async fn connect(settings: &StoreSettings) -> Result<Self> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let (options, sqlite_file) = settings.connect_options()?;
        if let Some(dir) = sqlite_file.as_deref().and_then(std::path::Path::parent) {
            std::fs::create_dir_all(dir).map_err(|e| {
                QueueError::InvalidStoreConfig(format!(
                    "cannot create the store's directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let mut pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections())
            .min_connections(settings.min_connections())
            .acquire_timeout(settings.acquire_timeout())
            .idle_timeout(settings.idle_timeout())
            .max_lifetime(settings.max_lifetime());
        if settings.backend() == StoreBackend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // The timeout first: switching to WAL takes a lock that
                    // a connection opening at the same moment may hold.
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        Ok(Self {
            pool,
            backend: settings.backend(),
            transaction_pooling: settings.transaction_pooling(),
            migrate_url: settings.migrate_url().map(str::to_owned),
        })
    }

    /// The engine behind this store.
    pub fn backend(&self) -> StoreBackend {
        self.backend
    }

    /// One `SELECT 1` round trip, timed.
    pub async fn ping(&self) -> Result<Duration> {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(started.elapsed())
    }

    /// The pool's connections now.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    /// Closes the pool: new queries fail, and this waits for the ones
    /// running to finish. Clones are closed too.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that writes: on SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`, waiting out another writer), so a
    /// read-then-write never fails with "database is locked" when another
    /// writer commits in between.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            StoreBackend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            StoreBackend::Postgres => {
                let mut tx = self.pool.begin().await?;
                if self.transaction_pooling {
                    // Names other clients left on this server connection
                    // would collide with sqlx's (see `pinned.rs`).
                    (&mut *tx).execute("DEALLOCATE ALL").await?;
                }
                tx
            }
        })
    }

    /// A transaction that only reads (deferred on SQLite; on PostgreSQL
    /// through a pooler, started as `begin_write` starts one).
    pub(crate) async fn begin_read(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            StoreBackend::Sqlite => Ok(self.pool.begin().await?),
            StoreBackend::Postgres => self.begin_write().await,
        }
    }

    /// What the store's queries run on (see `pinned.rs`).
    pub(crate) fn pool(&self) -> pinned::StoreExecutor<'_> {
        pinned::StoreExecutor {
            pool: &self.pool,
            transaction_pooling: self.transaction_pooling,
        }
    }

    /// Whether the store goes through a pooler in transaction mode.
    pub fn transaction_pooling(&self) -> bool {
        self.transaction_pooling
    }
}

/// Milliseconds since the epoch as stored (BIGINT), saturating.
fn ms_to_db(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A stored BIGINT back to milliseconds; a negative value (written by hand)
/// reads as the epoch.
fn ms_from_db(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}
