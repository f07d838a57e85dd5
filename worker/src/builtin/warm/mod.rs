//! `cache-warm`: fills Redis cache keys from a source, in one atomic swap.
//!
//! A job names a source and a target configured in `[handler.cache_warm]`
//! (`{"source": "popular_templates", "target": "templates"}`), never an
//! SQL query or a key of its own: whoever may enqueue must not be able to
//! run arbitrary SQL or overwrite arbitrary keys.
//!
//! - Sources (`source.rs`): an SQL query against a database (PostgreSQL or
//!   SQLite, by URL, through sqlx; each row becomes a JSON object), or an
//!   HTTP GET whose body is JSON (`rows`, a JSON pointer, picks the list
//!   of rows in it).
//! - Targets (`template.rs`): a key template with `{column}` placeholders
//!   writes one key per row (the row as JSON); a key without placeholders
//!   gets the whole result (the list of rows, or the HTTP body) as JSON.
//!   Every key gets the target's TTL. A run replaces the target's previous
//!   keys atomically (`queue_core::cache::swap`); a run that finds no rows
//!   leaves the target empty.
//!
//! The job returns `{source, target, rows, keys_written, bytes,
//! stale_removed, duration_ms}`. Names, rows and keys that cannot work
//! however often they are tried fail the job as unrecoverable; an
//! unreachable database or app, or Redis, fail the attempt (retried).

mod config;
mod source;
mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use queue_core::ErrorKind;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tokio::sync::OnceCell;

pub use config::{CacheWarmConfig, SourceConfig, TargetConfig};

use crate::context::JobContext;
use crate::handler::Handler;
use crate::outcome::JobError;
use template::KeyTemplate;

/// The `cache-warm` handler.
#[derive(Debug, Clone)]
pub struct CacheWarm {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sources: BTreeMap<String, SourceConfig>,
    targets: BTreeMap<String, (KeyTemplate, Duration)>,
    /// One small pool per SQL source, made by its first run.
    pools: BTreeMap<String, OnceCell<AnyPool>>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    source: String,
    target: String,
}

impl CacheWarm {
    /// A handler for the configured sources and targets (checked here).
    pub fn new(config: CacheWarmConfig) -> Result<Self, String> {
        config.validate()?;
        sqlx::any::install_default_drivers();
        let http = super::http::client(config::DEFAULT_TIMEOUT)?;
        let mut targets = BTreeMap::new();
        for (name, t) in config.targets {
            let template = KeyTemplate::parse(&t.key)?;
            targets.insert(name, (template, Duration::from_millis(t.ttl_ms)));
        }
        let pools = config
            .sources
            .iter()
            .filter(|(_, s)| s.database.is_some())
            .map(|(name, _)| (name.clone(), OnceCell::new()))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                sources: config.sources,
                targets,
                pools,
                http,
            }),
        })
    }
}

impl Handler for CacheWarm {
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.run(&ctx).await })
    }
}

impl Inner {
    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let started = Instant::now();
        let req: Request = serde_json::from_value(ctx.data().clone()).map_err(|e| {
            JobError::unrecoverable(format!(
                "cache-warm jobs look like {{\"source\": \"<name>\", \"target\": \"<name>\"}}: {e}"
            ))
        })?;
        let source = self.sources.get(&req.source).ok_or_else(|| {
            JobError::unrecoverable(format!(
                "no cache-warm source {:?}; configured: {:?}",
                req.source,
                self.sources.keys().collect::<Vec<_>>()
            ))
        })?;
        let (template, ttl) = self.targets.get(&req.target).ok_or_else(|| {
            JobError::unrecoverable(format!(
                "no cache-warm target {:?}; configured: {:?}",
                req.target,
                self.targets.keys().collect::<Vec<_>>()
            ))
        })?;
        let max_rows = source.max_rows();
        let result = self.read(&req.source, source).await?;
        let (rows, entries) = if template.is_per_row() {
            let Value::Array(rows) = result else {
                return Err(JobError::unrecoverable(format!(
                    "target {:?} writes a key per row, but source {:?} gave no list of rows",
                    req.target, req.source
                )));
            };
            if rows.len() > max_rows {
                return Err(JobError::unrecoverable(format!(
                    "source {:?} gave {} rows, more than max_rows ({max_rows})",
                    req.source,
                    rows.len()
                )));
            }
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                let key = template.render(row).map_err(JobError::unrecoverable)?;
                entries.push((key, row.to_string()));
            }
            (rows.len(), entries)
        } else {
            let n = result.as_array().map_or(1, Vec::len);
            let key = template.render(&result).map_err(JobError::unrecoverable)?;
            (n, vec![(key, result.to_string())])
        };
        // A row can still make a key under a reserved prefix (`{id}` of
        // "bull:…"): refuse the run before anything is written.
        for (key, _) in &entries {
            queue_core::cache::check_key(ctx.connection(), key)
                .map_err(|e| JobError::unrecoverable(e.to_string()))?;
        }
        let report = queue_core::cache::swap(ctx.connection(), &req.target, &entries, *ttl)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidInput => JobError::unrecoverable(e.to_string()),
                _ => JobError::from(e),
            })?;
        Ok(json!({
            "source": req.source,
            "target": req.target,
            "rows": rows,
            "keys_written": report.keys_written,
            "bytes": report.bytes,
            "stale_removed": report.stale_removed,
            "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }))
    }

    /// Reads a source: the rows of a query (a JSON list), or a GET's body.
    async fn read(&self, name: &str, source: &SourceConfig) -> Result<Value, JobError> {
        let timeout = source.timeout();
        match (&source.database, &source.query, &source.url) {
            (Some(db), Some(query), _) => {
                let pool = self.pool(name, db).await?;
                let rows = tokio::time::timeout(
                    timeout,
                    source::query_rows(&pool, query, source.max_rows()),
                )
                .await
                .map_err(|_| {
                    JobError::failed(format!(
                        "the query of {name:?} took longer than {}ms",
                        timeout.as_millis()
                    ))
                })??;
                Ok(Value::Array(rows))
            }
            (_, _, Some(url)) => {
                source::fetch(&self.http, url, source.rows.as_deref(), timeout).await
            }
            // `validate` allows no other shape.
            _ => Err(JobError::unrecoverable(format!(
                "source {name:?} has nothing to read"
            ))),
        }
    }

    /// The pool of an SQL source, connected on first use (two connections:
    /// one run at a time is the norm).
    async fn pool(&self, name: &str, url: &str) -> Result<AnyPool, JobError> {
        let cell = self
            .pools
            .get(name)
            .ok_or_else(|| JobError::unrecoverable(format!("source {name:?} has no database")))?;
        cell.get_or_try_init(|| async {
            AnyPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
        })
        .await
        .cloned()
        .map_err(|e| JobError::failed(format!("cannot connect to the database of {name:?}: {e}")))
    }
}
