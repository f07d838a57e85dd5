//! The states a job can be in, as BullMQ stores them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job currently sits. Each state is one Redis structure of the
/// queue; `Waiting` covers both `wait` and the legacy 5.x `paused` list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Ready to run (`wait`, and the legacy `paused` list).
    Waiting,
    /// Ready to run, ordered by priority (`prioritized`).
    Prioritized,
    /// Scheduled for later, or backing off before a retry (`delayed`).
    Delayed,
    /// Locked by a worker (`active`).
    Active,
    /// Finished successfully (`completed`).
    Completed,
    /// Finished with a final failure (`failed`).
    Failed,
    /// A flow parent waiting for its children (`waiting-children`).
    WaitingChildren,
}

impl JobState {
    /// Every state, in the order dashboards show them.
    pub const ALL: [JobState; 7] = [
        JobState::Waiting,
        JobState::Prioritized,
        JobState::Delayed,
        JobState::Active,
        JobState::Completed,
        JobState::Failed,
        JobState::WaitingChildren,
    ];

    /// The name used in the CLI, the API and BullMQ's `getState()`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Prioritized => "prioritized",
            Self::Delayed => "delayed",
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::WaitingChildren => "waiting-children",
        }
    }

    /// Whether the state is held in a Redis list (else a sorted set).
    pub(crate) fn is_list(self) -> bool {
        matches!(self, Self::Waiting | Self::Active)
    }

    /// The queue key suffix holding jobs in this state.
    pub(crate) fn key_suffix(self) -> &'static str {
        match self {
            Self::Waiting => "wait",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`JobState`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown job state {:?}; expected one of waiting, prioritized, delayed, active, \
             completed, failed, waiting-children",
            self.0
        )
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "waiting" | "wait" => Self::Waiting,
            "prioritized" => Self::Prioritized,
            "delayed" => Self::Delayed,
            "active" => Self::Active,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "waiting-children" => Self::WaitingChildren,
            _ => return Err(UnknownState(s.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
        assert_eq!("wait".parse::<JobState>().unwrap(), JobState::Waiting);
        assert!("paused".parse::<JobState>().is_err());
    }
}
