//! `/schedules`: every job scheduler of every queue (Drover's and other
//! clients'), with its pattern or interval, time zone, owner and next
//! runs.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::html;
use queue_core::schedule::live::{self, Owner, ScheduleView};

use crate::Dashboard;
use crate::error::PageError;
use crate::format::{count, duration_ms, seg};
use crate::html::{Page, Section, page, when};
use crate::session::Viewer;

/// Next runs shown per schedule.
const NEXT_RUNS: usize = 3;

/// The schedules page.
pub(crate) async fn schedules(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let conn = dash.api.conn();
    let queues = dash.api.discovery().queues().await?;
    let lists = futures::future::try_join_all(queues.iter().map(|q| live::list(conn, q))).await?;
    let all: Vec<ScheduleView> = lists.into_iter().flatten().collect();
    let body = html! {
        h1 { "Schedules" }
        @if all.is_empty() {
            p.empty { "No schedules. Declare them in the config file (" code { "[[schedule]]" } "), with "
                code { "drover schedule set" } " or over the API; BullMQ job schedulers made by other clients show up here too." }
        } @else {
            div.table-wrap {
                table {
                    caption { (count(all.len() as u64)) " schedules, as BullMQ job schedulers in Redis" }
                    thead { tr {
                        th scope="col" { "Queue" } th scope="col" { "Id" } th scope="col" { "Job name" }
                        th scope="col" { "When" } th scope="col" { "Time zone" } th scope="col" .num { "Runs so far" }
                        th scope="col" { "Next runs" } th scope="col" { "Declared by" }
                    } }
                    tbody {
                        @for s in &all {
                            tr {
                                td { a href={ "/queues/" (seg(&s.queue)) } { (s.queue) } }
                                th scope="row" .mono { (s.id) }
                                td { (s.name) }
                                td.mono {
                                    @if let Some(p) = &s.pattern { (p) }
                                    @else if let Some(ms) = s.every { "every " (duration_ms(ms)) }
                                }
                                td { (s.tz.as_deref().unwrap_or(if s.pattern.is_some() { "UTC" } else { "—" })) }
                                td.num { (count(s.iterations)) @if let Some(l) = s.limit { " of " (count(l)) } }
                                td { ol.plain {
                                    @for t in s.upcoming_ms.iter().take(NEXT_RUNS) { li { (when(*t)) } }
                                    @if s.upcoming_ms.is_empty() { li.muted { "none" } }
                                } }
                                td { @match &s.owner {
                                    Some(Owner::Config) => "Drover: config file",
                                    Some(Owner::Api) => "Drover: API or CLI",
                                    None => span.muted { "another BullMQ client" },
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &viewer,
        &Page {
            title: "Schedules",
            section: Section::Schedules,
            live: None,
        },
        &body,
    ))
}
