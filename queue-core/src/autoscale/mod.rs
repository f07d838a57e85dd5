//! The autoscaler's shared parts: policies ([`PolicySpec`] → [`Policy`]),
//! the signals read from a queue ([`read_samples`]), rates
//! ([`RateWindow`]), the pure recommendation ([`recommend()`]) and HPA
//! behaviour ([`Behavior`]), the leader lease with fencing ([`Lease`],
//! [`publish`]), and what is published for actuators, the API, the CLI
//! and the dashboard ([`DesiredState`], [`AutoscalerStatus`],
//! [`recent_decisions`], [`worker_history`]).
//!
//! The control loop itself lives in the scheduler crate; the actuators in
//! the worker crate (concurrency, process) and the scheduler crate
//! (Kubernetes). Every key is under `drover:<prefix>:{autoscale}:`.

mod assign;
mod behavior;
mod lease;
mod policy;
mod rates;
mod read;
mod recommend;
mod record;
mod rules;
mod signals;
mod supervisors;

pub use assign::share;
pub use behavior::{Behavior, Outcome};
pub use lease::{Lease, Retention, Tick, publish};
pub use policy::{Actuator, MAX_WORKERS, Policy, PolicySpec};
pub use rates::{RateWindow, Rates};
pub use read::{
    MAX_DECISIONS, MAX_HISTORY, api_policies, api_policy, desired_states, leader, put_policy,
    queue_status, queue_statuses, recent_decisions, remove_policy, status, worker_history,
};
pub use recommend::{Recommendation, recommend};
pub use record::{
    AutoscalerStatus, Decision, DesiredState, Direction, HistorySample, LeaderInfo, PolicySource,
    QueueStatus, SignalsView,
};
pub use rules::{MAX_WINDOW_SECS, Rules, RulesSpec, Select, StepKind, StepPolicy};
pub use signals::{QueueSample, read_samples};
pub use supervisors::{
    SupervisedQueue, SupervisorInfo, deregister_supervisor, live_supervisors, supervisor_heartbeat,
};
