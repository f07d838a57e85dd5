//! `/autoscaler`: who leads the autoscaler, each scaled queue's desired vs
//! actual workers now and over the last hour, why, on which signals, and
//! the recent decisions with their reasons.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use queue_core::QueueName;
use queue_core::autoscale::{self, AutoscalerStatus, HistorySample, SignalsView};

use crate::Dashboard;
use crate::charts::step_lines;
use crate::error::PageError;
use crate::format::{count, duration_ms, seg};
use crate::html::{Page, Section, page, when};
use crate::session::Viewer;

/// Decisions shown.
const DECISIONS: usize = 50;
/// Samples of history charted per queue (an hour at the default 500 ms
/// tick).
const HISTORY: usize = autoscale::MAX_HISTORY;

/// What the page shows.
#[derive(Debug)]
pub(crate) struct AutoscalerView {
    status: AutoscalerStatus,
    /// Per scaled queue, its history, oldest first (empty when not read).
    history: Vec<(String, Vec<HistorySample>)>,
}

impl AutoscalerView {
    /// Reads the status and decisions, and the history charts when
    /// `with_history` (an hour of samples per queue is the heavy part; the
    /// live stream rereads it less often).
    pub(crate) async fn read(dash: &Dashboard, with_history: bool) -> Result<Self, PageError> {
        let conn = dash.api.conn();
        let status = autoscale::status(conn, DECISIONS).await?;
        let mut history = Vec::new();
        if with_history {
            for q in status.queues.iter().filter(|q| q.desired.is_some()) {
                let name = QueueName::new(q.queue.as_str())?;
                history.push((
                    q.queue.clone(),
                    autoscale::worker_history(conn, &name, HISTORY).await?,
                ));
            }
        }
        Ok(Self { status, history })
    }
}

/// The autoscaler page.
pub(crate) async fn autoscaler(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let view = AutoscalerView::read(&dash, true).await?;
    let body = html! {
        h1 { "Autoscaler" }
        div #live-autoscaler { (region(&view)) }
        h2 { "Desired and actual workers, last hour" }
        div #live-autoscaler-history { (history_region(&view)) }
    };
    Ok(page(
        &viewer,
        &Page {
            title: "Autoscaler",
            section: Section::Autoscaler,
            live: Some("/autoscaler".into()),
        },
        &body,
    ))
}

/// Leader, queues and decisions.
pub(crate) fn region(view: &AutoscalerView) -> Markup {
    let s = &view.status;
    let scaled: Vec<_> = s.queues.iter().filter(|q| q.desired.is_some()).collect();
    html! {
        p {
            @match &s.leader {
                Some(l) => { "Led by " span.mono { (l.holder) } " since " (when(l.since_ms)) " (epoch " (l.epoch) ")." }
                None => span.flash.error { "No drover serve holds the autoscaler's lease: nothing is being scaled." },
            }
        }
        @if scaled.is_empty() {
            p.empty { "No queue has an autoscaling policy. Give one in the config file ("
                code { "[autoscaler.queue.<name>]" } ") or with " code { "drover autoscaler set" } "." }
        } @else {
            div.table-wrap {
                table {
                    caption { "Scaled queues at the leader's last tick" }
                    thead { tr {
                        th scope="col" { "Queue" } th scope="col" { "Actuator" } th scope="col" .num { "Desired" }
                        th scope="col" .num { "Actual" } th scope="col" .num { "Recommended" } th scope="col" { "Signals" }
                        th scope="col" { "Why" } th scope="col" { "As of" }
                    } }
                    tbody {
                        @for q in &scaled {
                            tr {
                                th scope="row" { a href={ "/queues/" (seg(&q.queue)) } { (q.queue) } }
                                td { @if let Some(a) = q.actuator { (a.as_str()) } }
                                td.num { @if let Some(d) = q.desired { (d) } }
                                td.num { (q.actual) }
                                td.num { @if let Some(r) = q.recommended { (r) } }
                                td { (signals(&q.signals)) }
                                td { @if let Some(r) = &q.reason { (r) } }
                                td { (when(q.at_ms)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Recent decisions" }
        @if s.decisions.is_empty() {
            p.muted { "No scaling decision yet." }
        } @else {
            div.table-wrap {
                table {
                    caption { "The newest " (s.decisions.len()) " decisions, newest first" }
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Queue" } th scope="col" { "Change" }
                        th scope="col" { "Why" } th scope="col" { "Signals" }
                    } }
                    tbody {
                        @for d in &s.decisions {
                            tr {
                                td { (when(d.at_ms)) }
                                th scope="row" { (d.queue) }
                                td { span class={ "scale-" (d.direction.as_str()) } { (d.from) " → " (d.to) " (" (d.direction.as_str()) ")" } }
                                td { (d.reason) }
                                td { (signals(&d.signals)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One chart per scaled queue.
pub(crate) fn history_region(view: &AutoscalerView) -> Markup {
    html! {
        @if view.history.is_empty() { p.muted { "No history yet." } }
        @for (queue, samples) in &view.history {
            figure.history {
                figcaption { (queue) ": desired (dashed) and actual (solid) workers" }
                (step_lines(samples, &format!("Desired and actual workers of {queue} over the last hour")))
            }
        }
    }
}

fn signals(s: &SignalsView) -> Markup {
    html! {
        span.signals {
            (count(s.backlog)) " waiting"
            @if s.paused { " (paused)" }
            ", " (count(s.active)) " active"
            @if let Some(w) = s.oldest_wait_ms { ", oldest waited " (duration_ms(w)) }
            @if let Some(a) = s.arrival_per_sec { ", " (format!("{a:.1}")) "/s in" }
            @if let Some(c) = s.completion_per_sec { ", " (format!("{c:.1}")) "/s out" }
            ", " (s.live_workers) " workers with " (s.live_slots) " slots"
        }
    }
}
