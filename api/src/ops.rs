//! The admin actions on queues and jobs, each written to the audit log
//! with its outcome. The JSON routes and the dashboard's forms both call
//! these, so an action means the same and is recorded the same whichever
//! door it came through.

use std::time::Duration;

use queue_core::{JobState, QueueName, admin};
use serde_json::json;

use crate::audit::{self, Action};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// Pauses `queue`: workers stop taking its jobs.
pub async fn pause_queue(state: &ApiState, caller: &Caller, queue: &str) -> ApiResult<()> {
    let result = async { Ok(admin::pause(&state.conn, &QueueName::new(queue)?).await?) }.await;
    audit::record(state, caller, on_queue("pause", queue, json!({})), result).await
}

/// Resumes a paused `queue`.
pub async fn resume_queue(state: &ApiState, caller: &Caller, queue: &str) -> ApiResult<()> {
    let result = async { Ok(admin::resume(&state.conn, &QueueName::new(queue)?).await?) }.await;
    audit::record(state, caller, on_queue("resume", queue, json!({})), result).await
}

/// Removes every waiting and prioritized job (and delayed ones if
/// `delayed`); answers how many went.
pub async fn drain_queue(
    state: &ApiState,
    caller: &Caller,
    queue: &str,
    delayed: bool,
) -> ApiResult<u64> {
    let result =
        async { Ok(admin::drain(&state.conn, &QueueName::new(queue)?, delayed).await?) }.await;
    let params = json!({ "delayed": delayed });
    audit::record(state, caller, on_queue("drain", queue, params), result).await
}

/// Removes up to `limit` jobs of `job_state` (a state name) older than
/// `grace_ms`; answers how many went.
pub async fn clean_queue(
    state: &ApiState,
    caller: &Caller,
    queue: &str,
    job_state: &str,
    grace_ms: u64,
    limit: Option<u64>,
) -> ApiResult<u64> {
    let result = async {
        let parsed: JobState = job_state.parse().map_err(|e: queue_core::UnknownState| {
            ApiError::unprocessable("invalid_input", e.to_string())
        })?;
        Ok(admin::clean(
            &state.conn,
            &QueueName::new(queue)?,
            parsed,
            Duration::from_millis(grace_ms),
            limit,
        )
        .await?)
    }
    .await;
    let params = json!({ "state": job_state, "graceMs": grace_ms, "limit": limit });
    audit::record(state, caller, on_queue("clean", queue, params), result).await
}

/// Moves every failed job of `queue` back to waiting; answers how many.
pub async fn retry_failed(state: &ApiState, caller: &Caller, queue: &str) -> ApiResult<u64> {
    let result =
        async { Ok(admin::retry_all_failed(&state.conn, &QueueName::new(queue)?).await?) }.await;
    let action = on_queue("retry-failed", queue, json!({}));
    audit::record(state, caller, action, result).await
}

/// Moves every delayed job of `queue` to waiting now; answers how many.
pub async fn promote_delayed(state: &ApiState, caller: &Caller, queue: &str) -> ApiResult<u64> {
    let result =
        async { Ok(admin::promote_all_delayed(&state.conn, &QueueName::new(queue)?).await?) }.await;
    let action = on_queue("promote-delayed", queue, json!({}));
    audit::record(state, caller, action, result).await
}

/// Deletes `queue` and all its jobs (with active jobs only if `force`).
pub async fn obliterate_queue(
    state: &ApiState,
    caller: &Caller,
    queue: &str,
    force: bool,
) -> ApiResult<()> {
    let result = async {
        admin::obliterate(&state.conn, &QueueName::new(queue)?, force).await?;
        state.discovery.invalidate().await;
        Ok(())
    }
    .await;
    let action = on_queue("obliterate", queue, json!({ "force": force }));
    audit::record(state, caller, action, result).await
}

/// What can be done to one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// Move a failed job back to waiting.
    Retry,
    /// Move a delayed job to waiting now.
    Promote,
    /// Remove it (refused while a worker runs it).
    Remove,
}

impl JobAction {
    /// The action's name, as the audit log records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Promote => "promote",
            Self::Remove => "remove",
        }
    }
}

/// Applies `action` to the job `id` of `queue`.
pub async fn act_on_job(
    state: &ApiState,
    caller: &Caller,
    queue: &str,
    id: &str,
    action: JobAction,
) -> ApiResult<()> {
    let result = async {
        let q = QueueName::new(queue)?;
        match action {
            JobAction::Retry => admin::retry_job(&state.conn, &q, id).await?,
            JobAction::Promote => admin::promote_job(&state.conn, &q, id).await?,
            JobAction::Remove => admin::remove_job(&state.conn, &q, id).await?,
        }
        Ok(())
    };
    let result = result.await;
    let entry = Action {
        name: action.as_str(),
        queue,
        target: Some(id),
        params: json!({}),
    };
    audit::record(state, caller, entry, result).await
}

fn on_queue<'a>(name: &'static str, queue: &'a str, params: serde_json::Value) -> Action<'a> {
    Action {
        name,
        queue,
        target: None,
        params,
    }
}
