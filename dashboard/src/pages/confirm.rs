//! `/queues/{queue}/confirm?action=…`: what a queue action would do, with
//! the number of jobs it touches, and the button that does it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use queue_core::inspect::{self, CleanEstimate};
use queue_core::{JobState, QueueName, admin};
use serde::Deserialize;

use crate::Dashboard;
use crate::error::PageError;
use crate::format::{count, duration_ms, seg};
use crate::html::{Page, Section, csrf_field, page};
use crate::pages::queue::AGES;
use crate::session::Viewer;

/// The action asked about.
#[derive(Debug, Deserialize)]
pub(crate) struct ConfirmQuery {
    action: String,
    state: Option<String>,
    age: Option<u64>,
}

/// The confirmation page.
pub(crate) async fn confirm(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<ConfirmQuery>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let queue = QueueName::new(name)?;
    admin::ensure_queue_exists(dash.api.conn(), &queue).await?;
    let conn = dash.api.conn();
    let counts = inspect::queue_counts(conn, std::slice::from_ref(&queue))
        .await?
        .into_iter()
        .next()
        .map(|(_, c)| c)
        .unwrap_or_default();
    let q_name = queue.as_str();
    let (title, question, fields): (String, Markup, Markup) = match q.action.as_str() {
        "pause" => (
            format!("Pause {q_name}?"),
            html! { p { "Workers stop taking jobs from this queue. "
            strong { (count(counts.ready())) " waiting jobs" } " stay queued until you resume it; "
            (count(counts.active)) " active jobs finish." } },
            html! {},
        ),
        "resume" => (
            format!("Resume {q_name}?"),
            html! { p { "Workers take jobs from this queue again: " strong { (count(counts.ready())) " waiting jobs" } " become runnable." } },
            html! {},
        ),
        "retry-failed" => (
            format!("Retry every failed job of {q_name}?"),
            html! { p { strong { (count(counts.failed)) " failed jobs" } " move back to waiting and run again." } },
            html! {},
        ),
        "promote-delayed" => (
            format!("Promote every delayed job of {q_name}?"),
            html! { p { strong { (count(counts.delayed)) " delayed jobs" } " move to waiting and run now, whatever their due time." } },
            html! {},
        ),
        "drain" => (
            format!("Drain {q_name}?"),
            html! {
                p { "Removes " strong { (count(counts.ready())) " waiting and prioritized jobs" } " for good. "
                    "Active, completed and failed jobs stay, and so do the pending runs of schedules." }
                p { "Tick the box to remove the " strong { (count(counts.delayed)) " delayed jobs" } " too." }
            },
            html! {
                p { input #drain-delayed type="checkbox" name="delayed" value="1";
                    " " label for="drain-delayed" { "Also remove the " (count(counts.delayed)) " delayed jobs" } }
            },
        ),
        "clean" => {
            let state: JobState = q
                .state
                .as_deref()
                .unwrap_or("completed")
                .parse()
                .map_err(|e: queue_core::UnknownState| PageError::bad_request(e.to_string()))?;
            let age = q.age.unwrap_or(0);
            let age_label = AGES.iter().find(|(secs, _)| *secs == age).map_or_else(
                || duration_ms(age.saturating_mul(1_000)),
                |(_, l)| (*l).to_string(),
            );
            let CleanEstimate { count: n, exact } =
                inspect::clean_estimate(conn, &queue, state, Duration::from_secs(age)).await?;
            (
                format!("Clean {state} jobs of {q_name}?"),
                html! {
                    p { "Removes " strong { @if !exact { "up to " } (count(n)) " " (state) " jobs" }
                        @if age > 0 { " older than " (age_label) } " for good." }
                    @if !exact { p.note { (state) " jobs are not kept in order of age, so this is every " (state)
                        " job; the clean itself checks each one's age, and keeps pending schedule runs." } }
                },
                html! {
                    input type="hidden" name="state" value=(state);
                    input type="hidden" name="age" value=(age);
                },
            )
        }
        other => {
            return Err(PageError::bad_request(format!(
                "unknown queue action {other:?}; use pause, resume, retry-failed, promote-delayed, drain or clean"
            )));
        }
    };
    let back = format!("/queues/{}", seg(q_name));
    let body = html! {
        h1 { (title) }
        (question)
        form.confirm method="post" action={ (back) "/actions" } {
            (csrf_field(&viewer))
            input type="hidden" name="action" value=(q.action);
            (fields)
            div.buttons {
                button.danger[matches!(q.action.as_str(), "drain" | "clean")] type="submit" { "Yes, " (q.action.replace('-', " ")) }
                a.button.secondary href=(back) { "Cancel" }
            }
        }
    };
    Ok(page(
        &viewer,
        &Page {
            title: &title,
            section: Section::Overview,
            live: None,
        },
        &body,
    ))
}
