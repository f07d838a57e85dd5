//! Results: what one case measured, and the tables and JSON made of them.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::procs::{Stopped, WorkerKind};

/// What one (worker, concurrency) case measured; fields stay `None` when
/// the case failed before reaching them.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Which repetition this was (from 0).
    pub round: usize,
    /// The worker.
    pub worker: WorkerKind,
    /// Its concurrency.
    pub concurrency: usize,
    /// Time to enqueue every job through the worker's own client.
    pub enqueue: Option<Duration>,
    /// From resume to the last job finished.
    pub drain: Option<Duration>,
    /// The worker's peak RSS (`VmHWM`) just before it was stopped, KiB.
    pub peak_rss_kib: Option<u64>,
    /// Jobs in the `failed` set afterwards (should be 0).
    pub failed_jobs: Option<u64>,
    /// How the worker stopped.
    pub stopped: Option<Stopped>,
    /// Why the case failed.
    pub error: Option<String>,
}

impl CaseResult {
    /// An empty result for a case about to run.
    pub fn new(round: usize, worker: WorkerKind, concurrency: usize) -> Self {
        Self {
            round,
            worker,
            concurrency,
            enqueue: None,
            drain: None,
            peak_rss_kib: None,
            failed_jobs: None,
            stopped: None,
            error: None,
        }
    }
}

impl CaseResult {
    /// One line for progress output.
    pub fn summary(&self, jobs: u64) -> String {
        let case = format!(
            "#{} {:>6} c={:<4}",
            self.round + 1,
            self.worker.name(),
            self.concurrency
        );
        if let Some(e) = &self.error {
            return format!("{case} FAILED: {e}");
        }
        let per_sec = |d: Duration| rate(jobs, d);
        format!(
            "{case} enqueue {:>8.0} jobs/s   process {:>8.0} jobs/s   peak RSS {:>6.1} MiB",
            self.enqueue.map_or(0.0, per_sec),
            self.drain.map_or(0.0, per_sec),
            self.peak_rss_kib.map_or(0.0, mib),
        )
    }
}

/// A whole benchmark run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Jobs per case.
    pub jobs: u64,
    /// Jobs per bulk enqueue call.
    pub chunk: usize,
    /// Cores available to this process.
    pub cores: usize,
    /// The Redis server's version.
    pub redis_version: String,
    /// `node --version`, when Node was benchmarked.
    pub node_version: Option<String>,
    /// Workers benchmarked, in order.
    pub workers: Vec<WorkerKind>,
    /// Concurrencies benchmarked, in order.
    pub concurrencies: Vec<usize>,
    /// Runs of every case (interleaved: round after round).
    pub rounds: usize,
    /// Every case, in the order run.
    pub cases: Vec<CaseResult>,
}

fn rate(jobs: u64, took: Duration) -> f64 {
    let jobs = jobs as f64;
    jobs / took.as_secs_f64().max(1e-9)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The median of `values` (sorted in place); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some(f64::midpoint(values[n / 2 - 1], values[n / 2])),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

impl Report {
    fn runs(&self, worker: WorkerKind, concurrency: usize) -> impl Iterator<Item = &CaseResult> {
        self.cases
            .iter()
            .filter(move |c| c.worker == worker && c.concurrency == concurrency)
    }

    /// Jobs/s of every run of a case that completed.
    fn rates(&self, worker: WorkerKind, concurrency: usize) -> Vec<f64> {
        self.runs(worker, concurrency)
            .filter(|c| c.error.is_none())
            .filter_map(|c| c.drain.map(|took| rate(self.jobs, took)))
            .collect()
    }

    /// Median jobs/s over the runs of a case.
    pub fn throughput(&self, worker: WorkerKind, concurrency: usize) -> Option<f64> {
        median(&mut self.rates(worker, concurrency))
    }

    /// Lowest and highest jobs/s over the runs of a case.
    pub fn throughput_range(&self, worker: WorkerKind, concurrency: usize) -> Option<(f64, f64)> {
        let rates = self.rates(worker, concurrency);
        let min = rates.iter().copied().reduce(f64::min)?;
        let max = rates.iter().copied().reduce(f64::max)?;
        Some((min, max))
    }

    /// The highest peak RSS over the runs of a case.
    fn rss_mib(&self, worker: WorkerKind, concurrency: usize) -> Option<f64> {
        self.runs(worker, concurrency)
            .filter_map(|c| c.peak_rss_kib)
            .max()
            .map(mib)
    }

    fn enqueue_rates(&self, worker: WorkerKind) -> Vec<f64> {
        self.cases
            .iter()
            .filter(|c| c.worker == worker)
            .filter_map(|c| c.enqueue.map(|t| rate(self.jobs, t)))
            .collect()
    }

    /// The header lines: machine, job count, versions.
    pub fn header(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cores (available_parallelism): {}   jobs per case (N): {}   enqueue chunk: {}",
            self.cores, self.jobs, self.chunk
        );
        let _ = writeln!(
            s,
            "redis-server {}   node {}   jobs: data {{}}, removeOnComplete: true, no-op processors",
            self.redis_version,
            self.node_version.as_deref().unwrap_or("-")
        );
        s
    }

    /// Worker throughput and peak RSS, one row per concurrency.
    pub fn throughput_table(&self) -> String {
        use WorkerKind::{Bare, Drover, Node};
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Worker throughput (median jobs/s of {} run(s), from resume until wait+active+prioritized = 0)",
            self.rounds
        );
        let _ = writeln!(s, "and peak RSS (highest VmHWM over the runs)");
        let _ = writeln!(
            s,
            "{:>5} | {:>9} {:>9} {:>9} | {:>11} {:>11} | {:>8} {:>8} {:>10} | {:>11}",
            "conc",
            "node/s",
            "bare/s",
            "drover/s",
            "drover/bare",
            "drover/node",
            "node MiB",
            "bare MiB",
            "drover MiB",
            "RSS dr/node"
        );
        let _ = writeln!(s, "{}", "-".repeat(113));
        for &c in &self.concurrencies {
            let (n, b, d) = (
                self.throughput(Node, c),
                self.throughput(Bare, c),
                self.throughput(Drover, c),
            );
            let (nm, bm, dm) = (
                self.rss_mib(Node, c),
                self.rss_mib(Bare, c),
                self.rss_mib(Drover, c),
            );
            let _ = writeln!(
                s,
                "{:>5} | {:>9} {:>9} {:>9} | {:>11} {:>11} | {:>8} {:>8} {:>10} | {:>11}",
                c,
                num(n, 0),
                num(b, 0),
                num(d, 0),
                ratio(d, b),
                ratio(d, n),
                num(nm, 1),
                num(bm, 1),
                num(dm, 1),
                ratio(dm, nm)
            );
        }
        s
    }

    /// The lowest and highest jobs/s of each case over its runs.
    pub fn spread_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Spread over the runs (min-max jobs/s)");
        let mut header = format!("{:>5} |", "conc");
        for w in &self.workers {
            let _ = write!(header, " {:>19}", w.name());
        }
        let _ = writeln!(s, "{header}");
        let _ = writeln!(s, "{}", "-".repeat(header.len()));
        for &c in &self.concurrencies {
            let mut row = format!("{c:>5} |");
            for &w in &self.workers {
                let cell = self
                    .throughput_range(w, c)
                    .map_or_else(|| "-".to_string(), |(lo, hi)| format!("{lo:.0}-{hi:.0}"));
                let _ = write!(row, " {cell:>19}");
            }
            let _ = writeln!(s, "{row}");
        }
        s
    }

    /// Bulk enqueue throughput per client, over the cases that used it.
    pub fn enqueue_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Bulk enqueue (jobs/s; {} jobs in chunks of {}, queue paused, one call sequence per case)",
            self.jobs, self.chunk
        );
        let _ = writeln!(
            s,
            "{:<8} | {:<38} | {:>4} | {:>9} {:>9} {:>9}",
            "client", "call", "runs", "median", "min", "max"
        );
        let _ = writeln!(s, "{}", "-".repeat(88));
        for &w in &self.workers {
            let mut rates = self.enqueue_rates(w);
            let min = rates.iter().copied().reduce(f64::min);
            let max = rates.iter().copied().reduce(f64::max);
            let runs = rates.len();
            let med = median(&mut rates);
            let call = match w {
                WorkerKind::Node => "Queue.addBulk (Node BullMQ)",
                WorkerKind::Bare => "Queue::add_bulk (bullmq-official)",
                WorkerKind::Drover => "queue_core::producer::enqueue_bulk",
            };
            let _ = writeln!(
                s,
                "{:<8} | {:<38} | {:>4} | {:>9} {:>9} {:>9}",
                w.name(),
                call,
                runs,
                num(med, 0),
                num(min, 0),
                num(max, 0)
            );
        }
        s
    }

    /// Anything unusual: failed cases, failed jobs, workers that had to be
    /// killed.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for c in &self.cases {
            let case = format!(
                "run {} {} c={}",
                c.round + 1,
                c.worker.name(),
                c.concurrency
            );
            if let Some(e) = &c.error {
                notes.push(format!("{case}: FAILED: {e}"));
            }
            if let Some(f) = c.failed_jobs.filter(|f| *f > 0) {
                notes.push(format!("{case}: {f} jobs ended in the failed set"));
            }
            if let Some(stop) = &c.stopped {
                if !stop.graceful {
                    notes.push(format!(
                        "{case}: the worker did not exit within the grace period after SIGTERM and was killed"
                    ));
                } else if !stop.status.success() {
                    notes.push(format!(
                        "{case}: the worker exited with {} after SIGTERM",
                        stop.status
                    ));
                }
            }
        }
        notes
    }

    /// Everything as JSON.
    pub fn to_json(&self) -> Value {
        let cases: Vec<Value> = self
            .cases
            .iter()
            .map(|c| {
                json!({
                    "round": c.round,
                    "worker": c.worker.name(),
                    "concurrency": c.concurrency,
                    "jobs_per_sec": c.drain.filter(|_| c.error.is_none()).map(|d| rate(self.jobs, d)),
                    "drain_seconds": c.drain.map(|d| d.as_secs_f64()),
                    "enqueue_jobs_per_sec": c.enqueue.map(|t| rate(self.jobs, t)),
                    "enqueue_seconds": c.enqueue.map(|d| d.as_secs_f64()),
                    "peak_rss_kib": c.peak_rss_kib,
                    "peak_rss_mib": c.peak_rss_kib.map(mib),
                    "failed_jobs": c.failed_jobs,
                    "stop": c.stopped.as_ref().map(|s| json!({
                        "graceful": s.graceful,
                        "status": s.status.to_string(),
                        "seconds": s.took.as_secs_f64(),
                    })),
                    "error": c.error,
                })
            })
            .collect();
        let enqueue: serde_json::Map<String, Value> = self
            .workers
            .iter()
            .map(|&w| {
                let mut rates = self.enqueue_rates(w);
                let runs = rates.len();
                let min = rates.iter().copied().reduce(f64::min);
                let max = rates.iter().copied().reduce(f64::max);
                let med = median(&mut rates);
                (
                    w.name().to_string(),
                    json!({"runs": runs, "median_jobs_per_sec": med, "min": min, "max": max}),
                )
            })
            .collect();
        json!({
            "cores": self.cores,
            "jobs": self.jobs,
            "chunk": self.chunk,
            "redis_version": self.redis_version,
            "node_version": self.node_version,
            "workers": self.workers.iter().map(|w| w.name()).collect::<Vec<_>>(),
            "concurrencies": self.concurrencies,
            "rounds": self.rounds,
            "median_jobs_per_sec": self.concurrencies.iter().map(|&c| {
                let per_worker: serde_json::Map<String, Value> = self.workers.iter()
                    .map(|&w| (w.name().to_string(), json!(self.throughput(w, c))))
                    .collect();
                json!({ "concurrency": c, "workers": per_worker })
            }).collect::<Vec<_>>(),
            "cases": cases,
            "enqueue": enqueue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50x");
        assert_eq!(ratio(None, Some(2.0)), "-");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "-");
    }
}
