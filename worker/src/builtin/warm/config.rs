//! `[handler.cache_warm]`: the named sources and targets a job may use.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use queue_core::config::redact_url;
use serde::Deserialize;

use super::template::KeyTemplate;

/// Longest a query or a GET may take when a source does not say.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most rows a source may give when it does not say.
pub(super) const DEFAULT_MAX_ROWS: usize = 1_000_000;

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
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
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

/// Database URLs carry passwords and HTTP URLs tokens: `Debug` redacts
/// their user information.
impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("database", &self.database.as_deref().map(redact_url))
            .field("query", &self.query)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("rows", &self.rows)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_rows", &self.max_rows)
            .finish()
    }
}

impl SourceConfig {
    pub(super) fn timeout(&self) -> Duration {
        self.timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
    }

    pub(super) fn max_rows(&self) -> usize {
        self.max_rows.unwrap_or(DEFAULT_MAX_ROWS)
    }
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

impl CacheWarmConfig {
    /// Whether anything is configured (then `cache-warm` jobs are served).
    pub fn is_configured(&self) -> bool {
        !self.targets.is_empty()
    }

    /// Checks every source and target.
    pub fn validate(&self) -> Result<(), String> {
        for (name, source) in &self.sources {
            source
                .validate()
                .map_err(|e| format!("[handler.cache_warm.sources.{name}] {e}"))?;
        }
        for (name, target) in &self.targets {
            target
                .validate()
                .map_err(|e| format!("[handler.cache_warm.targets.{name}] {e}"))?;
        }
        Ok(())
    }
}

impl SourceConfig {
    fn validate(&self) -> Result<(), &'static str> {
        match (&self.database, &self.query, &self.url) {
            (Some(db), Some(_), None) => {
                if !(db.starts_with("postgres://")
                    || db.starts_with("postgresql://")
                    || db.starts_with("sqlite:"))
                {
                    return Err("database must be a postgres:// or sqlite: URL");
                }
            }
            (None, None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err("url must be http:// or https://");
                }
            }
            _ => return Err("needs database and query, or url (not both)"),
        }
        if self.rows.is_some() && self.url.is_none() {
            return Err("rows (a JSON pointer) applies to url sources");
        }
        if self
            .rows
            .as_deref()
            .is_some_and(|p| !p.is_empty() && !p.starts_with('/'))
        {
            return Err("rows must be a JSON pointer such as /items");
        }
        if self.timeout_ms == Some(0) || self.max_rows == Some(0) {
            return Err("timeout_ms and max_rows must be at least 1");
        }
        Ok(())
    }
}

impl TargetConfig {
    fn validate(&self) -> Result<(), String> {
        if self.ttl_ms == 0 {
            return Err("ttl_ms must be at least 1".into());
        }
        KeyTemplate::parse(&self.key)?;
        // Fixed text first, so no row decides where its key lands.
        if self.key.starts_with('{') {
            return Err(format!(
                "key {:?} must start with fixed text such as cache:",
                self.key
            ));
        }
        if queue_core::cache::RESERVED_PREFIXES
            .iter()
            .any(|p| self.key.starts_with(p))
        {
            return Err(format!(
                "key {:?} is under a prefix reserved for queues and Drover",
                self.key
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(), String> {
        toml::from_str::<CacheWarmConfig>(text).unwrap().validate()
    }

    #[test]
    fn a_good_config_passes() {
        check(
            "[sources.a]\ndatabase = \"sqlite:x.db\"\nquery = \"SELECT 1\"\n\
             [sources.b]\nurl = \"https://x/stats\"\nrows = \"/items\"\ntimeout_ms = 5000\n\
             [targets.t]\nkey = \"cache:{id}\"\nttl_ms = 1000",
        )
        .unwrap();
    }

    #[test]
    fn bad_sources_and_targets_are_refused() {
        for (bad, why) in [
            (
                "[sources.a]\nquery = \"SELECT 1\"",
                "needs database and query",
            ),
            (
                "[sources.a]\ndatabase = \"sqlite:x\"\nquery = \"q\"\nurl = \"http://x\"",
                "not both",
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
            (
                "[sources.a]\nurl = \"http://x\"\ntimeout_ms = 0",
                "at least 1",
            ),
            ("[targets.t]\nkey = \"bull:q:meta\"\nttl_ms = 5", "reserved"),
            ("[targets.t]\nkey = \"drover:x\"\nttl_ms = 5", "reserved"),
            ("[targets.t]\nkey = \"{id}\"\nttl_ms = 5", "fixed text"),
            ("[targets.t]\nkey = \"cache:x\"\nttl_ms = 0", "ttl_ms"),
            (
                "[targets.t]\nkey = \"cache:{x\"\nttl_ms = 5",
                "without closing",
            ),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(toml::from_str::<CacheWarmConfig>("[targets.t]\nkey = \"k\"\nttl = 5").is_err());
    }

    #[test]
    fn debug_hides_passwords() {
        let source = SourceConfig {
            database: Some("postgres://app:hunter2@db/app".into()),
            query: Some("SELECT 1".into()),
            ..SourceConfig::default()
        };
        let shown = format!("{source:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***@db/app"),
            "{shown}"
        );
    }
}
