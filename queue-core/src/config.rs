//! Redis connection settings: the raw, deserializable form the binary layers
//! from defaults, the TOML file, the environment and flags, and the checked
//! form everything else uses.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{QueueError, Result};
use crate::keys::DROVER_NAMESPACE;
use crate::sentinel::{self, SentinelUrl};
use crate::tls::{RedisTlsConfig, TlsPem};

/// Redis settings as written in the `[redis]` table of the config file.
///
/// Secrets may hide in `url` and `cluster_nodes` (`redis://:pass@host`), so
/// `Debug` redacts them.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`, `rediss://` for TLS, `redis+unix:///path`,
    /// or `redis+sentinel://host:port[,host:port…]/<master>[/<db>]` to find
    /// the master through Redis Sentinel and follow its failovers.
    /// Ignored when `cluster_nodes` is set. Env: `REDIS_URL`.
    pub url: String,
    /// Seed nodes of a Redis Cluster (`redis://host:port` each). When
    /// non-empty, a cluster client is used. Env: `DROVER_REDIS_CLUSTER_NODES`
    /// (comma separated).
    pub cluster_nodes: Vec<String>,
    /// BullMQ key prefix, `bull` by default. A `{...}` hash tag is kept
    /// verbatim so every queue key lands in one Redis Cluster slot.
    /// Env: `DROVER_PREFIX`.
    pub prefix: String,
    /// How long a worker waits before fetching again after Redis failed a
    /// command (a restart, a failover).
    pub reconnect_delay_ms: u64,
    /// Replicas that must confirm an added job (Redis `WAIT`) before the
    /// add is acknowledged; 0 (the default) acknowledges once the master
    /// has it. With 1 or more, a job acknowledged before a master dies is
    /// on a replica that can take over.
    pub wait_replicas: u32,
    /// How long an add waits for `wait_replicas` confirmations, in ms
    /// (1 to 5000); short of them it fails as retryable.
    pub wait_timeout_ms: u64,
    /// `[redis.tls]`: a private CA and a client certificate for `rediss://`.
    pub tls: RedisTlsConfig,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_string(),
            cluster_nodes: Vec::new(),
            prefix: "bull".to_string(),
            reconnect_delay_ms: 1_000,
            wait_replicas: 0,
            wait_timeout_ms: 1_000,
            tls: RedisTlsConfig::default(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field(
                "cluster_nodes",
                &self
                    .cluster_nodes
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>(),
            )
            .field("prefix", &self.prefix)
            .field("reconnect_delay_ms", &self.reconnect_delay_ms)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout_ms", &self.wait_timeout_ms)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Checked Redis settings: a valid prefix and URLs with known schemes.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub(crate) url: String,
    pub(crate) cluster_nodes: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) reconnect_delay: Duration,
    /// Replicas that confirm each add, and how long to wait for them.
    pub(crate) wait_replicas: u32,
    pub(crate) wait_timeout: Duration,
    /// Set when `url` is a `redis+sentinel://` URL.
    pub(crate) sentinel: Option<SentinelUrl>,
    /// TLS material beyond the web roots (see `tls.rs`).
    pub(crate) tls: Option<TlsPem>,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("target", &self.describe())
            .field("prefix", &self.prefix)
            .field("reconnect_delay", &self.reconnect_delay)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisConfig {
    /// Checks the settings once, so the rest of Drover never sees a bad
    /// prefix or URL.
    pub fn resolve(&self) -> Result<RedisSettings> {
        validate_prefix(&self.prefix)?;
        self.tls.check()?;
        if !(1..=5_000).contains(&self.wait_timeout_ms) {
            return Err(QueueError::InvalidConfig(format!(
                "[redis] wait_timeout_ms must be between 1 and 5000, got {}",
                self.wait_timeout_ms
            )));
        }
        let mut sentinel = None;
        if self.cluster_nodes.is_empty() {
            if self.url.starts_with(sentinel::SCHEME) {
                if self.tls != RedisTlsConfig::default() {
                    return Err(QueueError::InvalidConfig(
                        "[redis.tls] cannot be used with a redis+sentinel:// URL yet".into(),
                    ));
                }
                sentinel = Some(SentinelUrl::parse(&self.url)?);
            } else {
                validate_url(&self.url)?;
            }
        } else {
            for node in &self.cluster_nodes {
                validate_url(node)?;
                if node.starts_with("redis+unix:") || node.starts_with("unix:") {
                    return Err(QueueError::InvalidConfig(format!(
                        "cluster node {} must be a redis:// or rediss:// address",
                        redact_url(node)
                    )));
                }
            }
        }
        Ok(RedisSettings {
            url: self.url.clone(),
            cluster_nodes: self.cluster_nodes.clone(),
            prefix: self.prefix.clone(),
            reconnect_delay: Duration::from_millis(self.reconnect_delay_ms.max(50)),
            wait_replicas: self.wait_replicas,
            wait_timeout: Duration::from_millis(self.wait_timeout_ms),
            sentinel,
            tls: None,
        })
    }
}

impl RedisSettings {
    /// Settings for a single server at `url` with the default prefix.
    pub fn for_url(url: impl Into<String>) -> Result<Self> {
        RedisConfig {
            url: url.into(),
            ..RedisConfig::default()
        }
        .resolve()
    }

    /// The same settings with another key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        validate_prefix(&prefix)?;
        self.prefix = prefix;
        Ok(self)
    }

    /// The BullMQ key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The server URL (credentials included: do not log it; see
    /// [`describe`](Self::describe)).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where this connects to, with passwords redacted, for logs.
    pub fn describe(&self) -> String {
        if self.cluster_nodes.is_empty() {
            redact_url(&self.url)
        } else {
            format!(
                "cluster [{}]",
                self.cluster_nodes
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }

    /// Whether these settings name a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty()
    }
}

/// BullMQ's prefix rules (non-empty, no `:`), plus Drover's reserved
/// namespace: our own keys live under `drover:`, so a BullMQ prefix of
/// `drover` could collide with them.
fn validate_prefix(prefix: &str) -> Result<()> {
    let reason = if prefix.is_empty() {
        Some("must not be empty")
    } else if prefix.contains(':') {
        Some("must not contain ':'")
    } else if prefix == DROVER_NAMESPACE {
        Some("is reserved for Drover's own keys")
    } else if prefix.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("must not contain whitespace or control characters")
    } else if prefix.len() > 128 {
        Some("must be at most 128 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(QueueError::InvalidConfig(format!(
            "key prefix {prefix:?} {reason}"
        ))),
        None => Ok(()),
    }
}

fn validate_url(url: &str) -> Result<()> {
    const SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "unix://"];
    if SCHEMES.iter().any(|s| url.starts_with(s)) {
        Ok(())
    } else {
        Err(QueueError::InvalidConfig(format!(
            "redis URL {} must start with redis://, rediss://, redis+unix:// or redis+sentinel://",
            redact_url(url)
        )))
    }
}

/// Characters RFC 3986 calls unreserved, left as they are.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` percent-encoded but for RFC 3986's unreserved characters: safe as
/// one path segment or as the user or password of a URL.
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Hides the password (and user) of a `scheme://user:pass@host` URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let settings = RedisConfig::default().resolve().unwrap();
        assert_eq!(settings.prefix(), "bull");
        assert!(!settings.is_cluster());
        assert_eq!(settings.describe(), "redis://127.0.0.1:6379");
    }

    #[test]
    fn hash_tag_prefix_is_kept_verbatim() {
        let config = RedisConfig {
            prefix: "{bull}".into(),
            ..RedisConfig::default()
        };
        assert_eq!(config.resolve().unwrap().prefix(), "{bull}");
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        for prefix in ["", "a:b", "drover", "with space"] {
            let config = RedisConfig {
                prefix: prefix.into(),
                ..RedisConfig::default()
            };
            assert!(
                matches!(config.resolve(), Err(QueueError::InvalidConfig(_))),
                "{prefix:?} should be rejected"
            );
        }
    }

    #[test]
    fn unknown_scheme_is_rejected_and_redacted() {
        let config = RedisConfig {
            url: "http://user:secret@host:6379".into(),
            ..RedisConfig::default()
        };
        let err = config.resolve().unwrap_err().to_string();
        assert!(err.contains("***@host:6379"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn debug_redacts_passwords() {
        let config = RedisConfig {
            url: "rediss://:hunter2@cache.internal:6380/0".into(),
            cluster_nodes: vec!["redis://u:pw@n1:7000".into()],
            ..RedisConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw@"),
            "{shown}"
        );
        assert!(shown.contains("cache.internal:6380/0"), "{shown}");
    }

    #[test]
    fn sentinel_urls_and_replica_waits_are_checked() {
        let config = RedisConfig {
            url: "redis+sentinel://:pw@127.0.0.1:26379/mymaster".into(),
            wait_replicas: 1,
            ..RedisConfig::default()
        };
        let settings = config.resolve().unwrap();
        assert_eq!(settings.sentinel.as_ref().unwrap().master, "mymaster");
        assert!(
            !settings.describe().contains("pw"),
            "{}",
            settings.describe()
        );
        let bad = RedisConfig {
            url: "redis+sentinel://127.0.0.1:26379".into(),
            ..RedisConfig::default()
        };
        assert!(bad.resolve().is_err());
        for wait_timeout_ms in [0, 5_001] {
            let bad = RedisConfig {
                wait_timeout_ms,
                ..RedisConfig::default()
            };
            assert!(bad.resolve().is_err(), "{wait_timeout_ms}");
        }
    }

    #[test]
    fn cluster_nodes_must_be_tcp() {
        let config = RedisConfig {
            cluster_nodes: vec!["redis+unix:///tmp/r.sock".into()],
            ..RedisConfig::default()
        };
        assert!(config.resolve().is_err());
    }
}
