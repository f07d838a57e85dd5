//! One module per page.

pub(crate) mod audit;
pub(crate) mod autoscaler;
pub(crate) mod confirm;
pub(crate) mod dag;
pub(crate) mod job;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod queue;
pub(crate) mod schedules;
pub(crate) mod workers;
pub(crate) mod workflows;
