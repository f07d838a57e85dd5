//! The `[autoscaler]` table of the config file, and its checked form.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use queue_core::QueueName;
use queue_core::autoscale::{Policy, PolicySpec};
use serde::Deserialize;

/// `[autoscaler]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscalerConfig {
    /// Whether `drover serve` runs the control loop (one leader among all
    /// instances; the others stand by).
    pub enabled: bool,
    /// How often the leader reads the queues and decides.
    pub interval_ms: u64,
    /// The leader lease's time to live: another instance takes over within
    /// about this long after the leader dies.
    pub lease_ttl_ms: u64,
    /// A worker or supervisor counts as live if it beat within this.
    pub heartbeat_timeout_ms: u64,
    /// Arrival and completion rates are measured over this window.
    pub rate_window_ms: u64,
    /// How often the keyspace is scanned for new queues.
    pub discovery_interval_ms: u64,
    /// Decisions kept in Redis, all queues together.
    pub decisions_kept: usize,
    /// Samples of desired vs actual workers kept per queue (one per tick).
    pub history_samples: usize,
    /// Where the Kubernetes API is (the kubernetes actuator).
    pub kubernetes: KubernetesConfig,
    /// The policy of every queue without one of its own; unset: such
    /// queues are watched, not scaled.
    pub default: Option<PolicySpec>,
    /// Per-queue policies, `[autoscaler.queue.<name>]`; the API's override
    /// them.
    pub queue: BTreeMap<String, PolicySpec>,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 500,
            lease_ttl_ms: 5_000,
            heartbeat_timeout_ms: 15_000,
            rate_window_ms: 10_000,
            discovery_interval_ms: 10_000,
            decisions_kept: 1_000,
            history_samples: 7_200,
            kubernetes: KubernetesConfig::default(),
            default: None,
            queue: BTreeMap::new(),
        }
    }
}

/// `[autoscaler.kubernetes]`: by default the in-cluster service account
/// (`KUBERNETES_SERVICE_HOST`, the token, CA and namespace files under
/// `/var/run/secrets/kubernetes.io/serviceaccount`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The API server, e.g. `https://10.0.0.1:443`.
    pub api_url: Option<String>,
    /// A file holding the bearer token (re-read as it rotates).
    pub token_file: Option<PathBuf>,
    /// The API server's CA certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// The namespace of Deployments whose policy names none.
    pub namespace: Option<String>,
}

/// The checked `[autoscaler]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalerSettings {
    /// Whether the loop runs.
    pub enabled: bool,
    /// Tick period.
    pub interval: Duration,
    /// Lease time to live.
    pub lease_ttl: Duration,
    /// Liveness of heartbeats.
    pub heartbeat_timeout: Duration,
    /// Rate window.
    pub rate_window: Duration,
    /// Discovery period.
    pub discovery_interval: Duration,
    /// Decisions kept.
    pub decisions_kept: usize,
    /// Samples kept per queue.
    pub history_samples: usize,
    /// Default policy, checked (with its spec as written).
    pub default: Option<(PolicySpec, Policy)>,
    /// Per-queue policies, checked.
    pub queues: BTreeMap<QueueName, (PolicySpec, Policy)>,
}

impl AutoscalerConfig {
    /// Checks the values; the message names the key.
    pub fn resolve(&self) -> Result<AutoscalerSettings, String> {
        let ms = |v: u64, min: u64, max: u64, key: &str| {
            if (min..=max).contains(&v) {
                Ok(Duration::from_millis(v))
            } else {
                Err(format!(
                    "[autoscaler] {key} must be {min} to {max}, not {v}"
                ))
            }
        };
        let interval = ms(self.interval_ms, 100, 60_000, "interval_ms")?;
        let lease_ttl = ms(self.lease_ttl_ms, 1_000, 300_000, "lease_ttl_ms")?;
        if lease_ttl < interval * 2 {
            return Err("[autoscaler] lease_ttl_ms must be at least twice interval_ms".into());
        }
        let heartbeat_timeout = ms(
            self.heartbeat_timeout_ms,
            1_000,
            600_000,
            "heartbeat_timeout_ms",
        )?;
        let rate_window = ms(self.rate_window_ms, 1_000, 600_000, "rate_window_ms")?;
        let discovery_interval = ms(
            self.discovery_interval_ms,
            100,
            3_600_000,
            "discovery_interval_ms",
        )?;
        if !(1..=100_000).contains(&self.decisions_kept) {
            return Err("[autoscaler] decisions_kept must be 1 to 100000".into());
        }
        if !(1..=queue_core::autoscale::MAX_HISTORY).contains(&self.history_samples) {
            return Err(format!(
                "[autoscaler] history_samples must be 1 to {}",
                queue_core::autoscale::MAX_HISTORY
            ));
        }
        let default = self
            .default
            .as_ref()
            .map(|spec| {
                spec.check()
                    .map(|p| (spec.clone(), p))
                    .map_err(|e| format!("[autoscaler.default]: {e}"))
            })
            .transpose()?;
        let mut queues = BTreeMap::new();
        for (name, spec) in &self.queue {
            let bad = |e: &dyn std::fmt::Display| format!("[autoscaler.queue.{name}]: {e}");
            let queue = QueueName::new(name.as_str()).map_err(|e| bad(&e))?;
            let policy = spec.check().map_err(|e| bad(&e))?;
            queues.insert(queue, (spec.clone(), policy));
        }
        Ok(AutoscalerSettings {
            enabled: self.enabled,
            interval,
            lease_ttl,
            heartbeat_timeout,
            rate_window,
            discovery_interval,
            decisions_kept: self.decisions_kept,
            history_samples: self.history_samples,
            default,
            queues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_and_mistakes_name_the_table() {
        let s = AutoscalerConfig::default().resolve().unwrap();
        assert_eq!(s.interval, Duration::from_millis(500));
        let text = "[queue.emails]\nmin_workers = 4\nmax_workers = 2\n";
        let bad: AutoscalerConfig = toml::from_str(text).unwrap();
        let err = bad.resolve().unwrap_err();
        assert!(
            err.contains("[autoscaler.queue.emails]") && err.contains("min_workers"),
            "{err}"
        );
        let short = AutoscalerConfig {
            interval_ms: 800,
            lease_ttl_ms: 1_000,
            ..AutoscalerConfig::default()
        };
        assert!(short.resolve().unwrap_err().contains("twice"));
        assert!(toml::from_str::<AutoscalerConfig>("intervall_ms = 5").is_err());
    }
}
