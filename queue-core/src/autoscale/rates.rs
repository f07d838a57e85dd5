//! Rates from successive samples: arrivals (BullMQ's `id` counter),
//! completions (BullMQ's metrics counters, or arrivals minus the growth of
//! the jobs in the queue when no worker keeps them) and the average number
//! of busy slots, over a sliding window. Pure: times come with the samples.

use std::collections::VecDeque;

use super::signals::QueueSample;

/// Rates over the window, when it spans at least a second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Jobs added per second.
    pub arrival_per_sec: Option<f64>,
    /// Jobs finished (completed or failed) per second.
    pub completion_per_sec: Option<f64>,
    /// Mean of `active` over the window.
    pub busy_avg: f64,
}

impl Rates {
    /// Mean time a job spends in a worker, in seconds (Little's law on the
    /// busy slots), when jobs finished in the window.
    pub fn service_secs(&self) -> Option<f64> {
        match self.completion_per_sec {
            Some(c) if c > 0.0 && self.busy_avg > 0.0 => Some(self.busy_avg / c),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Point {
    at_ms: u64,
    added: u64,
    finished: Option<u64>,
    in_queue: u64,
    active: u64,
}

/// The samples of one queue over the last `window_ms`.
#[derive(Debug, Clone)]
pub struct RateWindow {
    window_ms: u64,
    points: VecDeque<Point>,
}

impl RateWindow {
    /// An empty window of `window_ms`.
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms: window_ms.max(1_000),
            points: VecDeque::new(),
        }
    }

    /// Adds a sample and answers the rates over the window. A counter
    /// going backwards (a flushed Redis, an obliterated queue) starts the
    /// window again.
    pub fn observe(&mut self, s: &QueueSample) -> Rates {
        let point = Point {
            at_ms: s.at_ms,
            added: s.added_total,
            finished: s.finished_total,
            in_queue: s.waiting + s.prioritized + s.delayed + s.active,
            active: s.active,
        };
        if self
            .points
            .back()
            .is_some_and(|last| last.added > point.added || last.at_ms > point.at_ms)
        {
            self.points.clear();
        }
        self.points.push_back(point);
        while self
            .points
            .front()
            .is_some_and(|p| point.at_ms.saturating_sub(p.at_ms) > self.window_ms)
        {
            self.points.pop_front();
        }
        let busy_avg =
            self.points.iter().map(|p| p.active as f64).sum::<f64>() / self.points.len() as f64;
        let Some(first) = self.points.front().copied() else {
            return Rates::default();
        };
        let span_secs = point.at_ms.saturating_sub(first.at_ms) as f64 / 1_000.0;
        if span_secs < 1.0 {
            return Rates {
                busy_avg,
                ..Rates::default()
            };
        }
        let arrived = (point.added - first.added) as f64;
        let finished = match (first.finished, point.finished) {
            (Some(a), Some(b)) if b > a => (b - a) as f64,
            // No worker keeps BullMQ's counters (or none finished): what
            // arrived and is no longer in the queue has finished.
            _ => (arrived - (point.in_queue as f64 - first.in_queue as f64)).max(0.0),
        };
        Rates {
            arrival_per_sec: Some(arrived / span_secs),
            completion_per_sec: Some(finished / span_secs),
            busy_avg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        at_ms: u64,
        added: u64,
        finished: Option<u64>,
        waiting: u64,
        active: u64,
    ) -> QueueSample {
        QueueSample {
            at_ms,
            added_total: added,
            finished_total: finished,
            waiting,
            active,
            ..QueueSample::default()
        }
    }

    #[test]
    fn rates_come_from_the_counters_over_the_window() {
        let mut w = RateWindow::new(10_000);
        assert_eq!(
            w.observe(&sample(0, 0, Some(0), 0, 4)).arrival_per_sec,
            None
        );
        let r = w.observe(&sample(2_000, 200, Some(160), 36, 4));
        assert_eq!(r.arrival_per_sec, Some(100.0));
        assert_eq!(r.completion_per_sec, Some(80.0));
        // 4 busy slots finishing 80 jobs/s: 50 ms per job.
        assert!((r.service_secs().unwrap() - 0.05).abs() < 1e-9);
    }

    #[test]
    fn without_counters_completions_are_what_left_the_queue() {
        let mut w = RateWindow::new(10_000);
        w.observe(&sample(0, 100, None, 100, 0));
        let r = w.observe(&sample(1_000, 150, None, 30, 10));
        // 50 arrived, the queue shrank by 60: 110 finished.
        assert_eq!(r.completion_per_sec, Some(110.0));
    }

    #[test]
    fn old_points_leave_and_resets_restart() {
        let mut w = RateWindow::new(2_000);
        w.observe(&sample(0, 0, Some(0), 0, 0));
        w.observe(&sample(1_000, 1_000, Some(0), 0, 0));
        let r = w.observe(&sample(3_000, 1_010, Some(0), 0, 0));
        assert_eq!(r.arrival_per_sec, Some(5.0), "only the last two seconds");
        let r = w.observe(&sample(4_000, 3, Some(0), 0, 0));
        assert_eq!(r.arrival_per_sec, None, "a counter reset starts again");
    }
}
