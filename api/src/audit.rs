//! The audit log of admin actions: who did what to which queue or job,
//! when, and how it went, written to the store after the action.

use queue_core::now_ms;
use queue_core::store::AuditEntry;
use serde_json::Value;
use tracing::warn;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::ApiState;

/// What an admin action was about.
#[derive(Debug)]
pub(crate) struct Action<'a> {
    pub(crate) name: &'static str,
    /// The queue acted on; empty for actions on no one queue (workflows).
    pub(crate) queue: &'a str,
    pub(crate) target: Option<&'a str>,
    pub(crate) params: Value,
}

/// Records `action` with its outcome (`ok` or the error's code) and passes
/// the result through. An audit write that fails is logged and counted; the
/// action itself already happened, so its answer is still returned.
pub(crate) async fn record<T>(
    state: &ApiState,
    caller: &Caller,
    action: Action<'_>,
    result: ApiResult<T>,
) -> ApiResult<T> {
    let outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code().to_string(),
    };
    let entry = AuditEntry {
        at_ms: now_ms(),
        actor: caller.name.clone(),
        action: action.name.to_string(),
        queue: Some(action.queue.to_string()).filter(|q| !q.is_empty()),
        target: action.target.map(str::to_string),
        params: action.params,
        outcome,
    };
    if let Err(e) = state.store.record_audit(&entry).await {
        state.metrics.count_error("audit");
        warn!(error = %e, action = entry.action, queue = ?entry.queue, "cannot write the audit log");
    }
    result
}
