//! The `[api]` table of the config file, and its checked form.

use std::time::Duration;

use serde::Deserialize;

/// `[api]` as written in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes (`413` above).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a body.
    pub max_json_depth: usize,
    /// Requests per second per API key when the key sets none (shared by
    /// every API instance through Redis). 0 turns the default limit off.
    pub key_rate_limit_per_sec: u32,
    /// How long a verified API key is trusted before the store is asked
    /// again, in ms (re-checked in the background for up to as long
    /// again); a revoked key stops working within twice this time on
    /// every instance.
    pub key_cache_ttl_ms: u64,
    /// Most Server-Sent Events streams open at once (each holds a Redis
    /// connection); `503` above.
    pub max_event_streams: usize,
    /// Most requests handled at once by one instance; one more is answered
    /// at once with `503 overloaded` and `Retry-After: 1` (load shedding).
    /// `/health` and `/ready` are never refused.
    pub max_in_flight_requests: usize,
    /// How often queue counts for `/metrics` are refreshed, in ms.
    pub queue_metrics_interval_ms: u64,
    /// Keys `GET /api/v1/cache/{key}` may read: those starting with one of
    /// these (the cache-warm targets' keys). Empty: none.
    pub cache_prefixes: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            key_rate_limit_per_sec: 1_000,
            key_cache_ttl_ms: 5_000,
            max_event_streams: 256,
            max_in_flight_requests: 1_024,
            queue_metrics_interval_ms: 5_000,
            cache_prefixes: vec!["cache:".to_string()],
        }
    }
}

/// The largest `max_in_flight_requests` accepted.
const MAX_IN_FLIGHT: usize = 1_000_000;

/// The checked `[api]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    pub(crate) max_body_bytes: usize,
    pub(crate) max_json_depth: usize,
    pub(crate) key_rate_limit_per_sec: Option<u32>,
    pub(crate) key_cache_ttl: Duration,
    pub(crate) max_event_streams: usize,
    pub(crate) max_in_flight_requests: usize,
    pub(crate) queue_metrics_interval: Duration,
    pub(crate) cache_prefixes: Vec<String>,
}

impl ApiConfig {
    /// Checks the values; the message names the bad key.
    pub fn resolve(&self) -> Result<ApiSettings, String> {
        if self.max_body_bytes < 1024 {
            return Err("[api] max_body_bytes must be at least 1024".into());
        }
        if !(2..=512).contains(&self.max_json_depth) {
            return Err("[api] max_json_depth must be between 2 and 512".into());
        }
        if let Some(p) = self.cache_prefixes.iter().find(|p| {
            p.is_empty()
                || queue_core::cache::RESERVED_PREFIXES
                    .iter()
                    .any(|r| p.starts_with(r))
        }) {
            return Err(format!(
                "[api] cache_prefixes: {p:?} would expose queue or Drover keys; use the cache-warm targets' prefixes"
            ));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight_requests) {
            return Err(format!(
                "[api] max_in_flight_requests must be between 1 and {MAX_IN_FLIGHT}"
            ));
        }
        if self.queue_metrics_interval_ms < 100 {
            return Err("[api] queue_metrics_interval_ms must be at least 100".into());
        }
        Ok(ApiSettings {
            max_body_bytes: self.max_body_bytes,
            max_json_depth: self.max_json_depth,
            key_rate_limit_per_sec: (self.key_rate_limit_per_sec > 0)
                .then_some(self.key_rate_limit_per_sec),
            key_cache_ttl: Duration::from_millis(self.key_cache_ttl_ms),
            max_event_streams: self.max_event_streams,
            max_in_flight_requests: self.max_in_flight_requests,
            queue_metrics_interval: Duration::from_millis(self.queue_metrics_interval_ms),
            cache_prefixes: self.cache_prefixes.clone(),
        })
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        // The defaults are valid by construction.
        match ApiConfig::default().resolve() {
            Ok(s) => s,
            Err(e) => unreachable!("default [api] settings are invalid: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_and_bad_values_are_named() {
        assert_eq!(ApiSettings::default().max_body_bytes, 1024 * 1024);
        let bad = ApiConfig {
            max_json_depth: 1,
            ..ApiConfig::default()
        };
        assert!(bad.resolve().unwrap_err().contains("max_json_depth"));
        let bad = ApiConfig {
            max_in_flight_requests: 0,
            ..ApiConfig::default()
        };
        assert!(
            bad.resolve()
                .unwrap_err()
                .contains("max_in_flight_requests")
        );
    }
}
