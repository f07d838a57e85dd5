//! `/audit`: the audit log, newest first: who did what to which queue or
//! job, when, with which parameters, and how it ended. Admins only, as in
//! the API.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use crate::Dashboard;
use crate::error::PageError;
use crate::format::seg;
use crate::html::{Page, Section, page, when};
use crate::session::Viewer;

/// Entries per page.
const PAGE: u32 = 100;

/// Which page of the log.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    before: Option<i64>,
}

/// The audit log page.
pub(crate) async fn audit(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let entries = dash.api.store().list_audit(PAGE, q.before).await?;
    let body = html! {
        h1 { "Audit log" }
        @if entries.is_empty() { p.empty { "Nothing recorded yet." } }
        @else {
            div.table-wrap {
                table {
                    caption { "Actions, newest first" }
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" }
                        th scope="col" { "Queue" } th scope="col" { "Target" } th scope="col" { "Parameters" } th scope="col" { "Outcome" }
                    } }
                    tbody {
                        @for e in &entries {
                            tr {
                                td { (when(e.at_ms)) }
                                td { (e.actor) }
                                th scope="row" { (e.action) }
                                td { @if let Some(queue) = &e.queue { a href={ "/queues/" (seg(queue)) } { (queue) } } }
                                td.mono { @if let (Some(queue), Some(t)) = (&e.queue, &e.target) {
                                    a href={ "/queues/" (seg(queue)) "/jobs/" (seg(t)) } { (t) }
                                } @else if let Some(t) = &e.target { (t) } }
                                td.mono { @if e.params.as_object().is_some_and(|o| !o.is_empty()) { (e.params.to_string()) } }
                                td { span class={ "outcome " @if e.outcome == "ok" { "ok" } @else { "bad" } } { (e.outcome) } }
                            }
                        }
                    }
                }
            }
            @if entries.len() as u32 == PAGE {
                @if let Some(last) = entries.last() {
                    p { a href={ "/audit?before=" (last.id) } rel="next" { "Older entries ›" } }
                }
            }
        }
    };
    Ok(page(
        &viewer,
        &Page {
            title: "Audit log",
            section: Section::Audit,
            live: None,
        },
        &body,
    ))
}
