//! The dashboard's actions: forms posted by admins, carried out by the
//! API's audited [`ops`], answered with a redirect to the page to look at
//! next and a one-shot message saying how it went.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use drover_api::ops::{self, JobAction};
use drover_api::{ApiResult, Caller};
use queue_core::inspect;
use queue_core::{JobState, QueueName};

use crate::Dashboard;
use crate::error::PageError;
use crate::format::{count, seg};
use crate::forms::{AdminPost, FormFields};
use crate::session::{FLASH_COOKIE, Flash, encode_flash, set_cookie};

/// Most jobs one bulk action takes (a page holds at most 500).
const MAX_BULK: usize = 1_000;

/// `POST /queues/{queue}/actions`: pause, resume, retry-failed,
/// promote-delayed, drain or clean.
pub(crate) async fn queue_action(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(queue): Path<String>,
    AdminPost { viewer, form }: AdminPost,
) -> Result<Response, PageError> {
    let name = QueueName::new(queue.as_str())?;
    let back = format!("/queues/{}", seg(&queue));
    let action = form.get("action").unwrap_or_default().to_string();
    let api = Arc::clone(&dash.api);
    let caller = viewer.caller.clone();
    let flash = match action.as_str() {
        "pause" => done(ops::pause_queue(&api, &caller, &queue).await, |()| {
            format!("Paused {queue}.")
        }),
        "resume" => done(ops::resume_queue(&api, &caller, &queue).await, |()| {
            format!("Resumed {queue}.")
        }),
        "retry-failed" | "promote-delayed" | "drain" | "clean" => {
            let job = BulkJob::from_form(&action, &form)?;
            let expected = job.expected(&dash, &name).await?;
            if expected > dash.settings.background_action_above {
                let what = job.describe(expected);
                tokio::spawn(async move {
                    let _ = job.run(&api, &caller, &queue).await;
                });
                Flash {
                    error: false,
                    text: format!(
                        "Started: {what}. It runs in the background in batches; the audit log records the outcome when it is done."
                    ),
                }
            } else {
                let result = job.run(&api, &caller, &queue).await;
                done(result, |n| job.finished(n))
            }
        }
        other => {
            return Err(PageError::bad_request(format!(
                "unknown queue action {other:?}"
            )));
        }
    };
    Ok(redirect_with(&dash, &headers, &back, &flash))
}

/// A queue action that may touch many jobs.
#[derive(Debug, Clone)]
enum BulkJob {
    RetryFailed,
    PromoteDelayed,
    Drain { delayed: bool },
    Clean { state: JobState, age_secs: u64 },
}

impl BulkJob {
    fn from_form(action: &str, form: &FormFields) -> Result<Self, PageError> {
        Ok(match action {
            "retry-failed" => Self::RetryFailed,
            "promote-delayed" => Self::PromoteDelayed,
            "drain" => Self::Drain {
                delayed: form.get("delayed") == Some("1"),
            },
            _ => {
                Self::Clean {
                    state: form.get("state").unwrap_or_default().parse().map_err(
                        |e: queue_core::UnknownState| PageError::bad_request(e.to_string()),
                    )?,
                    age_secs: form
                        .get("age")
                        .unwrap_or("0")
                        .parse()
                        .map_err(|_| PageError::bad_request("age must be a number of seconds"))?,
                }
            }
        })
    }

    /// How many jobs it is expected to touch (at most).
    async fn expected(&self, dash: &Dashboard, queue: &QueueName) -> Result<u64, PageError> {
        let conn = dash.api.conn();
        if let Self::Clean { state, age_secs } = self {
            let age = std::time::Duration::from_secs(*age_secs);
            return Ok(inspect::clean_estimate(conn, queue, *state, age)
                .await?
                .count);
        }
        let c = inspect::queue_counts(conn, std::slice::from_ref(queue))
            .await?
            .into_iter()
            .next()
            .map(|(_, c)| c)
            .unwrap_or_default();
        Ok(match self {
            Self::RetryFailed => c.failed,
            Self::PromoteDelayed => c.delayed,
            Self::Drain { delayed } => c.ready() + if *delayed { c.delayed } else { 0 },
            Self::Clean { .. } => 0,
        })
    }

    async fn run(
        &self,
        api: &drover_api::ApiState,
        caller: &Caller,
        queue: &str,
    ) -> ApiResult<u64> {
        match self {
            Self::RetryFailed => ops::retry_failed(api, caller, queue).await,
            Self::PromoteDelayed => ops::promote_delayed(api, caller, queue).await,
            Self::Drain { delayed } => ops::drain_queue(api, caller, queue, *delayed).await,
            Self::Clean { state, age_secs } => {
                let grace_ms = age_secs.saturating_mul(1_000);
                ops::clean_queue(api, caller, queue, state.as_str(), grace_ms, None).await
            }
        }
    }

    fn describe(&self, expected: u64) -> String {
        let n = count(expected);
        match self {
            Self::RetryFailed => format!("retrying {n} failed jobs"),
            Self::PromoteDelayed => format!("promoting {n} delayed jobs"),
            Self::Drain { .. } => format!("draining up to {n} jobs"),
            Self::Clean { state, .. } => format!("cleaning up to {n} {state} jobs"),
        }
    }

    fn finished(&self, n: u64) -> String {
        let n = count(n);
        match self {
            Self::RetryFailed => format!("Retried {n} failed jobs."),
            Self::PromoteDelayed => format!("Promoted {n} delayed jobs."),
            Self::Drain { .. } => format!("Drained: removed {n} jobs."),
            Self::Clean { state, .. } => format!("Cleaned: removed {n} {state} jobs."),
        }
    }
}

/// `POST /queues/{queue}/jobs`: retry, promote or remove the selected
/// jobs.
pub(crate) async fn bulk_action(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(queue): Path<String>,
    AdminPost { viewer, form }: AdminPost,
) -> Result<Response, PageError> {
    let action = job_action_name(form.get("action").unwrap_or_default())?;
    let ids = form.all("id");
    let back = match form.get("back") {
        Some(b) if b.starts_with("/queues/") && !b.contains("//") => b.to_string(),
        _ => format!("/queues/{}", seg(&queue)),
    };
    if ids.is_empty() {
        let flash = Flash {
            error: true,
            text: "No job was selected.".into(),
        };
        return Ok(redirect_with(&dash, &headers, &back, &flash));
    }
    if ids.len() > MAX_BULK {
        return Err(PageError::bad_request(format!(
            "select at most {MAX_BULK} jobs at once"
        )));
    }
    let mut failures = Vec::new();
    for id in &ids {
        if let Err(e) = ops::act_on_job(&dash.api, &viewer.caller, &queue, id, action).await {
            failures.push(format!("{id}: {}", e.message()));
        }
    }
    let verb = past_tense(action);
    let ok = ids.len() - failures.len();
    let flash = if failures.is_empty() {
        Flash {
            error: false,
            text: format!("{verb} {} jobs.", count(ok as u64)),
        }
    } else {
        let shown: Vec<_> = failures.iter().take(5).cloned().collect();
        Flash {
            error: true,
            text: format!(
                "{verb} {} of {} jobs; {} could not be: {}{}",
                count(ok as u64),
                count(ids.len() as u64),
                failures.len(),
                shown.join("; "),
                if failures.len() > shown.len() {
                    "; …"
                } else {
                    ""
                }
            ),
        }
    };
    Ok(redirect_with(&dash, &headers, &back, &flash))
}

/// `POST /queues/{queue}/jobs/{id}/{action}`: retry, promote or remove
/// one job.
pub(crate) async fn job_action(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path((queue, id, action)): Path<(String, String, String)>,
    AdminPost { viewer, .. }: AdminPost,
) -> Result<Response, PageError> {
    let action = job_action_name(&action)?;
    let result = ops::act_on_job(&dash.api, &viewer.caller, &queue, &id, action).await;
    let job_page = format!("/queues/{}/jobs/{}", seg(&queue), seg(&id));
    let (to, flash) = match (&result, action) {
        (Ok(()), JobAction::Remove) => (
            format!("/queues/{}", seg(&queue)),
            Flash {
                error: false,
                text: format!("Removed job {id}."),
            },
        ),
        _ => (
            job_page,
            done(result, |()| format!("{} job {id}.", past_tense(action))),
        ),
    };
    Ok(redirect_with(&dash, &headers, &to, &flash))
}

fn job_action_name(name: &str) -> Result<JobAction, PageError> {
    match name {
        "retry" => Ok(JobAction::Retry),
        "promote" => Ok(JobAction::Promote),
        "remove" => Ok(JobAction::Remove),
        other => Err(PageError::bad_request(format!(
            "unknown job action {other:?}; use retry, promote or remove"
        ))),
    }
}

fn past_tense(action: JobAction) -> &'static str {
    match action {
        JobAction::Retry => "Retried",
        JobAction::Promote => "Promoted",
        JobAction::Remove => "Removed",
    }
}

/// A flash saying how an action went.
fn done<T>(result: ApiResult<T>, ok: impl FnOnce(T) -> String) -> Flash {
    match result {
        Ok(v) => Flash {
            error: false,
            text: ok(v),
        },
        Err(e) => Flash {
            error: true,
            text: format!("Not done: {}", e.message()),
        },
    }
}

fn redirect_with(dash: &Dashboard, headers: &HeaderMap, to: &str, flash: &Flash) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Some(v) = set_cookie(dash, headers, FLASH_COOKIE, &encode_flash(flash), 60) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
