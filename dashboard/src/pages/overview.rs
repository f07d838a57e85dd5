//! `/`: every queue (whoever wrote it) with its counts, paused flag,
//! latency and the last hour's throughput and failure rate; totals; Redis
//! memory and clients.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use crate::Dashboard;
use crate::charts::sparkline;
use crate::error::PageError;
use crate::format::{self, count, seg};
use crate::html::{Page, Section, page, when};
use crate::session::Viewer;
use crate::snapshot::{HISTORY_MINUTES, Snapshot};

/// The overview page.
pub(crate) async fn overview(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let snap = dash.snapshot().await?;
    let body = html! {
        h1 { "Overview" }
        div #live-overview { (region(&snap)) }
    };
    Ok(page(
        &viewer,
        &Page {
            title: "Overview",
            section: Section::Overview,
            live: Some("/".into()),
        },
        &body,
    ))
}

/// The part of the overview that updates live.
pub(crate) fn region(snap: &Snapshot) -> Markup {
    let totals = snap.totals();
    let paused = snap.queues.iter().filter(|q| q.counts.paused).count();
    html! {
        section.cards aria-label="Totals" {
            (card("Queues", &count(snap.queues.len() as u64), (paused > 0).then(|| format!("{paused} paused"))))
            (card("Waiting", &count(totals.ready()), (totals.prioritized > 0).then(|| format!("{} prioritized", count(totals.prioritized)))))
            (card("Active", &count(totals.active), None))
            (card("Delayed", &count(totals.delayed), None))
            (card("Failed", &count(totals.failed), None))
            (card("Completed", &count(totals.completed), None))
            @if let Some(server) = &snap.server {
                (card("Redis memory", &format::bytes(server.used_memory_bytes),
                    Some(if server.maxmemory_bytes > 0 {
                        format!("of {} ({})", format::bytes(server.maxmemory_bytes), server.maxmemory_policy)
                    } else {
                        "no maxmemory limit".to_string()
                    })))
                (card("Redis clients", &count(server.connected_clients),
                    Some(format!("Redis {}{}", server.version,
                        if server.nodes > 1 { format!(", {} primaries", server.nodes) } else { String::new() }))))
            }
        }
        @if snap.queues.is_empty() {
            p.empty { "No queues yet. Any BullMQ client's queue shows up here once it holds a job; "
                "try " code { "drover enqueue default hello" } "." }
        } @else {
            div.table-wrap {
                table.queues {
                    caption { "Queues, with the last " (HISTORY_MINUTES) " minutes of throughput" }
                    thead { tr {
                        th scope="col" { "Queue" }
                        th scope="col" .num { "Waiting" }
                        th scope="col" .num { "Active" }
                        th scope="col" .num { "Delayed" }
                        th scope="col" .num { "Failed" }
                        th scope="col" .num { "Completed" }
                        th scope="col" { "Oldest waiting" }
                        th scope="col" { "Completed / failed per min" }
                        th scope="col" .num { "Failure rate" }
                    } }
                    tbody {
                        @for q in &snap.queues {
                            @let c = &q.counts;
                            tr {
                                th scope="row" {
                                    a href={ "/queues/" (seg(q.name.as_str())) } { (q.name.as_str()) }
                                    @if c.paused { " " span.badge.paused { "paused" } }
                                }
                                td.num { (count(c.ready())) }
                                td.num { (count(c.active)) }
                                td.num { (count(c.delayed)) }
                                td.num.failed[c.failed > 0] { (count(c.failed)) }
                                td.num { (count(c.completed)) }
                                td {
                                    @match q.head.ready_since_ms {
                                        Some(since) => span data-since=(format::iso(since)) title=(format::time(since)) {
                                            "since " (format::time(since))
                                        },
                                        None => span.muted { "none waiting" },
                                    }
                                }
                                td { (throughput_cell(q)) }
                                td.num {
                                    @match q.throughput.as_ref().and_then(|t| t.failure_rate()) {
                                        Some(rate) => span.failed[rate > 0.0] { (format::percent(rate)) },
                                        None => span.muted { "—" },
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.note { "As of " (when(snap.at_ms)) ". Throughput comes from BullMQ's metrics where the queue's workers record them "
                "(Drover's do), otherwise from the finished jobs the queue still keeps." }
        }
    }
}

fn throughput_cell(q: &crate::snapshot::QueueLine) -> Markup {
    match &q.throughput {
        None => html! { span.muted { "—" } },
        Some(t) => {
            let done = t.completed.total();
            let source = match t.completed.source {
                queue_core::inspect::SeriesSource::Metrics => "from BullMQ metrics",
                queue_core::inspect::SeriesSource::RetainedJobs => "from kept jobs",
            };
            let label = format!(
                "{} completed and {} failed in the last {HISTORY_MINUTES} minutes ({source})",
                count(done),
                count(t.failed.total())
            );
            let failed_label = format!(
                "{} failed per minute over the last {HISTORY_MINUTES} minutes",
                count(t.failed.total())
            );
            html! {
                span.spark-cell {
                    span.sparks {
                        (sparkline(&t.completed.counts, &label, "ok"))
                        (sparkline(&t.failed.counts, &failed_label, "bad"))
                    }
                    span.num { (count(done)) " / " span.failed[t.failed.total() > 0] { (count(t.failed.total())) } }
                }
            }
        }
    }
}

fn card(label: &str, value: &str, note: Option<String>) -> Markup {
    html! {
        div.card {
            div.card-label { (label) }
            div.card-value { (value) }
            @if let Some(note) = note { div.card-note { (note) } }
        }
    }
}
