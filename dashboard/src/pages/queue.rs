//! `/queues/{queue}`: state tabs with counts, a page of jobs of one state
//! (newest first by default), per-job and bulk actions, queue actions
//! (each behind a confirmation naming how many jobs it touches), and
//! jumping to a job by id.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use queue_core::inspect::{self, HeadOfLine, JobPage, Order, QueueCounts};
use queue_core::{JobState, QueueName, admin};
use serde::Deserialize;

use crate::Dashboard;
use crate::config::PAGE_SIZES;
use crate::error::PageError;
use crate::format::{self, count, query_value, seg};
use crate::html::{Page, Section, csrf_field, page, when};
use crate::session::Viewer;

/// Which jobs the page lists.
#[derive(Debug, Clone, Deserialize, Default)]
pub(crate) struct ListQuery {
    state: Option<String>,
    page: Option<u64>,
    size: Option<u64>,
    order: Option<String>,
}

/// The checked form of [`ListQuery`].
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub(crate) state: JobState,
    pub(crate) page: u64,
    pub(crate) size: u64,
    pub(crate) order: Order,
}

impl Listing {
    pub(crate) fn from_query(q: &ListQuery, default_size: u64) -> Result<Self, PageError> {
        let state = match q.state.as_deref() {
            None | Some("") => JobState::Waiting,
            Some(s) => s
                .parse()
                .map_err(|e: queue_core::UnknownState| PageError::bad_request(e.to_string()))?,
        };
        let size = q.size.unwrap_or(default_size);
        if !PAGE_SIZES.contains(&size) {
            return Err(PageError::bad_request(format!(
                "size must be between {} and {}",
                PAGE_SIZES.start(),
                PAGE_SIZES.end()
            )));
        }
        let order = match q.order.as_deref() {
            None | Some("") | Some("newest") => Order::NewestFirst,
            Some("oldest") => Order::OldestFirst,
            Some(other) => {
                return Err(PageError::bad_request(format!(
                    "order must be newest or oldest, not {other:?}"
                )));
            }
        };
        Ok(Self {
            state,
            page: q.page.unwrap_or(1).max(1),
            size,
            order,
        })
    }

    /// The query string of this listing with page `page`.
    pub(crate) fn query(&self, page: u64) -> String {
        let order = match self.order {
            Order::NewestFirst => "newest",
            Order::OldestFirst => "oldest",
        };
        format!(
            "state={}&page={page}&size={}&order={order}",
            self.state, self.size
        )
    }
}

/// What the live parts of the queue page show.
#[derive(Debug)]
pub(crate) struct QueueView {
    pub(crate) name: QueueName,
    pub(crate) counts: QueueCounts,
    pub(crate) head: HeadOfLine,
    pub(crate) jobs: JobPage,
    pub(crate) listing: Listing,
}

impl QueueView {
    /// Reads it: the queue's counts and latency, and one page of
    /// summaries (no payloads).
    pub(crate) async fn read(
        dash: &Dashboard,
        name: QueueName,
        listing: Listing,
    ) -> Result<Self, PageError> {
        let conn = dash.api.conn();
        let offset = (listing.page - 1).saturating_mul(listing.size);
        let one = std::slice::from_ref(&name);
        let (counts, heads, jobs) = tokio::try_join!(
            inspect::queue_counts(conn, one),
            inspect::head_of_line(conn, one),
            inspect::list_job_summaries(
                conn,
                &name,
                listing.state,
                offset,
                listing.size,
                listing.order
            ),
        )?;
        Ok(Self {
            counts: counts
                .into_iter()
                .next()
                .map(|(_, c)| c)
                .unwrap_or_default(),
            head: heads.into_iter().next().unwrap_or_default(),
            jobs,
            name,
            listing,
        })
    }

    fn base(&self) -> String {
        format!("/queues/{}", seg(self.name.as_str()))
    }
}

/// The queue page.
pub(crate) async fn queue(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let name = QueueName::new(name)?;
    admin::ensure_queue_exists(dash.api.conn(), &name).await?;
    let listing = Listing::from_query(&q, dash.settings.page_size)?;
    let view = QueueView::read(&dash, name, listing).await?;
    let base = view.base();
    let live = format!("{base}?{}", view.listing.query(view.listing.page));
    let body = html! {
        h1 { "Queue " span.mono { (view.name.as_str()) } }
        div #live-queue-head { (head_region(&view)) }
        div.split {
            form.find method="get" action={ (base) "/find" } {
                label for="find-id" { "Jump to job id" }
                input #find-id name="id" required spellcheck="false";
                button type="submit" { "Open" }
            }
            @if viewer.can_act() { (queue_actions(&view)) }
        }
        div #live-job-list { (list_region(&viewer, &view)) }
    };
    Ok(page(
        &viewer,
        &Page {
            title: view.name.as_str(),
            section: Section::Overview,
            live: Some(live),
        },
        &body,
    ))
}

/// Tabs with counts, the paused flag and the latency.
pub(crate) fn head_region(view: &QueueView) -> Markup {
    let base = view.base();
    let c = &view.counts;
    html! {
        p.queue-status {
            @if c.paused { span.badge.paused { "paused" } " Workers take no jobs from this queue until it is resumed. " }
            @else { span.badge.running { "running" } " " }
            @match view.head.ready_since_ms {
                Some(since) => { "Oldest waiting job ready " span data-since=(format::iso(since)) { "since " (format::time(since)) } "." }
                None => "No job is waiting.",
            }
        }
        nav.tabs aria-label="Job states" {
            ul {
                @for state in JobState::ALL {
                    li {
                        a href={ (base) "?state=" (state) }
                            aria-current=[(state == view.listing.state).then_some("page")] {
                            (state) " " span.count { (count(c.get(state))) }
                        }
                    }
                }
            }
        }
    }
}

/// The page of jobs, with bulk actions and the pager.
pub(crate) fn list_region(viewer: &Viewer, view: &QueueView) -> Markup {
    let base = view.base();
    let listing = &view.listing;
    let page = &view.jobs;
    let state = listing.state;
    let bulk: &[(&str, &str)] = match state {
        JobState::Failed => &[("retry", "Retry selected"), ("remove", "Remove selected")],
        JobState::Delayed => &[
            ("promote", "Promote selected"),
            ("remove", "Remove selected"),
        ],
        JobState::Active => &[],
        _ => &[("remove", "Remove selected")],
    };
    let can_bulk = viewer.can_act() && !bulk.is_empty() && !page.jobs.is_empty();
    let first = page.offset + 1;
    let last = page.offset + page.jobs.len() as u64;
    let pages = page.total.div_ceil(listing.size).max(1);
    html! {
        form.bulk method="post" action={ (base) "/jobs" } {
            @if can_bulk {
                (csrf_field(viewer))
                input type="hidden" name="back" value={ (base) "?" (listing.query(listing.page)) };
                div.bulk-actions {
                    @for (action, label) in bulk {
                        button type="submit" name="action" value=(action)
                            data-confirm-selected={ (label) "?" } class=[(*action == "remove").then_some("danger")] { (label) }
                    }
                }
            }
            div.table-wrap {
                table.jobs {
                    caption {
                        @if page.jobs.is_empty() { "No " (state) " jobs" @if page.offset > 0 { " on this page" } "." }
                        @else {
                            (state) " jobs " (count(first)) "–" (count(last)) " of " (count(page.total))
                            @if listing.order == Order::NewestFirst { ", newest first" } @else { ", oldest first" }
                        }
                    }
                    thead { tr {
                        @if can_bulk { th scope="col" { input type="checkbox" data-select-all aria-label="Select every job on this page"; } }
                        th scope="col" { "Id" }
                        th scope="col" { "Name" }
                        th scope="col" { "Created" }
                        th scope="col" { (time_column(state)) }
                        th scope="col" .num { "Attempts" }
                        th scope="col" { "Progress" }
                        th scope="col" .num { "Data" }
                        @if state == JobState::Failed { th scope="col" { "Failed reason" } }
                    } }
                    tbody {
                        @for (i, job) in page.jobs.iter().enumerate() {
                            tr {
                                @if can_bulk {
                                    td { input type="checkbox" name="id" value=(job.id) aria-label={ "Select job " (job.id) }; }
                                }
                                td.mono { a href={ (base) "/jobs/" (seg(&job.id)) } { (job.id) } }
                                td { (job.name) }
                                td { @if let Some(t) = job.timestamp { (when(t)) } }
                                td { (state_time(state, job)) }
                                td.num { (job.attempts_made) " / " (job.max_attempts) }
                                td { @if let Some(p) = &job.progress { (progress(p)) } }
                                td.num { @if let Some(n) = page.data_bytes.get(i) { (format::bytes(*n)) } }
                                @if state == JobState::Failed {
                                    td.reason { @if let Some(r) = &job.failed_reason { (format::line(r, 120)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if page.total > listing.size {
            nav.pager aria-label="Pages" {
                @if listing.page > 1 {
                    a href={ (base) "?" (listing.query(1)) } { "« First" }
                    a href={ (base) "?" (listing.query(listing.page - 1)) } rel="prev" { "‹ Newer" }
                }
                span { "Page " (count(listing.page)) " of " (count(pages)) }
                @if listing.page < pages {
                    a href={ (base) "?" (listing.query(listing.page + 1)) } rel="next" { "Older ›" }
                    a href={ (base) "?" (listing.query(pages)) } { "Last »" }
                }
                form method="get" action=(base) {
                    input type="hidden" name="state" value=(state);
                    input type="hidden" name="size" value=(listing.size);
                    label for="goto-page" { "Go to page" }
                    input #goto-page type="number" name="page" min="1" max=(pages) value=(listing.page);
                    button type="submit" { "Go" }
                }
            }
        }
    }
}

fn time_column(state: JobState) -> &'static str {
    match state {
        JobState::Completed | JobState::Failed => "Finished",
        JobState::Active => "Started",
        JobState::Delayed => "Due",
        _ => "Started last",
    }
}

fn state_time(state: JobState, job: &queue_core::JobRecord) -> Markup {
    let t = match state {
        JobState::Completed | JobState::Failed => job.finished_on,
        JobState::Delayed => job.timestamp.map(|t| t + job.delay.unwrap_or(0)),
        _ => job.processed_on,
    };
    html! { @if let Some(t) = t { (when(t)) } }
}

fn progress(p: &serde_json::Value) -> Markup {
    match p.as_f64() {
        Some(n) if (0.0..=100.0).contains(&n) => html! {
            progress max="100" value=(n) { (n) "%" } " " (format!("{n:.0}%"))
        },
        _ => html! { span.mono { (format::line(&p.to_string(), 40)) } },
    }
}

/// The queue actions: each opens a confirmation page that names how many
/// jobs it touches.
fn queue_actions(view: &QueueView) -> Markup {
    let confirm = format!("{}/confirm", view.base());
    let c = &view.counts;
    html! {
        section.queue-actions aria-labelledby="queue-actions-title" {
            h2 #queue-actions-title { "Queue actions" }
            div.buttons {
                @if c.paused {
                    a.button href={ (confirm) "?action=resume" } { "Resume…" }
                } @else {
                    a.button href={ (confirm) "?action=pause" } { "Pause…" }
                }
                a.button href={ (confirm) "?action=retry-failed" } { "Retry all failed…" }
                a.button href={ (confirm) "?action=promote-delayed" } { "Promote all delayed…" }
                a.button.danger href={ (confirm) "?action=drain" } { "Drain…" }
            }
            form.clean method="get" action=(confirm) {
                input type="hidden" name="action" value="clean";
                label for="clean-state" { "Clean" }
                select #clean-state name="state" {
                    @for s in ["completed", "failed", "delayed", "waiting", "prioritized"] {
                        option value=(s) selected[s == "completed"] { (s) }
                    }
                }
                label for="clean-age" { "jobs older than" }
                select #clean-age name="age" {
                    @for (secs, label) in AGES {
                        option value=(secs) selected[*secs == 86_400] { (label) }
                    }
                }
                button.danger type="submit" { "Clean…" }
            }
        }
    }
}

/// Ages a clean offers, in seconds.
pub(crate) const AGES: &[(u64, &str)] = &[
    (0, "any age"),
    (60, "1 minute"),
    (3_600, "1 hour"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
];

/// Jump to a job by id.
#[derive(Debug, Deserialize)]
pub(crate) struct FindQuery {
    id: String,
}

/// `GET /queues/{queue}/find?id=…`: on to the job's page.
pub(crate) async fn find(
    _: Viewer,
    Path(name): Path<String>,
    Query(q): Query<FindQuery>,
) -> Result<Response, PageError> {
    let id = q.id.trim();
    if id.is_empty() {
        return Err(PageError::bad_request("give a job id to jump to"));
    }
    Ok(Redirect::to(&format!("/queues/{}/jobs/{}", seg(&name), seg(id))).into_response())
}

/// A link back to the queue page listing `state`.
pub(crate) fn state_link(queue: &str, state: JobState) -> String {
    format!(
        "/queues/{}?state={}",
        seg(queue),
        query_value(state.as_str())
    )
}
