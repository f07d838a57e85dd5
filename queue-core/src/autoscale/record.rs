//! What the autoscaler writes to Redis and everyone else reads: the
//! desired state per queue (what actuators act on), each queue's status,
//! the decisions, the history of desired vs actual workers, the leader.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::{Actuator, PolicySpec};

/// What the leader wants for one queue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// The queue.
    pub queue: String,
    /// Who carries it out.
    pub actuator: Actuator,
    /// Workers wanted (slots for the concurrency actuator).
    pub workers: u32,
    /// Each member's share: worker ids (concurrency) or supervisor ids
    /// (process) to their count. Empty for the other actuators.
    pub assignments: BTreeMap<String, u32>,
    /// The leader's epoch (fencing token) when it was written.
    pub epoch: u64,
    /// When it was written, ms since the epoch.
    pub at_ms: u64,
}

/// The signals behind a decision, as people read them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalsView {
    /// Waiting, prioritized and due delayed jobs (0 while paused).
    pub backlog: u64,
    /// Jobs being processed.
    pub active: u64,
    /// Whether the queue is paused.
    pub paused: bool,
    /// Age of the job next in line, ms.
    pub oldest_wait_ms: Option<u64>,
    /// Jobs added per second.
    pub arrival_per_sec: Option<f64>,
    /// Jobs finished per second.
    pub completion_per_sec: Option<f64>,
    /// Mean time in a worker, ms.
    pub job_ms: Option<f64>,
    /// Live worker processes consuming the queue (heartbeats).
    pub live_workers: u32,
    /// Their slots (concurrency) on this queue.
    pub live_slots: u32,
    /// The queue's global concurrency.
    pub global_concurrency: Option<u64>,
    /// The queue's global rate limit: jobs per `rate_limit_duration_ms`.
    pub rate_limit_max: Option<u64>,
    /// Its window, ms.
    pub rate_limit_duration_ms: Option<u64>,
}

/// Where a queue's policy comes from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicySource {
    /// `PUT /api/v1/autoscaler/queues/{queue}` or `drover autoscaler set`.
    Api,
    /// `[autoscaler.queue.<name>]` in the leader's config file.
    Config,
    /// `[autoscaler.default]` in the leader's config file.
    Default,
}

/// One queue as the leader saw it at its last tick.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// The queue.
    pub queue: String,
    /// Its policy as written, when it has one.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub policy: Option<PolicySpec>,
    /// Where the policy comes from.
    pub source: Option<PolicySource>,
    /// Who carries it out.
    pub actuator: Option<Actuator>,
    /// Workers wanted (none without a policy).
    pub desired: Option<u32>,
    /// Workers there are, as the actuator counts them.
    pub actual: u32,
    /// The last raw recommendation.
    pub recommended: Option<u32>,
    /// Why the desired count is what it is.
    pub reason: Option<String>,
    /// The signals read.
    pub signals: SignalsView,
    /// When, ms since the epoch.
    pub at_ms: u64,
}

/// Which way a decision went.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// More workers.
    Up,
    /// Fewer workers.
    Down,
}

impl Direction {
    /// `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// A change of a queue's desired worker count.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// The queue.
    pub queue: String,
    /// Desired count before.
    pub from: u32,
    /// Desired count after.
    pub to: u32,
    /// Up or down.
    pub direction: Direction,
    /// Why, for people.
    pub reason: String,
    /// The signals it was based on.
    pub signals: SignalsView,
    /// The leader's epoch.
    pub epoch: u64,
}

/// One control tick of one queue, for charts of desired vs actual.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySample {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Workers wanted.
    pub desired: u32,
    /// Workers there were.
    pub actual: u32,
    /// The raw recommendation.
    pub recommended: u32,
}

/// Who leads the autoscaler.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// The lease's epoch (fencing token): it grows with every takeover.
    pub epoch: u64,
    /// The holder: host, pid and a random part.
    pub holder: String,
    /// Since when it leads, ms since the epoch.
    pub since_ms: u64,
}

impl LeaderInfo {
    /// Parses a lease token, `<epoch>|<since ms>|<holder>`.
    pub(crate) fn parse(token: &str) -> Option<Self> {
        let mut parts = token.splitn(3, '|');
        Some(Self {
            epoch: parts.next()?.parse().ok()?,
            since_ms: parts.next()?.parse().ok()?,
            holder: parts.next()?.to_string(),
        })
    }
}

/// Everything `GET /api/v1/autoscaler` and `drover autoscaler` show.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerStatus {
    /// The leader, when one holds the lease.
    pub leader: Option<LeaderInfo>,
    /// Every queue the leader watched at its last tick.
    pub queues: Vec<QueueStatus>,
    /// Recent decisions, newest first.
    pub decisions: Vec<Decision>,
}
