//! `/workers`: live Drover workers from their heartbeats (host, pid,
//! queues, concurrency, jobs in flight, last heartbeat), and every other
//! BullMQ worker connected (Node, Python, ...), from `CLIENT LIST`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use queue_core::registry::{self, BullmqWorkerClient, WorkerInfo};

use crate::Dashboard;
use crate::error::PageError;
use crate::format::{count, duration_ms, seg};
use crate::html::{Page, Section, page, when};
use crate::session::Viewer;

/// Who is working now.
#[derive(Debug)]
pub(crate) struct WorkersView {
    drover: Vec<WorkerInfo>,
    others: Vec<BullmqWorkerClient>,
}

impl WorkersView {
    pub(crate) async fn read(dash: &Dashboard) -> Result<Self, PageError> {
        let conn = dash.api.conn();
        let (drover, clients) = tokio::try_join!(
            registry::live_workers(conn, registry::LIVE_WITHIN, registry::FORGET_AFTER),
            registry::bullmq_worker_clients(conn),
        )?;
        // Drover's own engine connections are in CLIENT LIST too: list only
        // the other clients' workers there.
        let others = clients.into_iter().filter(|c| !c.is_drover()).collect();
        Ok(Self { drover, others })
    }
}

/// The workers page.
pub(crate) async fn workers(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let view = WorkersView::read(&dash).await?;
    let body = html! {
        h1 { "Workers" }
        div #live-workers { (region(&view)) }
    };
    Ok(page(
        &viewer,
        &Page {
            title: "Workers",
            section: Section::Workers,
            live: Some("/workers".into()),
        },
        &body,
    ))
}

/// The part of the page that updates live.
pub(crate) fn region(view: &WorkersView) -> Markup {
    let slots: usize = view
        .drover
        .iter()
        .flat_map(|w| &w.queues)
        .map(|q| q.concurrency)
        .sum();
    let busy: usize = view
        .drover
        .iter()
        .flat_map(|w| &w.queues)
        .map(|q| q.in_flight)
        .sum();
    html! {
        p { (count(view.drover.len() as u64)) " Drover worker processes, running "
            (count(busy as u64)) " jobs in " (count(slots as u64)) " slots." }
        @if view.drover.is_empty() {
            p.empty { "No Drover worker has sent a heartbeat in the last "
                (duration_ms(registry::LIVE_WITHIN.as_millis() as u64)) ". Start one with "
                code { "drover worker --queue default" } "." }
        } @else {
            div.table-wrap {
                table {
                    caption { "Drover workers" }
                    thead { tr {
                        th scope="col" { "Host" } th scope="col" .num { "Pid" }
                        th scope="col" { "Queues: jobs in flight / concurrency" }
                        th scope="col" { "Version" } th scope="col" { "Started" } th scope="col" { "Last heartbeat" }
                    } }
                    tbody {
                        @for w in &view.drover {
                            tr {
                                th scope="row" { (w.host) }
                                td.num { (w.pid) }
                                td { ul.inline {
                                    @for q in &w.queues {
                                        li { a href={ "/queues/" (seg(&q.queue)) } { (q.queue) } ": "
                                            (q.in_flight) " / " (q.concurrency) }
                                    }
                                } }
                                td { (w.version) }
                                td { (when(w.started_at_ms)) }
                                td { (when(w.heartbeat_at_ms)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Other BullMQ workers" }
        @if view.others.is_empty() {
            p.muted { "No other BullMQ worker is connected (or the server does not allow CLIENT LIST)." }
        } @else {
            div.table-wrap {
                table {
                    caption { "BullMQ worker connections from other clients (Node, Python, ...)" }
                    thead { tr { th scope="col" { "Queue" } th scope="col" { "Worker name" } th scope="col" { "Address" } th scope="col" { "Connected for" } } }
                    tbody {
                        @for c in &view.others {
                            tr {
                                th scope="row" { a href={ "/queues/" (seg(&c.queue)) } { (c.queue) } }
                                td { (c.name.as_deref().unwrap_or("—")) }
                                td.mono { (c.addr) }
                                td { (duration_ms(c.age_secs.saturating_mul(1_000))) }
                            }
                        }
                    }
                }
            }
        }
    }
}
