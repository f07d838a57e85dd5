//! The store's schema: numbered migrations, embedded in the binary, one
//! folder per dialect (`migrations/sqlite`, `migrations/postgres`) holding
//! the same versions with the same descriptions.
//!
//! sqlx's own bookkeeping is used (`_sqlx_migrations`). Instances starting
//! together migrate one at a time: on PostgreSQL under sqlx's advisory
//! lock, on SQLite inside one `BEGIN IMMEDIATE` transaction (so every
//! SQLite migration must be able to run in a transaction).

use std::collections::HashMap;

use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::{AnyConnection, Connection};

use super::{Store, StoreBackend};
use crate::error::{QueueError, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

fn migrator(backend: StoreBackend) -> &'static Migrator {
    match backend {
        StoreBackend::Sqlite => &SQLITE_MIGRATIONS,
        StoreBackend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// The versions this binary embeds, oldest first.
fn embedded_versions(migrator: &Migrator) -> impl Iterator<Item = i64> + '_ {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
}

impl Store {
    /// Applies the migrations the store lacks, oldest first (on PostgreSQL
    /// each in its own transaction, on SQLite all in one); returns the
    /// versions applied by this call, empty when the store was up to date.
    ///
    /// Concurrent callers take turns, and the later ones find nothing left
    /// to apply. Versions in the store that this binary does not know (a
    /// newer Drover migrated it) are left alone, so an older instance can
    /// still start during a rolling upgrade; an applied migration whose
    /// file changed since is an error.
    ///
    /// Through a pooler in transaction mode (`[store] transaction_pooling`)
    /// migrations run on a connection of their own to `[store]
    /// migrate_url`, straight to PostgreSQL: the advisory lock that keeps
    /// instances from migrating at once lives as long as a session, which
    /// such a pooler does not keep.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        let migrator = migrator(self.backend);
        let mut direct;
        let mut pooled;
        let conn: &mut AnyConnection = if self.transaction_pooling {
            let Some(url) = &self.migrate_url else {
                return Err(QueueError::InvalidStoreConfig(
                    "[store] transaction_pooling is on, and migrations cannot run through a \
                     pooler in transaction mode (they hold a session-level lock): set [store] \
                     migrate_url (env DROVER_MIGRATE_URL) to a direct PostgreSQL URL"
                        .into(),
                ));
            };
            direct = AnyConnection::connect(url).await?;
            &mut direct
        } else {
            pooled = self.pool.acquire().await?;
            pooled.close_on_drop();
            &mut pooled
        };
        let applied = match self.backend {
            StoreBackend::Postgres => {
                // If anything below fails, PostgreSQL keeps the advisory
                // lock for as long as this session lives; the session is
                // never handed back to the pool (`close_on_drop` above).
                conn.lock().await?;
                let applied = apply_pending(conn, migrator).await;
                let unlocked = conn.unlock().await;
                let applied = applied?;
                unlocked?;
                applied
            }
            StoreBackend::Sqlite => {
                // sqlx takes no lock on SQLite. Holding the write lock from
                // the start makes a second process wait (busy_timeout) and
                // then find the work done, instead of both seeing the same
                // migration pending. Each migration nests as a savepoint.
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let applied = apply_pending(&mut tx, migrator).await?;
                tx.commit().await?;
                applied
            }
        };
        if !applied.is_empty() {
            tracing::info!(backend = %self.backend, ?applied, "store migrated");
        }
        Ok(applied)
    }

    /// The versions this binary has and the store has not applied, oldest
    /// first. Writes nothing, so it works on a brand-new empty database
    /// (where every version is pending).
    pub async fn pending_migrations(&self) -> Result<Vec<i64>> {
        let migrator = migrator(self.backend);
        // In a transaction, so that through a pooler in transaction mode
        // sqlx's prepared statements stay on one server connection (see
        // `pinned.rs`); it only reads.
        let mut tx = self.begin_read().await?;
        let applied: Vec<i64> = if history_exists(&mut tx, self.backend).await? {
            tx.list_applied_migrations()
                .await?
                .into_iter()
                .map(|m| m.version)
                .collect()
        } else {
            Vec::new()
        };
        tx.rollback().await?;
        Ok(embedded_versions(migrator)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    /// `Ok` when no migration is pending, otherwise
    /// [`QueueError::StoreSchemaOutdated`]; what a server checks at start
    /// when it was not asked to migrate.
    pub async fn check_schema(&self) -> Result<()> {
        let pending = self.pending_migrations().await?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(QueueError::StoreSchemaOutdated {
                pending: pending.len(),
            })
        }
    }
}

/// Under the migration lock: what sqlx's `Migrator::run` does, but
/// reporting which versions it applied and tolerating newer ones.
async fn apply_pending(conn: &mut AnyConnection, migrator: &Migrator) -> Result<Vec<i64>> {
    conn.ensure_migrations_table().await?;
    if let Some(version) = conn.dirty_version().await? {
        return Err(MigrateError::Dirty(version).into());
    }
    let applied: HashMap<i64, _> = conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| (m.version, m.checksum))
        .collect();
    let unknown: Vec<i64> = applied
        .keys()
        .copied()
        .filter(|v| !migrator.version_exists(*v))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(
            ?unknown,
            "the store has migrations this drover does not know; a newer version migrated it"
        );
    }
    let mut now = Vec::new();
    for migration in migrator.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        match applied.get(&migration.version) {
            Some(checksum) if *checksum != migration.checksum => {
                return Err(MigrateError::VersionMismatch(migration.version).into());
            }
            Some(_) => {}
            None => {
                conn.apply(migration).await?;
                now.push(migration.version);
            }
        }
    }
    Ok(now)
}

/// Whether sqlx's history table exists, asked without creating it.
async fn history_exists(conn: &mut AnyConnection, backend: StoreBackend) -> Result<bool> {
    let sql = match backend {
        StoreBackend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        // Resolved through search_path, as sqlx's own queries are.
        StoreBackend::Postgres => {
            "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT to_regclass('_sqlx_migrations') AS t) AS r \
             WHERE t IS NOT NULL"
        }
    };
    let count: i64 = sqlx::query_scalar(sql).fetch_one(conn).await?;
    Ok(count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(migrator: &Migrator) -> Vec<(i64, String, bool)> {
        migrator
            .iter()
            .map(|m| {
                (
                    m.version,
                    m.description.to_string(),
                    m.migration_type.is_down_migration(),
                )
            })
            .collect()
    }

    #[test]
    fn both_dialects_have_the_same_migrations() {
        let sqlite = listing(&SQLITE_MIGRATIONS);
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, listing(&POSTGRES_MIGRATIONS));
    }

    #[test]
    fn versions_are_numbered_from_one_without_gaps() {
        let versions: Vec<i64> = embedded_versions(&SQLITE_MIGRATIONS).collect();
        let expected: Vec<i64> = (1..=i64::try_from(versions.len()).unwrap()).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn migrations_are_not_empty() {
        for m in SQLITE_MIGRATIONS.iter().chain(POSTGRES_MIGRATIONS.iter()) {
            assert!(!m.sql.trim().is_empty(), "migration {} is empty", m.version);
        }
    }
}
