//! Workflows: DAGs of steps, each step a BullMQ job on some queue.
//!
//! A [`WorkflowDefinition`] (JSON or TOML) is checked into a [`Workflow`]:
//! unique step ids, known dependencies, no cycle, input templates
//! ([`template`]) that read only the run input and upstream outputs. The
//! orchestrator (in the `scheduler` crate) runs them; their state lives in
//! the durable store.

mod definition;
pub mod engine;
pub mod template;

pub use definition::{
    MAX_FAN_OUT, MAX_ID_BYTES, MAX_STEPS, StepDefinition, Workflow, WorkflowDefinition, validate_id,
};
pub use engine::{StepRef, TickReport, WORKFLOW_FIELD, load_checkpoint, save_checkpoint, tick};
