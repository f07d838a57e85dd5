//! The rules of one scaling direction in HPA v2's vocabulary: a
//! stabilization window, step policies per period, and how they combine.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::bad;
use crate::error::Result;

/// Longest stabilization window or step period, in seconds (one hour).
pub const MAX_WINDOW_SECS: u32 = 3_600;

/// How the step policies of one direction combine (HPA's `selectPolicy`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// The policy allowing the biggest change wins.
    Max,
    /// The policy allowing the smallest change wins.
    Min,
    /// No change in this direction at all.
    Disabled,
}

/// The unit of a step policy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// At most `value` workers per period (HPA's `Pods`).
    Workers,
    /// At most `value` percent of the count at the period's start.
    Percent,
}

/// A limit on how much the count may change per period.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepPolicy {
    /// `workers` or `percent`.
    #[serde(rename = "type")]
    pub kind: StepKind,
    /// Workers, or percent, per period; greater than 0.
    pub value: u32,
    /// The period, in seconds (1 to 3600).
    pub period_secs: u32,
}

/// The rules of one direction as written; unset fields take the
/// direction's defaults.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesSpec {
    /// Seconds of past recommendations considered: scaling up goes to the
    /// lowest of them, scaling down to the highest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stabilization_window_secs: Option<u32>,
    /// How the policies combine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<Select>,
    /// Step limits per period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<StepPolicy>>,
}

/// The checked rules of one direction.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// Seconds of past recommendations considered.
    pub stabilization_window_secs: u32,
    /// How the policies combine.
    pub select: Select,
    /// Step limits per period.
    pub policies: Vec<StepPolicy>,
}

impl Rules {
    /// Up fast: no stabilization, and per second at most double or four
    /// more workers, whichever is more.
    pub fn up_default() -> Self {
        Self {
            stabilization_window_secs: 0,
            select: Select::Max,
            policies: vec![
                StepPolicy {
                    kind: StepKind::Percent,
                    value: 100,
                    period_secs: 1,
                },
                StepPolicy {
                    kind: StepKind::Workers,
                    value: 4,
                    period_secs: 1,
                },
            ],
        }
    }

    /// Down slowly: only below every recommendation of the last five
    /// minutes, and at most half the workers per 30 seconds.
    pub fn down_default() -> Self {
        Self {
            stabilization_window_secs: 300,
            select: Select::Max,
            policies: vec![StepPolicy {
                kind: StepKind::Percent,
                value: 50,
                period_secs: 30,
            }],
        }
    }

    /// The stabilization window.
    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.stabilization_window_secs))
    }

    /// The longest period of its policies, in ms.
    pub fn longest_period_ms(&self) -> u64 {
        self.policies
            .iter()
            .map(|p| u64::from(p.period_secs) * 1_000)
            .max()
            .unwrap_or(0)
    }
}

impl RulesSpec {
    pub(super) fn check(&self, field: &str, defaults: Rules) -> Result<Rules> {
        let window = self
            .stabilization_window_secs
            .unwrap_or(defaults.stabilization_window_secs);
        if window > MAX_WINDOW_SECS {
            return Err(bad(format!(
                "{field}.stabilization_window_secs must be at most {MAX_WINDOW_SECS}"
            )));
        }
        let select = self.select.unwrap_or(defaults.select);
        let policies = self.policies.clone().unwrap_or(defaults.policies);
        if policies.is_empty() && select != Select::Disabled {
            return Err(bad(format!(
                "{field}.policies must not be empty (use select = \"disabled\" to forbid scaling this way)"
            )));
        }
        for (i, p) in policies.iter().enumerate() {
            if p.value == 0 {
                return Err(bad(format!("{field}.policies[{i}].value must be above 0")));
            }
            if p.period_secs == 0 || p.period_secs > MAX_WINDOW_SECS {
                return Err(bad(format!(
                    "{field}.policies[{i}].period_secs must be 1 to {MAX_WINDOW_SECS}"
                )));
            }
            if p.kind == StepKind::Percent && field == "scale_down" && p.value > 100 {
                return Err(bad(format!(
                    "{field}.policies[{i}]: a scale-down percent must be at most 100"
                )));
            }
        }
        Ok(Rules {
            stabilization_window_secs: window,
            select,
            policies,
        })
    }
}
