//! An autoscaling policy: how many workers a queue may have, what the
//! autoscaler aims for, and how fast it may move, in the vocabulary of
//! Kubernetes' HPA v2 `behavior` (stabilization window, step policies per
//! period, select max/min/disabled).
//!
//! [`PolicySpec`] is what the config file (`[autoscaler.queue.<name>]`)
//! and the API (`PUT /api/v1/autoscaler/queues/{queue}`) accept; every
//! field is optional. [`PolicySpec::check`] turns it into a [`Policy`] with
//! the defaults filled in, or says which field is wrong.

use serde::{Deserialize, Serialize};

use super::rules::{Rules, RulesSpec};
use crate::error::{QueueError, Result};

/// Most workers a policy may ask for.
pub const MAX_WORKERS: u32 = 10_000;

/// What carries out the autoscaler's decision for a queue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Actuator {
    /// Running `drover worker` processes change their concurrency for the
    /// queue live; a worker is one concurrency slot, shared out among them.
    #[default]
    Concurrency,
    /// `drover worker --supervise` starts and drains worker processes; a
    /// worker is one process.
    Process,
    /// The replicas of a Deployment, through its scale subresource; a
    /// worker is one pod.
    Kubernetes,
    /// Nothing is actuated: the desired count is published (API, metrics)
    /// for an external scaler such as KEDA's metrics-api scaler; a worker
    /// is one replica.
    External,
}

impl Actuator {
    /// Its name in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Process => "process",
            Self::Kubernetes => "kubernetes",
            Self::External => "external",
        }
    }
}

/// An autoscaling policy as written (config file or API); every field is
/// optional.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySpec {
    /// What carries out the decision (default `concurrency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actuator: Option<Actuator>,
    /// Fewest workers (default 1; 0 allows scale to zero with the process,
    /// kubernetes and external actuators).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_workers: Option<u32>,
    /// Most workers (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_workers: Option<u32>,
    /// Waiting jobs one slot may have before another slot is wanted:
    /// slots = active + backlog / this. Default 10 when no target is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_backlog_per_slot: Option<f64>,
    /// Longest a job should wait, in ms: slots = (arrival rate + backlog /
    /// this) × mean job duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_wait_ms: Option<u64>,
    /// Slots per worker (process or pod); default: the average concurrency
    /// the queue's live workers report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_concurrency: Option<u32>,
    /// With `min_workers = 0`: zero only when nothing (delayed job or
    /// schedule) is due within this many ms (default 30000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_start_ms: Option<u64>,
    /// Relative changes of the wanted slots smaller than this are ignored
    /// (default 0.1, HPA's tolerance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Kubernetes actuator: the Deployment to scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Kubernetes actuator: its namespace (default: the autoscaler's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Scaling up.
    pub scale_up: RulesSpec,
    /// Scaling down.
    pub scale_down: RulesSpec,
}

/// A checked policy, defaults filled in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Policy {
    /// What carries out the decision.
    pub actuator: Actuator,
    /// Fewest workers.
    pub min_workers: u32,
    /// Most workers.
    pub max_workers: u32,
    /// Waiting jobs per slot, if that target is on.
    pub target_backlog_per_slot: Option<f64>,
    /// Longest wait in ms, if that target is on.
    pub target_wait_ms: Option<u64>,
    /// Slots per worker, if fixed.
    pub worker_concurrency: Option<u32>,
    /// Nothing may be due within this for a scale to zero, in ms.
    pub cold_start_ms: u64,
    /// Ignored relative change.
    pub tolerance: f64,
    /// Kubernetes: the Deployment.
    pub deployment: Option<String>,
    /// Kubernetes: its namespace.
    pub namespace: Option<String>,
    /// Scaling up.
    pub scale_up: Rules,
    /// Scaling down.
    pub scale_down: Rules,
}

pub(super) fn bad(message: impl Into<String>) -> QueueError {
    QueueError::InvalidAutoscalePolicy(message.into())
}

impl PolicySpec {
    /// Checks the spec and fills in the defaults; the error names the
    /// field and what is allowed.
    pub fn check(&self) -> Result<Policy> {
        let actuator = self.actuator.unwrap_or_default();
        let min = self.min_workers.unwrap_or(1);
        let max = self.max_workers.unwrap_or(10);
        if max == 0 || max > MAX_WORKERS {
            return Err(bad(format!(
                "max_workers must be 1 to {MAX_WORKERS}, not {max}"
            )));
        }
        if min > max {
            return Err(bad(format!(
                "min_workers ({min}) must not be above max_workers ({max})"
            )));
        }
        if min == 0 && actuator == Actuator::Concurrency {
            return Err(bad(
                "min_workers = 0 needs the process, kubernetes or external actuator: a drover \
                 worker process always runs at least one job of each queue at a time",
            ));
        }
        let mut backlog = self.target_backlog_per_slot;
        if let Some(b) = backlog {
            if !(b.is_finite() && b > 0.0) {
                return Err(bad(format!(
                    "target_backlog_per_slot must be a number above 0, not {b}"
                )));
            }
        }
        if self.target_wait_ms == Some(0) {
            return Err(bad("target_wait_ms must be above 0"));
        }
        if backlog.is_none() && self.target_wait_ms.is_none() {
            backlog = Some(10.0);
        }
        if let Some(c) = self.worker_concurrency {
            if c == 0 || c > MAX_WORKERS {
                return Err(bad(format!(
                    "worker_concurrency must be 1 to {MAX_WORKERS}, not {c}"
                )));
            }
        }
        let tolerance = self.tolerance.unwrap_or(0.1);
        if !(0.0..1.0).contains(&tolerance) {
            return Err(bad(format!(
                "tolerance must be at least 0 and below 1, not {tolerance}"
            )));
        }
        let cold_start_ms = self.cold_start_ms.unwrap_or(30_000);
        if cold_start_ms > 86_400_000 {
            return Err(bad("cold_start_ms must be at most 86400000 (a day)"));
        }
        match (actuator, &self.deployment) {
            (Actuator::Kubernetes, None) => {
                return Err(bad(
                    "the kubernetes actuator needs deployment (the Deployment to scale)",
                ));
            }
            (Actuator::Kubernetes, Some(name)) => {
                check_k8s_name("deployment", name)?;
                if let Some(ns) = &self.namespace {
                    check_k8s_name("namespace", ns)?;
                }
            }
            (_, Some(_)) => {
                return Err(bad("deployment is only for the kubernetes actuator"));
            }
            (_, None) if self.namespace.is_some() => {
                return Err(bad("namespace is only for the kubernetes actuator"));
            }
            _ => {}
        }
        Ok(Policy {
            actuator,
            min_workers: min,
            max_workers: max,
            target_backlog_per_slot: backlog,
            target_wait_ms: self.target_wait_ms,
            worker_concurrency: self.worker_concurrency,
            cold_start_ms,
            tolerance,
            deployment: self.deployment.clone(),
            namespace: self.namespace.clone(),
            scale_up: self.scale_up.check("scale_up", Rules::up_default())?,
            scale_down: self.scale_down.check("scale_down", Rules::down_default())?,
        })
    }
}

/// A Kubernetes object name: a DNS-1123 label (lowercase letters, digits,
/// `-`, at most 63, starting and ending alphanumeric).
fn check_k8s_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{field} {name:?} is not a Kubernetes name (lowercase letters, digits and '-', at most 63)"
        )))
    }
}

/// A checked policy from JSON, for tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_policy(json: serde_json::Value) -> Policy {
    serde_json::from_value::<PolicySpec>(json)
        .unwrap()
        .check()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::rules::Select;

    fn spec(json: serde_json::Value) -> PolicySpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_go_up_fast_and_down_slowly() {
        let p = PolicySpec::default().check().unwrap();
        assert_eq!((p.min_workers, p.max_workers), (1, 10));
        assert_eq!(p.actuator, Actuator::Concurrency);
        assert_eq!(p.target_backlog_per_slot, Some(10.0));
        assert_eq!(p.scale_up.stabilization_window_secs, 0);
        assert_eq!(p.scale_down.stabilization_window_secs, 300);
    }

    #[test]
    fn a_latency_target_alone_turns_the_backlog_default_off() {
        let p = spec(serde_json::json!({"target_wait_ms": 5000}))
            .check()
            .unwrap();
        assert_eq!(p.target_backlog_per_slot, None);
        assert_eq!(p.target_wait_ms, Some(5000));
    }

    #[test]
    fn mistakes_name_the_field() {
        let cases = [
            (
                serde_json::json!({"min_workers": 5, "max_workers": 2}),
                "min_workers",
            ),
            (serde_json::json!({"max_workers": 0}), "max_workers"),
            (serde_json::json!({"min_workers": 0}), "min_workers = 0"),
            (
                serde_json::json!({"target_backlog_per_slot": 0}),
                "target_backlog_per_slot",
            ),
            (
                serde_json::json!({"actuator": "kubernetes"}),
                "needs deployment",
            ),
            (
                serde_json::json!({"actuator": "kubernetes", "deployment": "Bad_Name"}),
                "not a Kubernetes name",
            ),
            (
                serde_json::json!({"deployment": "w"}),
                "only for the kubernetes",
            ),
            (
                serde_json::json!({"scale_up": {"policies": [{"type": "workers", "value": 0, "period_secs": 1}]}}),
                "scale_up.policies[0].value",
            ),
            (
                serde_json::json!({"scale_down": {"policies": []}}),
                "must not be empty",
            ),
            (serde_json::json!({"tolerance": 1.5}), "tolerance"),
        ];
        for (json, expected) in cases {
            let err = spec(json.clone()).check().unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
        assert!(
            serde_json::from_value::<PolicySpec>(serde_json::json!({"maxworkers": 3})).is_err()
        );
        assert!(
            serde_json::from_value::<PolicySpec>(serde_json::json!({"actuator": "pm2"})).is_err()
        );
    }

    #[test]
    fn disabled_needs_no_policies() {
        let p = spec(serde_json::json!({"scale_down": {"select": "disabled", "policies": []}}))
            .check()
            .unwrap();
        assert_eq!(p.scale_down.select, Select::Disabled);
    }
}
