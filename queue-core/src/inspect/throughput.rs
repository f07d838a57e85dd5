//! Jobs finished per minute over the last minutes, from BullMQ's own
//! metrics (`metrics:completed`/`metrics:failed` and their `:data` lists,
//! which workers record when asked to, as Drover's do) or, for queues
//! whose workers record none, counted from the retained `completed` and
//! `failed` sets by finish time.

use redis::Value;
use serde::Serialize;

use super::slots;
use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::Result;
use crate::names::QueueName;

const MINUTE_MS: u64 = 60_000;

/// Where a series was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeriesSource {
    /// BullMQ's metrics, counted by the workers as jobs finish.
    Metrics,
    /// Counted from the jobs still kept in `completed`/`failed`: jobs
    /// removed on completion are missing.
    RetainedJobs,
}

/// Jobs per minute, oldest minute first; the last entry is the current
/// minute so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinuteSeries {
    /// One count per minute.
    pub counts: Vec<u64>,
    /// Where they come from.
    pub source: SeriesSource,
}

impl MinuteSeries {
    /// The sum over the whole series.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Completions and final failures of one queue, per minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throughput {
    /// Jobs completed.
    pub completed: MinuteSeries,
    /// Jobs failed for good.
    pub failed: MinuteSeries,
    /// Start of the series' last (current) minute, ms since the epoch.
    pub last_minute_ms: u64,
}

impl Throughput {
    /// Failed jobs as a share of finished ones over the series, if any
    /// finished.
    pub fn failure_rate(&self) -> Option<f64> {
        let failed = self.failed.total();
        let finished = failed + self.completed.total();
        (finished > 0).then(|| failed as f64 / finished as f64)
    }
}

/// The last `minutes` minutes (1 to 1440) of every queue: one round trip
/// for BullMQ's metrics, and one more only for the queues without them.
pub async fn throughput(
    conn: &Connection,
    queues: &[QueueName],
    minutes: usize,
) -> Result<Vec<Throughput>> {
    let minutes = minutes.clamp(1, 1_440);
    let now_minute = now_ms() / MINUTE_MS;
    let metrics = slots::per_queue(conn, queues, 4, |pipe, k| {
        for kind in ["completed", "failed"] {
            let hash = k.get(&format!("metrics:{kind}"));
            pipe.hmget(&hash, &["count", "prevTS", "prevCount"][..])
                .lrange(format!("{hash}:data"), 0, minutes as isize - 1);
        }
    })
    .await?;
    let mut series: Vec<[Option<Vec<u64>>; 2]> = Vec::with_capacity(queues.len());
    for replies in &metrics {
        series.push([
            from_metrics(&replies[0], &replies[1], now_minute, minutes)?,
            from_metrics(&replies[2], &replies[3], now_minute, minutes)?,
        ]);
    }
    // Queues whose workers keep no metrics: count finish times by minute.
    let first_minute = now_minute + 1 - minutes as u64;
    let counted = slots::per_queue_varying(conn, queues, |pipe, i, k| {
        let mut n = 0;
        for (j, set) in [k.completed(), k.failed()].into_iter().enumerate() {
            if series[i][j].is_none() {
                for m in first_minute..=now_minute {
                    pipe.zcount(&set, m * MINUTE_MS, (m + 1) * MINUTE_MS - 1);
                }
                n += minutes;
            }
        }
        n
    })
    .await?;
    let mut out = Vec::with_capacity(queues.len());
    for ([completed, failed], replies) in series.into_iter().zip(counted) {
        let mut rest = replies.iter();
        let mut pick = |s: Option<Vec<u64>>| -> Result<MinuteSeries> {
            Ok(match s {
                Some(counts) => MinuteSeries {
                    counts,
                    source: SeriesSource::Metrics,
                },
                None => MinuteSeries {
                    counts: rest
                        .by_ref()
                        .take(minutes)
                        .map(slots::decode::<u64>)
                        .collect::<Result<_>>()?,
                    source: SeriesSource::RetainedJobs,
                },
            })
        };
        out.push(Throughput {
            completed: pick(completed)?,
            failed: pick(failed)?,
            last_minute_ms: now_minute * MINUTE_MS,
        });
    }
    Ok(out)
}

/// Rebuilds per-minute counts from BullMQ's metrics hash and data list
/// (`None` when the queue has no metrics hash).
///
/// BullMQ's finish script adds each finish to `count`; the first finish in
/// a new minute pushes the previous minute's total (`count − prevCount`)
/// and a zero for every minute without finishes onto the head of the data
/// list, then moves `prevTS`/`prevCount` to now. So entry `i` of the list
/// is minute `minute(prevTS) − 1 − i`, the current `count − prevCount`
/// belongs to `minute(prevTS)`, and later minutes had no finishes.
fn from_metrics(
    hash: &Value,
    data: &Value,
    now_minute: u64,
    minutes: usize,
) -> Result<Option<Vec<u64>>> {
    let fields: Vec<Option<u64>> = slots::decode(hash)?;
    let (Some(count), Some(prev_ts)) = (fields[0], fields[1]) else {
        return Ok(None);
    };
    let pending = count.saturating_sub(fields[2].unwrap_or(0));
    let data: Vec<u64> = slots::decode::<Vec<Option<u64>>>(data)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    Ok(Some(rebuild(
        prev_ts / MINUTE_MS,
        pending,
        &data,
        now_minute,
        minutes,
    )))
}

fn rebuild(
    prev_minute: u64,
    pending: u64,
    data: &[u64],
    now_minute: u64,
    minutes: usize,
) -> Vec<u64> {
    let first = now_minute + 1 - minutes as u64;
    (first..=now_minute)
        .map(|m| {
            if m > prev_minute {
                0
            } else if m == prev_minute {
                pending
            } else {
                let index = (prev_minute - 1 - m) as usize;
                data.get(index).copied().unwrap_or(0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_line_up_with_bullmq_metrics() {
        // Last finish in minute 100 (3 so far); the list holds minutes 99,
        // 98, 97 as 5, 0, 7. Asked at minute 102 for 5 minutes: 98..=102.
        let counts = rebuild(100, 3, &[5, 0, 7], 102, 5);
        assert_eq!(counts, vec![0, 5, 3, 0, 0]);
        // Asked in the same minute as the last finish.
        assert_eq!(rebuild(100, 3, &[5], 100, 3), vec![0, 5, 3]);
        // A history shorter than the window reads as zeros.
        assert_eq!(rebuild(100, 1, &[], 100, 2), vec![0, 1]);
    }
}
