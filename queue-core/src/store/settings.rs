//! `[store]`: which database holds Drover's durable state, checked once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::any::AnyConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::config::redact_url;
use crate::error::{QueueError, Result};

/// The SQLite file a store without a URL uses, in the data directory.
const SQLITE_FILE: &str = "drover.db";

/// `[store]` as written in the config file. `DATABASE_URL` sets `url` from
/// the environment (read by the binary, not here).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite:<path>`, `postgres://…` or `postgresql://…`; unset means a
    /// SQLite file, `drover.db`, in the data directory.
    pub url: Option<String>,
    /// Most connections in the pool (at least 1).
    pub max_connections: u32,
    /// Connections the pool keeps open even when idle (at most
    /// `max_connections`).
    pub min_connections: u32,
    /// How long a query waits for a free pooled connection, in ms.
    pub acquire_timeout_ms: u64,
    /// An idle connection above `min_connections` is closed after this
    /// long, in ms; 0 keeps them.
    pub idle_timeout_ms: u64,
    /// Any connection is closed and replaced after this long, in ms (so a
    /// failed-over or rebalanced database is picked up); 0 keeps them.
    pub max_lifetime_ms: u64,
    /// PostgreSQL's `statement_timeout` for every statement of the store,
    /// in ms; 0 (the default) leaves the server's. Sent at connect time,
    /// so not with `transaction_pooling` (set it on the role there:
    /// `ALTER ROLE drover SET statement_timeout = '5s'`).
    pub statement_timeout_ms: u64,
    /// The URL is a pooler in transaction mode (PgBouncer's
    /// `pool_mode = transaction`): no prepared statement or other session
    /// state is kept beyond a transaction.
    pub transaction_pooling: bool,
    /// With `transaction_pooling`: a direct PostgreSQL URL for migrations,
    /// which hold a session-level lock. Env: `DROVER_MIGRATE_URL`.
    pub migrate_url: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_ms: 5_000,
            idle_timeout_ms: 600_000,
            max_lifetime_ms: 1_800_000,
            statement_timeout_ms: 0,
            transaction_pooling: false,
            migrate_url: None,
        }
    }
}

// By hand so a password in the URL never reaches a log.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("max_lifetime_ms", &self.max_lifetime_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("transaction_pooling", &self.transaction_pooling)
            .field("migrate_url", &self.migrate_url.as_deref().map(redact_url))
            .finish()
    }
}

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreBackend {
    /// A SQLite file: one machine.
    Sqlite,
    /// PostgreSQL: any number of machines.
    Postgres,
}

impl fmt::Display for StoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// Checked store settings: a URL of a known engine that sqlx can parse, and
/// pool limits. `Debug` and [`StoreSettings::describe`] hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSettings {
    url: String,
    backend: StoreBackend,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    statement_timeout_ms: u64,
    transaction_pooling: bool,
    migrate_url: Option<String>,
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &self.describe())
            .field("backend", &self.backend)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("transaction_pooling", &self.transaction_pooling)
            .field("migrate_url", &self.migrate_url.as_deref().map(redact_url))
            .finish()
    }
}

impl StoreConfig {
    /// Checks the values once; without a URL the store is
    /// `sqlite:<data_dir>/drover.db`. Nothing is opened or created here.
    pub fn resolve(&self, data_dir: &Path) -> Result<StoreSettings> {
        let invalid = |msg: String| Err(QueueError::InvalidStoreConfig(msg));
        if self.max_connections == 0 {
            return invalid("[store] max_connections must be at least 1".into());
        }
        if self.acquire_timeout_ms == 0 {
            return invalid("[store] acquire_timeout_ms must be at least 1".into());
        }
        if self.min_connections > self.max_connections {
            return invalid(format!(
                "[store] min_connections ({}) must not exceed max_connections ({})",
                self.min_connections, self.max_connections
            ));
        }
        let url = match &self.url {
            Some(url) => url.clone(),
            None => default_sqlite_url(data_dir)?,
        };
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            StoreBackend::Postgres
        } else if url.starts_with("sqlite:") {
            StoreBackend::Sqlite
        } else {
            return invalid(format!(
                "the store URL {:?} must start with sqlite:, postgres:// or postgresql:// \
                 (set by DATABASE_URL or [store] url)",
                redact_url(&url)
            ));
        };
        // Let sqlx parse it now so a typo fails at start-up, not at the
        // first query.
        let parsed = match backend {
            StoreBackend::Sqlite => SqliteConnectOptions::from_str(&url).map(drop),
            StoreBackend::Postgres => PgConnectOptions::from_str(&url).map(drop),
        };
        if let Err(e) = parsed {
            return invalid(format!(
                "cannot use the store URL {}: {e}",
                redact_url(&url)
            ));
        }
        // Through the `Any` driver every pooled connection would open its
        // own empty database, and all of it would vanish at exit.
        if backend == StoreBackend::Sqlite && is_in_memory(&url) {
            return invalid(format!(
                "the store URL {url} is an in-memory SQLite database, which is not shared between \
                 connections and is lost at exit; name a file, e.g. sqlite:/var/lib/drover/drover.db"
            ));
        }
        let postgres_only = |what: &str| {
            invalid(format!(
                "[store] {what} applies to PostgreSQL only, and the store is SQLite"
            ))
        };
        if backend == StoreBackend::Sqlite {
            if self.transaction_pooling {
                return postgres_only("transaction_pooling");
            }
            if self.statement_timeout_ms > 0 {
                return postgres_only("statement_timeout_ms");
            }
        }
        if self.transaction_pooling && self.statement_timeout_ms > 0 {
            return invalid(
                "[store] statement_timeout_ms is sent when a connection opens, which a pooler in \
                 transaction mode does not pass on; set it on the role instead \
                 (ALTER ROLE ... SET statement_timeout = '5s')"
                    .into(),
            );
        }
        if let Some(migrate) = &self.migrate_url {
            if !self.transaction_pooling {
                return invalid("[store] migrate_url is used only with transaction_pooling".into());
            }
            if !(migrate.starts_with("postgres://") || migrate.starts_with("postgresql://"))
                || PgConnectOptions::from_str(migrate).is_err()
            {
                return invalid(format!(
                    "[store] migrate_url {} must be a postgres:// URL",
                    redact_url(migrate)
                ));
            }
        }
        let optional_ms = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        Ok(StoreSettings {
            url,
            backend,
            max_connections: self.max_connections,
            min_connections: self.min_connections,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            idle_timeout: optional_ms(self.idle_timeout_ms),
            max_lifetime: optional_ms(self.max_lifetime_ms),
            statement_timeout_ms: self.statement_timeout_ms,
            transaction_pooling: self.transaction_pooling,
            migrate_url: self.migrate_url.clone(),
        })
    }
}

impl StoreSettings {
    /// The engine.
    pub fn backend(&self) -> StoreBackend {
        self.backend
    }

    /// The URL with any password replaced by `***`, for logs and messages
    /// (`sqlite:.drover/drover.db`, `postgres://***@db.internal/drover`).
    pub fn describe(&self) -> String {
        redact_url(&self.url)
    }

    /// Most connections in the pool.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// How long a query waits for a free pooled connection.
    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// Connections kept open when idle.
    pub fn min_connections(&self) -> u32 {
        self.min_connections
    }

    /// When an idle connection is closed (`None`: never).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// When any connection is replaced (`None`: never).
    pub fn max_lifetime(&self) -> Option<Duration> {
        self.max_lifetime
    }

    /// Whether the URL is a pooler in transaction mode.
    pub fn transaction_pooling(&self) -> bool {
        self.transaction_pooling
    }

    /// The direct URL migrations use with transaction pooling.
    pub(crate) fn migrate_url(&self) -> Option<&str> {
        self.migrate_url.as_deref()
    }

    /// What to hand sqlx's `Any` driver, and for SQLite the file (absolute)
    /// whose directory must exist first.
    ///
    /// A SQLite file is created when missing unless the URL chooses a
    /// `mode` itself (`mode=ro`, `mode=rw`).
    pub(crate) fn connect_options(&self) -> Result<(AnyConnectOptions, Option<PathBuf>)> {
        let invalid = |e: &dyn fmt::Display| {
            QueueError::InvalidStoreConfig(format!(
                "cannot use the store URL {}: {e}",
                self.describe()
            ))
        };
        match self.backend {
            StoreBackend::Postgres => {
                let mut extra = Vec::new();
                if self.transaction_pooling {
                    // See `pinned.rs`.
                    extra.push("statement-cache-capacity=0".to_owned());
                }
                if self.statement_timeout_ms > 0 {
                    // `options=-c statement_timeout=<ms>`, percent-encoded.
                    extra.push(format!(
                        "options=-c%20statement_timeout%3D{}",
                        self.statement_timeout_ms
                    ));
                }
                let mut url = self.url.clone();
                for param in extra {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&param);
                }
                let options = AnyConnectOptions::from_str(&url).map_err(|e| invalid(&e))?;
                Ok((options, None))
            }
            StoreBackend::Sqlite => {
                let sqlite = SqliteConnectOptions::from_str(&self.url).map_err(|e| invalid(&e))?;
                // An absolute path, because the `Any` driver takes a URL and
                // in `sqlite://dir/file` a relative first segment would read
                // as a host.
                let file = std::path::absolute(sqlite.get_filename()).map_err(|e| invalid(&e))?;
                let Some(path) = file.to_str() else {
                    return Err(invalid(&"the SQLite path is not valid UTF-8"));
                };
                let mut params = self.url.split_once('?').map_or("", |(_, q)| q).to_owned();
                if !has_query_param(&self.url, "mode") {
                    if !params.is_empty() {
                        params.push('&');
                    }
                    params.push_str("mode=rwc");
                }
                let url = format!("sqlite://{}?{params}", encode_path(path));
                let options = AnyConnectOptions::from_str(&url).map_err(|e| invalid(&e))?;
                Ok((options, Some(file)))
            }
        }
    }
}

/// `sqlite:<data_dir>/drover.db`.
fn default_sqlite_url(data_dir: &Path) -> Result<String> {
    let file = data_dir.join(SQLITE_FILE);
    let Some(path) = file.to_str() else {
        return Err(QueueError::InvalidStoreConfig(format!(
            "the data directory {} is not valid UTF-8; set [store] url instead",
            data_dir.display()
        )));
    };
    Ok(format!("sqlite:{}", encode_path(path)))
}

/// `path` with the characters a SQLite URL gives a meaning to (`%`, `?`,
/// `#`) percent-encoded; sqlx decodes them again.
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    encoded
}

fn query_params(url: &str) -> impl Iterator<Item = (&str, &str)> {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

fn has_query_param(url: &str, name: &str) -> bool {
    query_params(url).any(|(key, _)| key == name)
}

/// `sqlite::memory:`, `sqlite://:memory:` or `mode=memory`, read as sqlx
/// reads them.
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let database = rest.split('?').next().unwrap_or(rest);
    database == ":memory:" || query_params(url).any(|pair| pair == ("mode", "memory"))
}

#[cfg(test)]
mod tests {
    use sqlx::ConnectOptions;

    use super::*;

    fn with_url(url: &str) -> StoreConfig {
        StoreConfig {
            url: Some(url.to_owned()),
            ..StoreConfig::default()
        }
    }

    #[test]
    fn default_is_a_sqlite_file_in_the_data_dir() {
        let settings = StoreConfig::default()
            .resolve(Path::new(".drover"))
            .unwrap();
        assert_eq!(settings.backend(), StoreBackend::Sqlite);
        assert_eq!(settings.describe(), "sqlite:.drover/drover.db");
        assert_eq!(settings.max_connections(), 10);
        assert_eq!(settings.acquire_timeout(), Duration::from_secs(5));
        let (_, file) = settings.connect_options().unwrap();
        let file = file.unwrap();
        assert!(file.is_absolute(), "{file:?}");
        assert!(file.ends_with(".drover/drover.db"), "{file:?}");
    }

    #[test]
    fn odd_characters_in_the_data_dir_survive_the_url() {
        let dir = Path::new("/srv/a?b#c%20d");
        let settings = StoreConfig::default().resolve(dir).unwrap();
        let (options, file) = settings.connect_options().unwrap();
        assert_eq!(file.unwrap(), dir.join("drover.db"));
        // What the `Any` driver will open is that same file.
        let reparsed = SqliteConnectOptions::from_url(&options.database_url).unwrap();
        assert_eq!(reparsed.get_filename(), dir.join("drover.db"));
    }

    #[test]
    fn in_memory_sqlite_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite:x.db?mode=memory",
        ] {
            let err = with_url(url).resolve(Path::new(".")).unwrap_err();
            assert!(err.to_string().contains("in-memory"), "{url}: {err}");
        }
        assert!(!is_in_memory("sqlite:memory.db"));
        assert!(!is_in_memory("sqlite:x.db?mode=rwc"));
    }

    #[test]
    fn postgres_urls_are_accepted_and_redacted() {
        for url in [
            "postgres://drover:hunter2@db.internal:5432/drover",
            "postgresql://drover:hunter2@db.internal/drover?sslmode=require",
        ] {
            let settings = with_url(url).resolve(Path::new(".")).unwrap();
            assert_eq!(settings.backend(), StoreBackend::Postgres);
            assert_eq!(settings.backend().to_string(), "postgres");
            let described = settings.describe();
            assert!(!described.contains("hunter2"), "{described}");
            assert!(described.contains("***@db.internal"), "{described}");
            assert!(!format!("{settings:?}").contains("hunter2"));
            assert!(!format!("{:?}", with_url(url)).contains("hunter2"));
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        for url in [
            "",
            "mysql://db/drover",
            "postgres:/db",
            "redis://127.0.0.1",
            "sqlite:x.db?mode=sideways",
            "postgres://db:notaport/drover",
        ] {
            let err = with_url(url).resolve(Path::new(".")).unwrap_err();
            assert!(
                matches!(err, QueueError::InvalidStoreConfig(_)),
                "{url:?}: {err}"
            );
        }
        let zero_pool = StoreConfig {
            max_connections: 0,
            ..StoreConfig::default()
        };
        assert!(zero_pool.resolve(Path::new(".")).is_err());
        let zero_wait = StoreConfig {
            acquire_timeout_ms: 0,
            ..StoreConfig::default()
        };
        assert!(zero_wait.resolve(Path::new(".")).is_err());
    }

    #[test]
    fn pool_settings_are_checked() {
        let pg = "postgres://db.internal/drover";
        let config = StoreConfig {
            min_connections: 2,
            idle_timeout_ms: 0,
            transaction_pooling: true,
            migrate_url: Some("postgres://db-direct.internal/drover".into()),
            ..with_url(pg)
        };
        let settings = config.resolve(Path::new(".")).unwrap();
        assert_eq!(settings.min_connections(), 2);
        assert_eq!(settings.idle_timeout(), None);
        assert_eq!(settings.max_lifetime(), Some(Duration::from_secs(1800)));
        assert!(settings.transaction_pooling());
        let (options, _) = settings.connect_options().unwrap();
        assert!(
            options
                .database_url
                .as_str()
                .contains("statement-cache-capacity=0"),
            "{}",
            options.database_url
        );
        let refused = [
            StoreConfig {
                min_connections: 11,
                ..with_url(pg)
            },
            StoreConfig {
                transaction_pooling: true,
                ..with_url("sqlite:x.db")
            },
            StoreConfig {
                statement_timeout_ms: 100,
                ..with_url("sqlite:x.db")
            },
            StoreConfig {
                statement_timeout_ms: 100,
                transaction_pooling: true,
                ..with_url(pg)
            },
            StoreConfig {
                migrate_url: Some(pg.into()),
                ..with_url(pg)
            },
            StoreConfig {
                transaction_pooling: true,
                migrate_url: Some("mysql://x/y".into()),
                ..with_url(pg)
            },
        ];
        for config in refused {
            let err = config.resolve(Path::new(".")).unwrap_err();
            assert!(
                matches!(err, QueueError::InvalidStoreConfig(_)),
                "{config:?}: {err}"
            );
        }
        let timed = StoreConfig {
            statement_timeout_ms: 250,
            ..with_url(pg)
        };
        let (options, _) = timed
            .resolve(Path::new("."))
            .unwrap()
            .connect_options()
            .unwrap();
        let parsed = PgConnectOptions::from_url(&options.database_url).unwrap();
        assert_eq!(
            parsed.get_options(),
            Some("-c statement_timeout=250"),
            "{}",
            options.database_url
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let parsed: StoreConfig = serde_json::from_str(r#"{"max_connections": 3}"#).unwrap();
        assert_eq!(parsed.max_connections, 3);
        assert_eq!(parsed.url, None);
        assert!(serde_json::from_str::<StoreConfig>(r#"{"urll": "sqlite:x"}"#).is_err());
    }

    #[test]
    fn explicit_sqlite_mode_is_kept() {
        assert!(has_query_param("sqlite:x.db?mode=ro", "mode"));
        assert!(has_query_param("sqlite:x.db?cache=shared&mode=rw", "mode"));
        assert!(!has_query_param("sqlite:x.db?cache=shared", "mode"));
        assert!(!has_query_param("sqlite:mode.db", "mode"));
    }
}
