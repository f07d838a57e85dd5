//! `/ui/live?path=…`: the one Server-Sent Events stream a browser tab
//! opens. It follows the page at `path`: every live interval it renders
//! that page's live regions with the same functions the page used, and
//! sends the regions whose HTML changed (`event: patch`, data
//! `[{"id":…,"html":…}]`). Overviews share one reading between every
//! open tab; other pages read only what they show (counts, one page of
//! summaries, one job). The stream re-checks its session every
//! [`RECHECK_EVERY`] and ends with `event: signed-out` when it is gone.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use maud::{Markup, html};
use percent_encoding::percent_decode_str;
use queue_core::{JobState, QueueName, inspect, now_ms};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use crate::Dashboard;
use crate::error::PageError;
use crate::pages::autoscaler::AutoscalerView;
use crate::pages::queue::{ListQuery, Listing, QueueView};
use crate::pages::workers::WorkersView;
use crate::pages::workflows::{RunView, RunsQuery, RunsView};
use crate::pages::{autoscaler, job, overview, queue, workers, workflows};
use crate::session::Viewer;

/// The autoscaler page rereads its hour of history this often (in live
/// ticks); its status and decisions every tick.
const HISTORY_EVERY: u64 = 15;

/// How often a stream checks that its session still stands.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// The page a stream follows.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    path: String,
}

/// A page the stream can keep up to date.
#[derive(Debug, Clone)]
enum View {
    Overview,
    Queue(QueueName, ListQuery),
    /// With the state it was last seen in.
    Job(QueueName, String, Option<JobState>),
    Workers,
    /// With the ticks sent so far (its history charts are reread every
    /// [`HISTORY_EVERY`] ticks).
    Autoscaler(u64),
    Runs(RunsQuery),
    Run(String),
}

impl View {
    /// The view of a page path (with its query), if it has live parts.
    fn parse(path: &str) -> Option<Self> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        Some(match segs.as_slice() {
            [""] => Self::Overview,
            ["workers"] => Self::Workers,
            ["autoscaler"] => Self::Autoscaler(0),
            ["workflows"] => Self::Runs(serde_urlencoded_query(query)?),
            ["workflows", "runs", run] => Self::Run((*run).to_string()),
            ["queues", q] => Self::Queue(QueueName::new(*q).ok()?, serde_urlencoded_query(query)?),
            ["queues", q, "jobs", id] => {
                Self::Job(QueueName::new(*q).ok()?, (*id).to_string(), None)
            }
            _ => return None,
        })
    }

    /// The page's live regions, by element id.
    async fn render(
        &mut self,
        dash: &Dashboard,
        viewer: &Viewer,
    ) -> Result<Vec<(&'static str, Markup)>, PageError> {
        Ok(match self {
            Self::Overview => vec![("live-overview", overview::region(&*dash.snapshot().await?))],
            Self::Queue(name, q) => {
                let listing = Listing::from_query(q, dash.settings.page_size)?;
                let view = QueueView::read(dash, name.clone(), listing).await?;
                vec![
                    ("live-queue-head", queue::head_region(&view)),
                    ("live-job-list", queue::list_region(viewer, &view)),
                ]
            }
            Self::Job(name, id, seen) => {
                match inspect::job_detail_since(dash.api.conn(), name, id, *seen).await {
                    Ok(detail) => {
                        *seen = detail.state;
                        vec![("live-job", job::region(viewer, name.as_str(), &detail))]
                    }
                    Err(e) if e.kind() == queue_core::ErrorKind::NotFound => vec![(
                        "live-job",
                        html! { p.flash.error role="alert" { "This job no longer exists: it was removed, or cleaned by its queue's retention." } },
                    )],
                    Err(e) => return Err(e.into()),
                }
            }
            Self::Workers => vec![(
                "live-workers",
                workers::region(&WorkersView::read(dash).await?),
            )],
            Self::Autoscaler(ticks) => {
                let with_history = *ticks % HISTORY_EVERY == 0;
                *ticks += 1;
                let view = AutoscalerView::read(dash, with_history).await?;
                let mut regions = vec![("live-autoscaler", autoscaler::region(&view))];
                if with_history {
                    regions.push(("live-autoscaler-history", autoscaler::history_region(&view)));
                }
                regions
            }
            Self::Runs(q) => vec![(
                "live-runs",
                workflows::runs_region(&RunsView::read(dash, q).await?),
            )],
            Self::Run(id) => vec![(
                "live-run",
                workflows::run_region(&RunView::read(dash, id).await?),
            )],
        })
    }
}

fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(query: &str) -> Option<T> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{query}").parse().ok()?)
        .ok()
        .map(|q| q.0)
}

/// `GET /ui/live?path=…`.
pub(crate) async fn stream(
    State(dash): State<Arc<Dashboard>>,
    viewer: Option<Viewer>,
    headers: axum::http::HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Response {
    let Some(viewer) = viewer else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let Some(view) = View::parse(&q.path) else {
        return (StatusCode::NOT_FOUND, "that page has no live parts").into_response();
    };
    let Ok(permit) = Arc::clone(&dash.live_streams).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "30")],
            "too many live pages are open; this one stays as loaded",
        )
            .into_response();
    };
    let token = crate::session::cookie(&headers, crate::session::SESSION_COOKIE);
    Sse::new(events(dash, viewer, view, token, permit))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// What the stream carries from one tick to the next.
struct Follow {
    dash: Arc<Dashboard>,
    viewer: Viewer,
    view: View,
    token: Option<String>,
    sent: HashMap<&'static str, String>,
    failing: bool,
    checked: Instant,
    first: bool,
    ended: bool,
    _permit: OwnedSemaphorePermit,
}

fn events(
    dash: Arc<Dashboard>,
    viewer: Viewer,
    view: View,
    token: Option<String>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let follow = Follow {
        dash,
        viewer,
        view,
        token,
        sent: HashMap::new(),
        failing: false,
        checked: Instant::now(),
        first: true,
        ended: false,
        _permit: permit,
    };
    futures::stream::unfold(follow, |mut f| async move {
        if f.ended {
            return None;
        }
        loop {
            if !f.first {
                tokio::select! {
                    () = tokio::time::sleep(f.dash.settings.live_interval) => {}
                    () = f.dash.stop.cancelled() => return None,
                }
            }
            f.first = false;
            if f.checked.elapsed() >= RECHECK_EVERY {
                f.checked = Instant::now();
                if !session_stands(&f).await {
                    f.ended = true;
                    return Some((Ok(Event::default().event("signed-out").data("{}")), f));
                }
            }
            match f.view.render(&f.dash, &f.viewer).await {
                Ok(regions) => {
                    let mut patches = Vec::new();
                    for (id, markup) in regions {
                        let html = markup.into_string();
                        if f.sent.get(id) != Some(&html) {
                            patches.push(serde_json::json!({ "id": id, "html": html }));
                            f.sent.insert(id, html);
                        }
                    }
                    if f.failing {
                        f.failing = false;
                        return Some((Ok(Event::default().event("live-ok").data("{}")), f));
                    }
                    if !patches.is_empty() {
                        let data = serde_json::Value::from(patches).to_string();
                        return Some((Ok(Event::default().event("patch").data(data)), f));
                    }
                }
                Err(e) => {
                    if !f.failing {
                        f.failing = true;
                        tracing::warn!(error = ?e, "a live page cannot be brought up to date; will retry");
                        return Some((Ok(Event::default().event("live-error").data("{}")), f));
                    }
                }
            }
        }
    })
}

/// Whether the stream's session (if any) is still live.
async fn session_stands(f: &Follow) -> bool {
    let Some(token) = &f.token else {
        // Authentication is off.
        return true;
    };
    match f.dash.api.store().session(token, now_ms()).await {
        Ok(found) => found.is_some(),
        // The store is unreachable: keep the page; the next check decides.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths_map_to_views() {
        assert!(matches!(View::parse("/"), Some(View::Overview)));
        assert!(matches!(View::parse("/workers"), Some(View::Workers)));
        assert!(matches!(
            View::parse("/autoscaler"),
            Some(View::Autoscaler(0))
        ));
        match View::parse("/queues/a%2Fb/jobs/x%20y") {
            Some(View::Job(q, id, None)) => {
                assert_eq!(q.as_str(), "a/b");
                assert_eq!(id, "x y");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            View::parse("/queues/emails?state=failed&page=2"),
            Some(View::Queue(..))
        ));
        assert!(View::parse("/audit").is_none());
        assert!(View::parse("/queues/q?page=notanumber").is_none());
    }
}
