//! `/queues/{queue}/jobs/{id}`: one job in full: state, attempts,
//! timeline, failure and stack traces, progress, logs, return value, data
//! and options (large ones cut, with a link to all of it), and its
//! actions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use queue_core::inspect::{self, JobDetail};
use queue_core::{JobState, QueueName};
use serde_json::Value;

use crate::Dashboard;
use crate::error::PageError;
use crate::format::{self, count, seg};
use crate::html::{Page, Section, csrf_field, page, state_badge, when};
use crate::pages::queue::state_link;
use crate::session::Viewer;

/// JSON longer than this is cut on the page (with a link to all of it).
const JSON_LIMIT: usize = 64 * 1024;

/// The job page.
pub(crate) async fn job(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let queue = QueueName::new(name)?;
    let detail = inspect::job_detail(dash.api.conn(), &queue, &id).await?;
    let base = job_path(queue.as_str(), &id);
    let body = html! {
        p.crumbs {
            a href="/" { "Overview" } " › "
            a href={ "/queues/" (seg(queue.as_str())) } { (queue.as_str()) } " › job"
        }
        h1 { "Job " span.mono { (id) } " " span.muted { (detail.record.name) } }
        div #live-job { (region(&viewer, queue.as_str(), &detail)) }
        section aria-labelledby="data-title" {
            h2 #data-title { "Data" }
            (json_block(&detail.record.data, &format!("{base}/raw/data"), "data"))
            @if !detail.record.malformed.is_empty() {
                p.flash.error role="note" { "Fields that are not valid JSON, shown as stored: "
                    (detail.record.malformed.join(", ")) }
            }
        }
        section aria-labelledby="opts-title" {
            h2 #opts-title { "Options" }
            (json_block(&detail.record.opts, &format!("{base}/raw/opts"), "options"))
        }
    };
    Ok(page(
        &viewer,
        &Page {
            title: &format!("Job {id}"),
            section: Section::Overview,
            live: Some(base),
        },
        &body,
    ))
}

fn job_path(queue: &str, id: &str) -> String {
    format!("/queues/{}/jobs/{}", seg(queue), seg(id))
}

/// The part of the job page that updates live.
pub(crate) fn region(viewer: &Viewer, queue: &str, detail: &JobDetail) -> Markup {
    let job = &detail.record;
    let base = job_path(queue, &job.id);
    let state = detail.state;
    let ready = job.timestamp.map(|t| t + job.delay.unwrap_or(0));
    html! {
        div.job-head {
            @match state {
                Some(s) => a href=(state_link(queue, s)) { (state_badge(s.as_str())) },
                None => (state_badge("unknown")),
            }
            @if viewer.can_act() { (actions(viewer, &base, state)) }
        }
        dl.facts {
            dt { "Attempts" } dd { (job.attempts_made) " finished, " (job.attempts_started) " started, of " (job.max_attempts) }
            @if job.stalled_count > 0 { dt { "Stalled" } dd { (job.stalled_count) " times (its worker stopped renewing the lock)" } }
            dt { "Progress" } dd { @match &job.progress {
                Some(p) => (progress(p)),
                None => span.muted { "none reported" },
            } }
            @if let Some(p) = job.priority.filter(|p| *p > 0) { dt { "Priority" } dd { (p) } }
            @if let Some(w) = &job.processed_by { dt { "Processed by" } dd.mono { (w) } }
            @if let Some(s) = &job.scheduler_id { dt { "Schedule" } dd.mono { (s) } }
            @if let Some(p) = &job.parent_key { dt { "Parent" } dd.mono { (p) } }
            @if let Some(d) = &job.deduplication_id { dt { "Deduplication id" } dd.mono { (d) } }
        }
        h2 { "Timeline" }
        ol.timeline {
            @if let Some(t) = job.timestamp { li { "Created " (when(t)) } }
            @if let (Some(r), Some(d)) = (ready, job.delay.filter(|d| *d > 0)) { li { "Due " (when(r)) " (delayed " (format::duration_ms(d)) ")" } }
            @if let Some(t) = job.processed_on {
                li { "Last attempt started " (when(t))
                    @if let Some(r) = ready { @if t >= r { ", " (format::duration_ms(t - r)) " after it was due" } } }
            }
            @if let Some(t) = job.finished_on {
                li { "Finished " (when(t))
                    @if let Some(p) = job.processed_on { @if t >= p { " after running " (format::duration_ms(t - p)) } } }
            }
        }
        @if let Some(reason) = &job.failed_reason {
            h2 { "Failure" }
            pre.error { (format::cut(reason.clone(), JSON_LIMIT).0) }
            @if !job.stacktrace.is_empty() {
                @for (i, stack) in job.stacktrace.iter().enumerate().rev() {
                    details open[i + 1 == job.stacktrace.len()] {
                        summary { "Stack trace of attempt " (i + 1) }
                        pre { (format::cut(stack.clone(), JSON_LIMIT).0) }
                    }
                }
            }
        }
        @if let Some(value) = &job.returnvalue {
            h2 { "Return value" }
            (json_block(value, &format!("{base}/raw/returnvalue"), "return value"))
        }
        h2 { "Logs" }
        @if detail.logs.is_empty() { p.muted { "No log lines." } }
        @else {
            @if detail.logs_total > detail.logs.len() as u64 {
                p.note { "The newest " (count(detail.logs.len() as u64)) " of " (count(detail.logs_total)) " lines." }
            }
            pre.logs { @for line in &detail.logs { (line) "\n" } }
        }
    }
}

fn actions(viewer: &Viewer, base: &str, state: Option<JobState>) -> Markup {
    let mut buttons: Vec<(&str, &str)> = Vec::new();
    match state {
        Some(JobState::Failed) => buttons.push(("retry", "Retry")),
        Some(JobState::Delayed) => buttons.push(("promote", "Promote")),
        _ => {}
    }
    if state != Some(JobState::Active) {
        buttons.push(("remove", "Remove"));
    }
    html! {
        div.buttons {
            @for (action, label) in buttons {
                form method="post" action={ (base) "/" (action) } {
                    (csrf_field(viewer))
                    button type="submit" class=[(action == "remove").then_some("danger")]
                        data-confirm=[(action == "remove").then_some("Remove this job for good?")] { (label) }
                }
            }
        }
    }
}

fn progress(p: &Value) -> Markup {
    match p.as_f64() {
        Some(n) if (0.0..=100.0).contains(&n) => html! {
            progress max="100" value=(n) { (n) "%" } " " (format!("{n:.0}%"))
        },
        _ => html! { pre { (format::json_cut(p, 4_096).0) } },
    }
}

/// Pretty JSON, cut at [`JSON_LIMIT`] with a link to the whole of it.
fn json_block(value: &Value, raw_href: &str, what: &str) -> Markup {
    let (text, cut) = format::json_cut(value, JSON_LIMIT);
    html! {
        pre.json { (text) }
        @if cut {
            p.note { "The " (what) " is longer than " (format::bytes(JSON_LIMIT as u64)) "; this is its beginning. "
                a href=(raw_href) { "Show all of it" } }
        }
    }
}

/// `GET …/raw/{field}`: one field of the job, whole, as JSON (a browser
/// shows it as text).
pub(crate) async fn raw(
    State(dash): State<Arc<Dashboard>>,
    _: Viewer,
    Path((name, id, field)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let queue = QueueName::new(name)?;
    let detail = inspect::job_detail(dash.api.conn(), &queue, &id).await?;
    let record = detail.record;
    let value = match field.as_str() {
        "data" => record.data,
        "opts" => record.opts,
        "returnvalue" => record.returnvalue.unwrap_or(Value::Null),
        "stacktrace" => Value::from(record.stacktrace),
        other => {
            return Err(PageError::not_found(format!(
                "a job has no field {other:?} to show; use data, opts, returnvalue or stacktrace"
            )));
        }
    };
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    Ok((
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response())
}
