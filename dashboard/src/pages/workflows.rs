//! `/workflows`: runs by state; `/workflows/runs/{run}`: one run's graph of
//! steps with their states, outputs and checkpoints.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use queue_core::store::{RunDetail, RunRecord, RunState, StepState};
use serde::Deserialize;
use serde_json::Value;

use crate::Dashboard;
use crate::error::PageError;
use crate::format::{self, count, query_value, seg};
use crate::html::{Page, Section, page, state_badge, when};
use crate::pages::dag::{self, Node};
use crate::session::Viewer;

/// Runs per page.
const PAGE: u32 = 50;
/// Outputs and checkpoints longer than this are cut in the step table.
const VALUE_LIMIT: usize = 2_048;

const STATES: [RunState; 5] = [
    RunState::Pending,
    RunState::Running,
    RunState::Completed,
    RunState::Failed,
    RunState::Cancelled,
];

/// Which runs to list.
#[derive(Debug, Clone, Deserialize, Default)]
pub(crate) struct RunsQuery {
    state: Option<String>,
    before: Option<String>,
}

/// What the runs page shows.
#[derive(Debug)]
pub(crate) struct RunsView {
    counts: Vec<(RunState, u64)>,
    state: Option<RunState>,
    runs: Vec<RunRecord>,
}

impl RunsView {
    pub(crate) async fn read(dash: &Dashboard, q: &RunsQuery) -> Result<Self, PageError> {
        let state = match q.state.as_deref() {
            None | Some("") => None,
            Some(s) => Some(s.parse::<RunState>().map_err(|_| {
                PageError::bad_request(format!(
                    "unknown run state {s:?}; use pending, running, completed, failed or cancelled"
                ))
            })?),
        };
        let store = dash.api.store();
        let counts = store.count_runs_by_state().await?;
        let runs = store
            .list_runs(None, state, PAGE, q.before.as_deref())
            .await?;
        Ok(Self {
            counts,
            state,
            runs,
        })
    }
}

/// The runs page.
pub(crate) async fn runs(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
    Query(q): Query<RunsQuery>,
) -> Result<Response, PageError> {
    let view = RunsView::read(&dash, &q).await?;
    let live = match (&q.state, &q.before) {
        (_, Some(_)) => None,
        (Some(s), None) => Some(format!("/workflows?state={}", query_value(s))),
        (None, None) => Some("/workflows".into()),
    };
    let body = html! {
        h1 { "Workflows" }
        div #live-runs { (runs_region(&view)) }
    };
    Ok(page(
        &viewer,
        &Page {
            title: "Workflows",
            section: Section::Workflows,
            live,
        },
        &body,
    ))
}

/// The part of the runs page that updates live.
pub(crate) fn runs_region(view: &RunsView) -> Markup {
    let n = |s: RunState| {
        view.counts
            .iter()
            .find(|(state, _)| *state == s)
            .map_or(0, |(_, n)| *n)
    };
    let total: u64 = view.counts.iter().map(|(_, n)| n).sum();
    html! {
        nav.tabs aria-label="Run states" {
            ul {
                li { a href="/workflows" aria-current=[view.state.is_none().then_some("page")] { "all " span.count { (count(total)) } } }
                @for s in STATES {
                    li { a href={ "/workflows?state=" (s) } aria-current=[(view.state == Some(s)).then_some("page")] {
                        (s) " " span.count { (count(n(s))) } } }
                }
            }
        }
        @if view.runs.is_empty() {
            p.empty { "No runs here. Start one with " code { "drover workflow start TYPE" } " or "
                code { "POST /api/v1/workflows/{type}/runs" } "." }
        } @else {
            div.table-wrap {
                table {
                    caption { "Runs, newest first" }
                    thead { tr {
                        th scope="col" { "Run" } th scope="col" { "Type" } th scope="col" { "State" }
                        th scope="col" { "Created" } th scope="col" { "Finished" } th scope="col" { "Error" }
                    } }
                    tbody {
                        @for r in &view.runs {
                            tr {
                                th scope="row" .mono { a href={ "/workflows/runs/" (seg(&r.id)) } { (r.id) } }
                                td { (r.kind) }
                                td { (state_badge(r.state.as_str())) }
                                td { (when(r.created_at_ms)) }
                                td { @if let Some(t) = r.finished_at_ms { (when(t)) } }
                                td { @if let Some(e) = &r.error { (format::line(e, 100)) } }
                            }
                        }
                    }
                }
            }
            @if view.runs.len() as u32 == PAGE {
                @if let Some(last) = view.runs.last() {
                    p { a rel="next" href={ "/workflows?before=" (seg(&last.id))
                        @if let Some(s) = view.state { "&state=" (s) } } { "Older runs ›" } }
                }
            }
        }
    }
}

/// What a run's page shows: the run, its steps, and its type's graph.
#[derive(Debug)]
pub(crate) struct RunView {
    detail: RunDetail,
    nodes: Vec<Node>,
}

impl RunView {
    pub(crate) async fn read(dash: &Dashboard, id: &str) -> Result<Self, PageError> {
        let store = dash.api.store();
        let detail = store
            .get_run(id)
            .await?
            .ok_or_else(|| PageError::not_found(format!("no workflow run {id:?}")))?;
        let kind = store.get_workflow_type(&detail.run.kind).await?;
        let nodes = match kind {
            Some(t) => t
                .workflow
                .order()
                .iter()
                .filter_map(|step| t.workflow.step(step))
                .map(|step| node(&detail, &step.id, step.depends_on.clone()))
                .collect(),
            // The type was removed: draw the steps the run has, unlinked.
            None => {
                let mut ids: Vec<String> = detail.steps.iter().map(|s| s.step.clone()).collect();
                ids.dedup();
                ids.iter().map(|id| node(&detail, id, Vec::new())).collect()
            }
        };
        Ok(Self { detail, nodes })
    }
}

fn node(detail: &RunDetail, step: &str, depends_on: Vec<String>) -> Node {
    let rows: Vec<_> = detail.steps.iter().filter(|s| s.step == step).collect();
    let main = rows.iter().find(|s| s.item.is_none());
    let items: Vec<_> = rows.iter().filter(|s| s.item.is_some()).collect();
    let note = (!items.is_empty()).then(|| {
        let done = items
            .iter()
            .filter(|s| s.state == StepState::Completed)
            .count();
        format!("{done}/{} items", items.len())
    });
    Node {
        id: step.to_string(),
        depends_on,
        state: main.map_or_else(|| "not started".to_string(), |s| s.state.to_string()),
        note,
    }
}

/// A run's page.
pub(crate) async fn run(
    State(dash): State<Arc<Dashboard>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let view = RunView::read(&dash, &id).await?;
    let body = html! {
        p.crumbs { a href="/workflows" { "Workflows" } " › run" }
        h1 { "Run " span.mono { (id) } }
        div #live-run { (run_region(&view)) }
    };
    Ok(page(
        &viewer,
        &Page {
            title: &format!("Run {id}"),
            section: Section::Workflows,
            live: Some(format!("/workflows/runs/{}", seg(&id))),
        },
        &body,
    ))
}

/// The part of a run's page that updates live.
pub(crate) fn run_region(view: &RunView) -> Markup {
    let r = &view.detail.run;
    html! {
        dl.facts {
            dt { "Type" } dd { (r.kind) }
            dt { "State" } dd { (state_badge(r.state.as_str())) }
            dt { "Created" } dd { (when(r.created_at_ms)) }
            @if let Some(t) = r.started_at_ms { dt { "Started" } dd { (when(t)) } }
            @if let Some(t) = r.finished_at_ms { dt { "Finished" } dd { (when(t)) } }
            @if let Some(t) = r.deadline_ms { dt { "Deadline" } dd { (when(t)) } }
            @if let Some(k) = &r.idempotency_key { dt { "Idempotency key" } dd.mono { (k) } }
            @if let Some(e) = &r.error { dt { "Error" } dd.error { (e) } }
        }
        h2 { "Steps" }
        (dag::graph(&view.nodes))
        div.table-wrap {
            table.steps {
                caption { "Steps and fan-out items, in dependency order" }
                thead { tr {
                    th scope="col" { "Step" } th scope="col" { "State" } th scope="col" .num { "Attempt" }
                    th scope="col" .num { "Tries" } th scope="col" { "Job" } th scope="col" { "Finished" }
                    th scope="col" { "Output" } th scope="col" { "Checkpoint" } th scope="col" { "Error" }
                } }
                tbody {
                    @for s in &view.detail.steps {
                        tr {
                            th scope="row" .mono { (s.step) @if let Some(i) = s.item { "[" (i) "]" } }
                            td { (state_badge(s.state.as_str())) }
                            td.num { (s.attempt) }
                            td.num { (s.tries) }
                            td.mono { @if let Some(job) = &s.job_id {
                                a href={ "/queues/" (seg(&s.queue)) "/jobs/" (seg(job)) } { (s.queue) " / " (job) }
                            } }
                            td { @if let Some(t) = s.finished_at_ms { (when(t)) } }
                            td { (value_cell(s.output.as_ref())) }
                            td { (value_cell(s.checkpoint.as_ref())) }
                            td { @if let Some(e) = &s.error { (format::line(e, 120)) } }
                        }
                    }
                }
            }
        }
        @if let Some(output) = &r.output {
            h2 { "Run output" }
            pre.json { (format::json_cut(output, 64 * 1024).0) }
        }
    }
}

fn value_cell(value: Option<&Value>) -> Markup {
    match value {
        None => html! {},
        Some(v) => {
            let (text, cut) = format::json_cut(v, VALUE_LIMIT);
            html! { pre.cell { (text) @if cut { "\n…" } } }
        }
    }
}
