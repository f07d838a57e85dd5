//! Prometheus metrics of the API process: requests by route and status,
//! latency, queue depth per state (refreshed in the background from the
//! queues' counts, never by reading job hashes), BullMQ's own completed and
//! failed counters, the store's pool, and workflow runs per state (counted
//! by the same refresher in the store).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use queue_core::JobState;
use queue_core::inspect::{self, QueueCounts};
use queue_core::store::RunState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::state::ApiState;

/// The API's metric families.
#[derive(Debug)]
pub struct ApiMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    queue_jobs: IntGaugeVec,
    queue_completed: IntCounterVec,
    queue_failed: IntCounterVec,
    pool: IntGaugeVec,
    errors: IntCounterVec,
    cache_reads: IntCounterVec,
    workflow_runs: IntGaugeVec,
}

impl ApiMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new("drover_http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "drover_http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method", "route"],
        )?;
        let queue_jobs = IntGaugeVec::new(
            Opts::new("drover_queue_jobs", "Jobs in each state of each queue"),
            &["queue", "state"],
        )?;
        let queue_completed = IntCounterVec::new(
            Opts::new(
                "drover_queue_jobs_completed_total",
                "Jobs completed, from BullMQ's metrics counter of the queue",
            ),
            &["queue"],
        )?;
        let queue_failed = IntCounterVec::new(
            Opts::new(
                "drover_queue_jobs_failed_total",
                "Jobs finally failed, from BullMQ's metrics counter of the queue",
            ),
            &["queue"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "drover_store_pool_connections",
                "Store connections by state (idle, in_use, max)",
            ),
            &["state"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "drover_api_errors_total",
                "Errors survived by the API's background tasks",
            ),
            &["task"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(queue_jobs.clone()))?;
        registry.register(Box::new(queue_completed.clone()))?;
        registry.register(Box::new(queue_failed.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        let cache_reads = IntCounterVec::new(
            Opts::new(
                "drover_cache_reads_total",
                "Reads of warmed cache keys through the API, by result (hit, miss)",
            ),
            &["result"],
        )?;
        registry.register(Box::new(cache_reads.clone()))?;
        let workflow_runs = IntGaugeVec::new(
            Opts::new("drover_workflow_runs", "Workflow runs in each state"),
            &["state"],
        )?;
        registry.register(Box::new(workflow_runs.clone()))?;
        Ok(Self {
            requests,
            duration,
            queue_jobs,
            queue_completed,
            queue_failed,
            pool,
            errors,
            cache_reads,
            workflow_runs,
        })
    }

    /// Counts a read of `GET /api/v1/cache/{key}`: a hit or a miss.
    pub(crate) fn count_cache_read(&self, hit: bool) {
        self.cache_reads
            .with_label_values(&[if hit { "hit" } else { "miss" }])
            .inc();
    }

    /// Counts an error survived by `task`.
    pub(crate) fn count_error(&self, task: &str) {
        self.errors.with_label_values(&[task]).inc();
    }

    /// Reads the store pool's gauges now (no I/O).
    pub(crate) fn observe_pool(&self, state: &ApiState) {
        let stats = state.store.pool_stats();
        let set = |label: &str, v: u32| self.pool.with_label_values(&[label]).set(i64::from(v));
        set("idle", stats.idle);
        set("in_use", stats.size.saturating_sub(stats.idle));
        set("max", stats.max);
    }

    /// Sets the run gauges; a state with no run reads 0.
    fn observe_workflow_runs(&self, counts: &[(RunState, u64)]) {
        for state in RUN_STATES {
            let n = counts
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|(_, n)| *n)
                .sum::<u64>();
            self.workflow_runs
                .with_label_values(&[state.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn observe_queues(&self, counts: &[(queue_core::QueueName, QueueCounts)], seen: &mut Totals) {
        self.queue_jobs.reset();
        for (queue, c) in counts {
            for state in JobState::ALL {
                let n = i64::try_from(c.get(state)).unwrap_or(i64::MAX);
                self.queue_jobs
                    .with_label_values(&[queue.as_str(), state.as_str()])
                    .set(n);
            }
            follow(
                &self.queue_completed,
                queue.as_str(),
                c.completed_total,
                &mut seen.completed,
            );
            follow(
                &self.queue_failed,
                queue.as_str(),
                c.failed_total,
                &mut seen.failed,
            );
        }
    }
}

/// Every state a run can be in, so each has a gauge (0 when empty).
const RUN_STATES: [RunState; 5] = [
    RunState::Pending,
    RunState::Running,
    RunState::Completed,
    RunState::Failed,
    RunState::Cancelled,
];

/// The last value of each BullMQ counter, so our counters follow it.
#[derive(Debug, Default)]
struct Totals {
    completed: HashMap<String, u64>,
    failed: HashMap<String, u64>,
}

/// Moves `counter{queue}` to BullMQ's `total`; a total that went down (the
/// queue was obliterated) restarts the counter, as a process restart would.
fn follow(
    counter: &IntCounterVec,
    queue: &str,
    total: Option<u64>,
    seen: &mut HashMap<String, u64>,
) {
    let Some(total) = total else { return };
    let last = seen.insert(queue.to_string(), total).unwrap_or(0);
    if total >= last {
        counter.with_label_values(&[queue]).inc_by(total - last);
    } else {
        let _ = counter.remove_label_values(&[queue]);
        counter.with_label_values(&[queue]).inc_by(total);
    }
}

/// Counts every request by route and status and times it, inside an
/// `http{method, route}` span. A middleware (`from_fn_with_state` with the
/// API's state): the API's router wraps its routes in it, and the
/// dashboard wraps its pages, so both show in `drover_http_requests_total`
/// and the latency histogram.
pub async fn track(
    State(state): State<Arc<ApiState>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = matched
        .as_ref()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(req.method());
    let span = info_span!("http", method, route = %route);
    let started = Instant::now();
    let response = next.run(req).instrument(span).await;
    let m = &state.metrics;
    m.requests
        .with_label_values(&[method, &route, response.status().as_str()])
        .inc();
    m.duration
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A bounded label for the method: anything unusual is `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Refreshes the queue gauges, and the workflow run gauges from the
/// store, every `queue_metrics_interval` until `stop`.
pub fn spawn_queue_refresher(state: Arc<ApiState>, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut totals = Totals::default();
        let mut tick = tokio::time::interval(state.settings.queue_metrics_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let refreshed = async {
                let queues = state.discovery.queues().await?;
                inspect::queue_counts(&state.conn, &queues).await
            };
            match refreshed.await {
                Ok(counts) => state.metrics.observe_queues(&counts, &mut totals),
                Err(e) => {
                    state.metrics.count_error("queue_metrics");
                    warn!(error = %e, "cannot refresh queue metrics; will retry");
                }
            }
            match state.store.count_runs_by_state().await {
                Ok(counts) => state.metrics.observe_workflow_runs(&counts),
                Err(e) => {
                    state.metrics.count_error("workflow_metrics");
                    warn!(error = %e, "cannot refresh workflow run metrics; will retry");
                }
            }
        }
        info!("queue metrics refresher stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_bullmq_totals_and_restart_when_they_drop() {
        let c = IntCounterVec::new(Opts::new("t_total", "t"), &["queue"]).unwrap();
        let mut seen = HashMap::new();
        follow(&c, "q", Some(5), &mut seen);
        follow(&c, "q", Some(8), &mut seen);
        assert_eq!(c.with_label_values(&["q"]).get(), 8);
        follow(&c, "q", Some(2), &mut seen);
        assert_eq!(c.with_label_values(&["q"]).get(), 2);
        follow(&c, "q", None, &mut seen);
        assert_eq!(c.with_label_values(&["q"]).get(), 2);
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }
}
