//! Schedules: periodic jobs kept as BullMQ job schedulers.
//!
//! A schedule is declared (config file, API, CLI) as a [`ScheduleSpec`]
//! and checked into a [`Schedule`]; [`live`] makes BullMQ hold it through
//! bullmq-official's `upsertJobScheduler`, so Node's `getJobSchedulers()`
//! lists Drover's schedules and Drover lists Node's. BullMQ's workers make
//! each run when the previous one is taken, so there is no ticking process
//! and no tick can fire twice (a run's job id is `repeat:<id>:<ms>`).
//!
//! Drover adds ownership (a record of the schedulers it made, so a
//! reconciler restores and prunes only its own), a lease for writers to
//! take turns, the missed-tick policy, and next-run times computed as
//! BullMQ computes them ([`time`]).

mod declare;
pub mod live;
mod spec;
pub mod time;

pub use declare::{declare, withdraw};
pub use live::{Missed, Owner, OwnerRecord, ScheduleLock, ScheduleView};
pub use spec::{
    MAX_SCHEDULE_ID_BYTES, MAX_TEMPLATE_DATA_BYTES, MissedTicks, Schedule, ScheduleSpec,
    validate_schedule_id,
};
