//! `cache-warm`: fills Redis cache keys from a source, in one atomic swap.
//!
//! A job names a source and a target configured in `[handler.cache_warm]`
//! (`{"source": "popular_templates", "target": "templates"}`), never an
//! SQL query or a key of its own: whoever may enqueue must not be able to
//! run arbitrary SQL or overwrite arbitrary keys.
//!
//! - Sources: an SQL query against a database (PostgreSQL or SQLite, by
//!   URL, through sqlx; each row becomes a JSON object, integers, floats,
//!   text, booleans and NULL by their column type), or an HTTP GET whose
//!   body is JSON (`rows`, a JSON pointer, picks the list of rows in it).
//! - Targets: a key template with `{column}` placeholders writes one key
//!   per row (the row as JSON); a key without placeholders gets the whole
//!   result (the list of rows, or the HTTP body) as JSON. Every key gets
//!   the target's TTL. A run replaces the target's previous keys
//!   atomically (`queue_core::cache::swap`).
//!
//! The job returns `{source, target, rows, keys_written, bytes,
//! stale_removed, duration_ms}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Column, Row};
use tokio::sync::OnceCell;

use crate::context::JobContext;
use crate::handler::Handler;
use crate::outcome::JobError;

/// `[handler.cache_warm]`: named sources and targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheWarmConfig {
    /// `[handler.cache_warm.sources.<name>]`.
    pub sources: BTreeMap<String, SourceConfig>,
    /// `[handler.cache_warm.targets.<name>]`.
    pub targets: BTreeMap<String, TargetConfig>,
}

/// Where a warm run reads: `database` + `query`, or `url`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `postgres://…` or `sqlite:…`.
    pub database: Option<String>,
    /// The query (no parameters).
    pub query: Option<String>,
    /// Or: GET this URL; its body must be JSON.
    pub url: Option<String>,
    /// A JSON pointer to the rows in the HTTP body (`/items`); unset: the
    /// body itself (a list for per-row targets).
    pub rows: Option<String>,
    /// Longest the query or the request may take (default 30 s).
    pub timeout_ms: Option<u64>,
    /// Most rows read (default 1,000,000); more fails the run.
    pub max_rows: Option<usize>,
}

/// Where a warm run writes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A key template (`cache:template:{id}`: one key per row) or a plain
    /// key (one key for the whole result).
    pub key: String,
    /// How long the keys live, in ms.
    pub ttl_ms: u64,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_ROWS: usize = 1_000_000;

impl CacheWarmConfig {
    /// Whether anything is configured (then `cache-warm` jobs are served).
    pub fn is_configured(&self) -> bool {
        !self.targets.is_empty()
    }

    /// Checks every source and target.
    pub fn validate(&self) -> Result<(), String> {
        for (name, s) in &self.sources {
            let at = |e: &str| format!("[handler.cache_warm.sources.{name}] {e}");
            match (&s.database, &s.query, &s.url) {
                (Some(db), Some(_), None) => {
                    if !(db.starts_with("postgres://")
                        || db.starts_with("postgresql://")
                        || db.starts_with("sqlite:"))
                    {
                        return Err(at("database must be a postgres:// or sqlite: URL"));
                    }
                }
                (None, None, Some(url)) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(at("url must be http:// or https://"));
                    }
                }
                _ => return Err(at("needs database and query, or url")),
            }
            if s.rows.is_some() && s.url.is_none() {
                return Err(at("rows (a JSON pointer) applies to url sources"));
            }
            if s.rows
                .as_deref()
                .is_some_and(|p| !p.is_empty() && !p.starts_with('/'))
            {
                return Err(at("rows must be a JSON pointer such as /items"));
            }
            if s.timeout_ms == Some(0) || s.max_rows == Some(0) {
                return Err(at("timeout_ms and max_rows must be at least 1"));
            }
        }
        for (name, t) in &self.targets {
            let at = |e: String| format!("[handler.cache_warm.targets.{name}] {e}");
            if t.ttl_ms == 0 {
                return Err(at("ttl_ms must be at least 1".into()));
            }
            parse_template(&t.key).map_err(at)?;
            if queue_core::cache::RESERVED_PREFIXES
                .iter()
                .any(|p| t.key.starts_with(p))
            {
                return Err(at(format!(
                    "key {:?} is under a prefix reserved for queues and Drover",
                    t.key
                )));
            }
        }
        Ok(())
    }
}

/// A key template: text and `{column}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Column(String),
}

fn parse_template(t: &str) -> Result<Vec<Piece>, String> {
    if t.is_empty() {
        return Err("key must not be empty".into());
    }
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("key {t:?} opens {{ without closing }}"))?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err(format!("key {t:?} has an empty or nested placeholder"));
        }
        out.push(Piece::Column(name.to_string()));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

fn render_key(pieces: &[Piece], row: &Value) -> Result<String, String> {
    let mut key = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => key.push_str(t),
            Piece::Column(c) => match row.get(c.as_str()) {
                Some(Value::String(s)) => key.push_str(s),
                Some(Value::Null) | None => {
                    return Err(format!(
                        "a row has no value for {{{c}}} of the key template"
                    ));
                }
                Some(other) => key.push_str(&other.to_string()),
            },
        }
    }
    Ok(key)
}

/// The `cache-warm` handler.
#[derive(Debug, Clone)]
pub struct CacheWarm {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: CacheWarmConfig,
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
    /// A handler for the configured sources and targets.
    pub fn new(config: CacheWarmConfig) -> Result<Self, String> {
        config.validate()?;
        sqlx::any::install_default_drivers();
        let http = super::http::client(DEFAULT_TIMEOUT)?;
        let pools = config
            .sources
            .keys()
            .map(|name| (name.clone(), OnceCell::new()))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
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
        let source = self.config.sources.get(&req.source).ok_or_else(|| {
            JobError::unrecoverable(format!(
                "no cache-warm source {:?}; configured: {:?}",
                req.source,
                self.config.sources.keys().collect::<Vec<_>>()
            ))
        })?;
        let target = self.config.targets.get(&req.target).ok_or_else(|| {
            JobError::unrecoverable(format!(
                "no cache-warm target {:?}; configured: {:?}",
                req.target,
                self.config.targets.keys().collect::<Vec<_>>()
            ))
        })?;
        let timeout = source
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let max_rows = source.max_rows.unwrap_or(DEFAULT_MAX_ROWS);
        let result = match (&source.database, &source.query, &source.url) {
            (Some(db), Some(query), _) => {
                let pool = self.pool(&req.source, db).await?;
                tokio::time::timeout(timeout, query_rows(&pool, query, max_rows))
                    .await
                    .map_err(|_| {
                        JobError::failed(format!("query of {:?} timed out", req.source))
                    })??
            }
            (_, _, Some(url)) => self.fetch(url, source.rows.as_deref(), timeout).await?,
            _ => return Err(JobError::unrecoverable("source has nothing to read")),
        };
        let pieces = parse_template(&target.key).map_err(JobError::unrecoverable)?;
        let per_row = pieces.iter().any(|p| matches!(p, Piece::Column(_)));
        let (rows, entries) = if per_row {
            let Value::Array(rows) = result else {
                return Err(JobError::unrecoverable(format!(
                    "target {:?} writes a key per row, but source {:?} gave no list of rows",
                    req.target, req.source
                )));
            };
            if rows.len() > max_rows {
                return Err(JobError::unrecoverable(format!(
                    "source {:?} gave {} rows, more than max_rows {max_rows}",
                    req.source,
                    rows.len()
                )));
            }
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                let key = render_key(&pieces, row).map_err(JobError::unrecoverable)?;
                entries.push((key, row.to_string()));
            }
            (rows.len(), entries)
        } else {
            let n = result.as_array().map_or(1, Vec::len);
            (n, vec![(target.key.clone(), result.to_string())])
        };
        let report = queue_core::cache::swap(
            ctx.connection(),
            &req.target,
            &entries,
            Duration::from_millis(target.ttl_ms),
        )
        .await?;
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

    async fn pool(&self, name: &str, url: &str) -> Result<AnyPool, JobError> {
        let cell = self
            .pools
            .get(name)
            .ok_or_else(|| JobError::unrecoverable("unknown source"))?;
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

    async fn fetch(
        &self,
        url: &str,
        rows: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, JobError> {
        let response = self
            .http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| JobError::failed(format!("GET {url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let message = format!("GET {url}: {status}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                JobError::failed(message)
            } else {
                JobError::unrecoverable(message)
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| JobError::failed(format!("GET {url}: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
            JobError::unrecoverable(format!("GET {url}: the body is not JSON: {e}"))
        })?;
        match rows {
            None | Some("") => Ok(body),
            Some(pointer) => body.pointer(pointer).cloned().ok_or_else(|| {
                JobError::unrecoverable(format!("GET {url}: nothing at {pointer} in the body"))
            }),
        }
    }
}

/// Runs `query` and turns each row into a JSON object.
async fn query_rows(pool: &AnyPool, query: &str, max_rows: usize) -> Result<Value, JobError> {
    let rows = sqlx::query(query)
        .fetch_all(pool)
        .await
        .map_err(|e| JobError::failed(format!("query failed: {e}")))?;
    if rows.len() > max_rows {
        return Err(JobError::unrecoverable(format!(
            "the query gave {} rows, more than max_rows {max_rows}",
            rows.len()
        )));
    }
    rows.iter()
        .map(row_json)
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn row_json(row: &AnyRow) -> Result<Value, JobError> {
    let mut out = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else {
            return Err(JobError::unrecoverable(format!(
                "column {:?} has a type cache-warm cannot read; cast it to text, integer or float in the query",
                column.name()
            )));
        };
        out.insert(column.name().to_string(), value);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates() {
        let p = parse_template("cache:template:{id}:{lang}").unwrap();
        let row = json!({"id": 7, "lang": "en", "body": "x"});
        assert_eq!(render_key(&p, &row).unwrap(), "cache:template:7:en");
        assert!(
            render_key(&p, &json!({"id": 7}))
                .unwrap_err()
                .contains("{lang}")
        );
        assert!(parse_template("cache:{id").is_err());
        assert!(parse_template("cache:{}").is_err());
        assert_eq!(
            parse_template("cache:stats").unwrap(),
            [Piece::Text("cache:stats".into())]
        );
    }

    #[test]
    fn config_is_checked() {
        let parse = |t: &str| toml::from_str::<CacheWarmConfig>(t).unwrap().validate();
        assert!(parse("[sources.a]\ndatabase = \"sqlite:x.db\"\nquery = \"SELECT 1\"\n[targets.t]\nkey = \"cache:{id}\"\nttl_ms = 1000").is_ok());
        for (bad, why) in [
            (
                "[sources.a]\nquery = \"SELECT 1\"",
                "needs database and query, or url",
            ),
            (
                "[sources.a]\ndatabase = \"mysql://x\"\nquery = \"q\"",
                "postgres:// or sqlite:",
            ),
            ("[sources.a]\nurl = \"ftp://x\"", "http"),
            (
                "[sources.a]\nurl = \"http://x\"\nrows = \"items\"",
                "JSON pointer",
            ),
            ("[targets.t]\nkey = \"bull:q:meta\"\nttl_ms = 5", "reserved"),
            ("[targets.t]\nkey = \"cache:x\"\nttl_ms = 0", "ttl_ms"),
            (
                "[targets.t]\nkey = \"cache:{x\"\nttl_ms = 5",
                "without closing",
            ),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
