//! Schedules as Redis holds them: BullMQ job schedulers, written and read
//! through bullmq-official, plus Drover's record of which ones it owns.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::spec::{MissedTicks, Schedule};
use super::time::{self, Timing};
use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;
use crate::producer::{NewJob, enqueue_bulk, options_to_bullmq};

/// Most schedules one queue's listing returns.
pub const MAX_LISTED: usize = 1_000;
/// How many upcoming run times a [`ScheduleView`] carries.
pub const UPCOMING_RUNS: usize = 5;

/// Where a schedule Drover owns is declared.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// A `[[schedule]]` of the config file: change it there.
    Config,
    /// The API or `drover schedule set`: kept in the durable store.
    Api,
}

/// What Drover keeps about a scheduler it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// Where it is declared.
    pub owner: Owner,
    /// [`Schedule::fingerprint`] of the definition last applied.
    pub fingerprint: String,
    /// Whether that definition reached BullMQ (the record is written
    /// before the upsert and marked after it, so a crash in between is
    /// seen and repaired).
    pub applied: bool,
    /// The schedule's missed-tick policy.
    pub missed: MissedTicks,
    /// The scheduler as last seen by a reconciler: its pending run and
    /// iteration count then. Ticks between that run and today's pending
    /// one that BullMQ did not produce were missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

/// A scheduler's position: the pending run's time and BullMQ's iteration
/// count, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Time of the pending run (ms), the score in the queue's `repeat` set.
    pub pending_ms: u64,
    /// BullMQ's iteration count (`ic`): runs produced so far, the pending
    /// one included.
    pub iterations: u64,
}

/// A schedule as Redis holds it, whoever made it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleView {
    /// The queue it adds jobs to.
    pub queue: String,
    /// BullMQ's job-scheduler id.
    pub id: String,
    /// Name of the jobs it adds.
    pub name: String,
    /// Cron pattern, for cron schedules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Interval in ms, for interval schedules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// Time zone of the pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// No run before this (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<u64>,
    /// No run after this (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<u64>,
    /// At most this many runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Runs made so far (BullMQ's iteration count).
    pub iterations: u64,
    /// When the pending run is due (ms), BullMQ's `next`.
    pub next_ms: Option<u64>,
    /// The pending run and the ones after it (ms), as BullMQ computes them.
    pub upcoming_ms: Vec<u64>,
    /// Payload of the jobs it adds.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub data: Value,
    /// Options of the jobs it adds, as BullMQ stores them.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub opts: Value,
    /// Who declared it, when Drover owns it; absent for schedules made by
    /// other BullMQ clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The missed-tick policy, when Drover owns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<MissedTicks>,
}

fn owner_field(queue: &QueueName, id: &str) -> String {
    serde_json::json!([queue.as_str(), id]).to_string()
}

fn parse_owner_field(field: &str) -> Option<(QueueName, String)> {
    let (queue, id): (String, String) = serde_json::from_str(field).ok()?;
    Some((QueueName::new(queue).ok()?, id))
}

/// Drover's record of `queue`/`id`, if it owns that scheduler.
pub async fn owner_record(
    conn: &Connection,
    queue: &QueueName,
    id: &str,
) -> Result<Option<OwnerRecord>> {
    let mut redis = conn.redis();
    let raw: Option<String> = redis::cmd("HGET")
        .arg(keys::schedule_owners(conn.prefix()))
        .arg(owner_field(queue, id))
        .query_async(&mut redis)
        .await?;
    raw.map(|r| decode_record(&r)).transpose()
}

fn decode_record(raw: &str) -> Result<OwnerRecord> {
    serde_json::from_str(raw)
        .map_err(|e| QueueError::Protocol(format!("unreadable schedule owner record: {e}")))
}

/// Every scheduler Drover owns under this prefix.
pub async fn owned(conn: &Connection) -> Result<Vec<(QueueName, String, OwnerRecord)>> {
    let mut redis = conn.redis();
    let all: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(keys::schedule_owners(conn.prefix()))
        .query_async(&mut redis)
        .await?;
    let mut out = Vec::with_capacity(all.len());
    for (field, raw) in all {
        match (parse_owner_field(&field), decode_record(&raw)) {
            (Some((queue, id)), Ok(record)) => out.push((queue, id, record)),
            _ => tracing::warn!(field, "ignoring an unreadable schedule owner record"),
        }
    }
    Ok(out)
}

async fn put_record(
    conn: &Connection,
    queue: &QueueName,
    id: &str,
    record: &OwnerRecord,
) -> Result<()> {
    let mut redis = conn.redis();
    let json = serde_json::to_string(record)
        .map_err(|e| QueueError::Protocol(format!("cannot encode an owner record: {e}")))?;
    redis::cmd("HSET")
        .arg(keys::schedule_owners(conn.prefix()))
        .arg(owner_field(queue, id))
        .arg(json)
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}

/// Makes BullMQ hold `schedule` as declared by `owner`, through
/// `upsertJobScheduler`: created if missing, replaced otherwise (BullMQ
/// then replaces the pending run, keeping its time for an unchanged
/// interval). A schedule whose end date has passed is refused.
pub async fn apply(conn: &Connection, schedule: &Schedule, owner: Owner) -> Result<()> {
    let spec = schedule.spec();
    if spec.end_date.is_some_and(|end| end <= now_ms()) {
        return Err(QueueError::InvalidSchedule(format!(
            "schedule {:?} ended at {} ms; nothing left to run",
            schedule.id(),
            spec.end_date.unwrap_or_default()
        )));
    }
    let mut record = OwnerRecord {
        owner,
        fingerprint: schedule.fingerprint(),
        applied: false,
        missed: spec.missed,
        mark: None,
    };
    put_record(conn, schedule.queue(), schedule.id(), &record).await?;
    let repeat = bullmq::job_scheduler::RepeatOptions {
        pattern: spec.pattern.clone(),
        every: spec.every,
        limit: spec.limit,
        immediately: spec.immediately.then_some(true),
        offset: None,
        start_date: spec.start_date,
        end_date: spec.end_date,
        tz: spec.tz.clone(),
        count: None,
    };
    let queue = conn.bullmq_queue(schedule.queue()).await?;
    queue
        .upsert_job_scheduler(
            schedule.id(),
            repeat,
            Some(schedule.job_name()),
            Some(spec.data.clone()),
            Some(options_to_bullmq(&spec.opts)),
        )
        .await?;
    record.applied = true;
    // Missed ticks are counted from here on: an upsert may move the
    // pending run without producing one.
    record.mark = read_mark(conn, schedule.queue(), schedule.id()).await?;
    put_record(conn, schedule.queue(), schedule.id(), &record).await
}

/// The scheduler's pending run and iteration count, read atomically (a
/// worker producing the next run changes both in one script).
async fn read_mark(conn: &Connection, queue: &QueueName, id: &str) -> Result<Option<Mark>> {
    let keys = keys::queue(conn.prefix(), queue);
    let mut redis = conn.redis();
    let (pending, iterations): (Option<f64>, Option<u64>) = redis::pipe()
        .atomic()
        .zscore(keys.repeat(), id)
        .hget(format!("{}:{id}", keys.repeat()), "ic")
        .query_async(&mut redis)
        .await?;
    Ok(match (pending, iterations) {
        (Some(p), Some(ic)) if p >= 0.0 => Some(Mark {
            // Scores are whole milliseconds.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            pending_ms: p as u64,
            iterations: ic,
        }),
        _ => None,
    })
}

/// Removes the scheduler `queue`/`id` (its pending run too, if it has not
/// started) and Drover's record of it; answers whether a scheduler was
/// there.
pub async fn remove(conn: &Connection, queue: &QueueName, id: &str) -> Result<bool> {
    let q = conn.bullmq_queue(queue).await?;
    let removed = q.remove_job_scheduler(id).await?;
    let mut redis = conn.redis();
    redis::cmd("HDEL")
        .arg(keys::schedule_owners(conn.prefix()))
        .arg(owner_field(queue, id))
        .query_async::<()>(&mut redis)
        .await?;
    Ok(removed)
}

/// The scheduler `queue`/`id`, whoever made it.
pub async fn get(conn: &Connection, queue: &QueueName, id: &str) -> Result<Option<ScheduleView>> {
    let q = conn.bullmq_queue(queue).await?;
    let Some(found) = q.get_job_scheduler(id).await? else {
        return Ok(None);
    };
    let record = owner_record(conn, queue, id).await?;
    Ok(Some(view(queue, found, record)))
}

/// The schedulers of `queue` (at most [`MAX_LISTED`]), soonest first.
pub async fn list(conn: &Connection, queue: &QueueName) -> Result<Vec<ScheduleView>> {
    let q = conn.bullmq_queue(queue).await?;
    let end = isize::try_from(MAX_LISTED).unwrap_or(isize::MAX) - 1;
    let found = q.get_job_schedulers(0, end, true).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    // Every owner record in one round trip.
    let fields: Vec<String> = found.iter().map(|s| owner_field(queue, &s.key)).collect();
    let mut redis = conn.redis();
    let raw: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(keys::schedule_owners(conn.prefix()))
        .arg(&fields)
        .query_async(&mut redis)
        .await?;
    found
        .into_iter()
        .zip(raw)
        .map(|(s, r)| Ok(view(queue, s, r.map(|r| decode_record(&r)).transpose()?)))
        .collect()
}

fn view(
    queue: &QueueName,
    s: bullmq::job_scheduler::JobSchedulerJson,
    record: Option<OwnerRecord>,
) -> ScheduleView {
    let timing = match (&s.pattern, s.every) {
        (Some(pattern), _) => Some(Timing::Cron {
            pattern: pattern.clone(),
            tz: s.tz.clone().unwrap_or_else(|| "UTC".into()),
        }),
        (None, Some(every)) => Some(Timing::Every { every_ms: every }),
        (None, None) => None,
    };
    let mut upcoming_ms = Vec::new();
    if let (Some(next), Some(timing)) = (s.next, &timing) {
        upcoming_ms.push(next);
        let remaining = s
            .limit
            .map_or(UPCOMING_RUNS, |l| {
                usize::try_from(l.saturating_sub(s.iteration_count)).unwrap_or(UPCOMING_RUNS)
            })
            .min(UPCOMING_RUNS - 1);
        if let Ok(more) = time::next_runs(timing, next, s.start_date, s.end_date, remaining) {
            upcoming_ms.extend(more);
        }
    }
    ScheduleView {
        queue: queue.as_str().to_string(),
        name: s.name,
        pattern: s.pattern,
        every: s.every,
        tz: s.tz,
        start_date: s.start_date,
        end_date: s.end_date,
        limit: s.limit,
        iterations: s.iteration_count,
        next_ms: s.next,
        upcoming_ms,
        data: s
            .data
            .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
        opts: s
            .opts
            .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
        owner: record.as_ref().map(|r| r.owner),
        missed: record.map(|r| r.missed),
        id: s.key,
    }
}

/// Whether the scheduler in Redis still says what `schedule` says in the
/// fields a foreign write would change (timing and job name): a Node
/// client upserting over one of ours is undone by the reconciler.
pub fn matches_live(schedule: &Schedule, live: &ScheduleView) -> bool {
    let spec = schedule.spec();
    live.pattern == spec.pattern
        && live.every == spec.every
        && live.tz == spec.tz
        && live.name == schedule.job_name()
        && live.limit == spec.limit
        && live.start_date == spec.start_date
        && live.end_date == spec.end_date
        && live.data == spec.data
}

/// Ticks that passed unrun, found by [`account_missed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// Ticks BullMQ did not produce.
    pub ticks: u64,
    /// When the first of them was due (ms), if known.
    pub first_ms: Option<u64>,
    /// When the last of them was due (ms), if known.
    pub last_ms: Option<u64>,
    /// Ids of the jobs added for them (policy catch-up).
    pub added: Vec<String>,
}

/// Most ticks between two marks looked at (a long outage of a fast
/// schedule is counted up to here).
const MAX_TICKS_EXAMINED: usize = 100_000;

/// Finds the ticks of `schedule` that BullMQ skipped since the last pass
/// and deals with each once, by the schedule's policy.
///
/// BullMQ keeps one pending run per scheduler. While nothing works the
/// queue it stays pending; when work resumes it runs once, late, and the
/// run after it is computed from then on, so the ticks in between never
/// get a job. Each pass notes the pending run and BullMQ's iteration count
/// (a [`Mark`]); the next pass counts the ticks between the noted pending
/// run and today's and compares with the iterations produced meanwhile.
/// Ticks strictly before today's pending run are settled (BullMQ never
/// makes a run earlier than its pending one), so no tick is both caught up
/// and run by BullMQ.
///
/// Which ticks were skipped is read from the run jobs that are missing
/// (`repeat:<id>:<ms>`); when completed runs are removed at once
/// (`removeOnComplete`), the latest missing ones are taken.
///
/// Skip: nothing is added; the caller logs the count. Catch-up: one job
/// per skipped tick (the latest `max_catch_up`), all-or-nothing, with ids
/// `catchup-<schedule>-<tick ms>`. Either way the mark moves on, so ticks
/// are reported or caught up once even with several reconcilers (which
/// take turns under [`ScheduleLock`]).
pub async fn account_missed(
    conn: &Connection,
    schedule: &Schedule,
    max_catch_up: usize,
) -> Result<Option<Missed>> {
    let (queue, id) = (schedule.queue(), schedule.id());
    let Some(mut record) = owner_record(conn, queue, id).await? else {
        return Ok(None);
    };
    let Some(now) = read_mark(conn, queue, id).await? else {
        return Ok(None);
    };
    let before = record.mark.replace(now);
    let Some(before) = before.filter(|b| *b != now) else {
        if before.is_none() {
            put_record(conn, queue, id, &record).await?;
        }
        return Ok(None);
    };
    let missed = if now.pending_ms > before.pending_ms && now.iterations >= before.iterations {
        skipped_ticks(conn, schedule, before, now).await?
    } else {
        // Moved back or recreated (a flush, another client's upsert):
        // nothing to compare with; start counting again from here.
        None
    };
    let Some(mut missed) = missed else {
        put_record(conn, queue, id, &record).await?;
        return Ok(None);
    };
    if schedule.spec().missed == MissedTicks::CatchUp {
        missed.added = catch_up(conn, schedule, &missed.ticks_ms, max_catch_up).await?;
    }
    put_record(conn, queue, id, &record).await?;
    Ok(Some(Missed {
        ticks: missed.count,
        first_ms: missed.ticks_ms.first().copied(),
        last_ms: missed.ticks_ms.last().copied(),
        added: missed.added,
    }))
}

struct Skipped {
    count: u64,
    ticks_ms: Vec<u64>,
    added: Vec<String>,
}

/// The ticks between two marks that BullMQ did not produce.
async fn skipped_ticks(
    conn: &Connection,
    schedule: &Schedule,
    before: Mark,
    now: Mark,
) -> Result<Option<Skipped>> {
    let spec = schedule.spec();
    // Ticks after the old pending run and before the new one.
    let (between, _) = time::runs_between(
        schedule.timing(),
        before.pending_ms,
        now.pending_ms - 1,
        spec.start_date,
        spec.end_date,
        MAX_TICKS_EXAMINED,
    )
    .map_err(QueueError::InvalidSchedule)?;
    // Runs produced since: the new pending one and those before it.
    let produced = now.iterations - before.iterations;
    let expected = between.len() as u64 + 1;
    if expected <= produced {
        return Ok(None);
    }
    let count = expected - produced;
    let keys = keys::queue(conn.prefix(), schedule.queue());
    let mut redis = conn.redis();
    let mut absent = Vec::new();
    for chunk in between.chunks(1_000) {
        let mut pipe = redis::pipe();
        for tick in chunk {
            pipe.exists(keys.job_key(&format!("repeat:{}:{tick}", schedule.id())));
        }
        let found: Vec<bool> = pipe.query_async(&mut redis).await?;
        absent.extend(chunk.iter().zip(found).filter(|(_, f)| !f).map(|(t, _)| *t));
    }
    // Missing runs beyond the count were completed and removed; the
    // skipped ones are taken to be the latest.
    let keep = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(absent.len());
    let ticks_ms = absent.split_off(absent.len() - keep);
    Ok(Some(Skipped {
        count,
        ticks_ms,
        added: Vec::new(),
    }))
}

/// Adds one job per tick (the latest `max`), all-or-nothing per thousand.
async fn catch_up(
    conn: &Connection,
    schedule: &Schedule,
    ticks: &[u64],
    max: usize,
) -> Result<Vec<String>> {
    let spec = schedule.spec();
    let jobs: Vec<NewJob> = ticks[ticks.len().saturating_sub(max)..]
        .iter()
        .map(|tick| {
            let mut opts = spec.opts.clone();
            opts.job_id = Some(format!("catchup-{}-{tick}", schedule.id()));
            NewJob {
                name: schedule.job_name().to_string(),
                data: spec.data.clone(),
                opts,
            }
        })
        .collect();
    let mut added = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(crate::producer::MAX_BULK_JOBS) {
        added.extend(enqueue_bulk(conn, schedule.queue(), chunk).await?);
    }
    Ok(added)
}

/// A lease on schedule writes under one prefix: the reconciler holds it
/// for a pass, the API and CLI for one write, so a pass never sees half of
/// a concurrent change. It expires by itself if its holder dies.
#[derive(Debug)]
pub struct ScheduleLock {
    conn: Connection,
    token: String,
}

impl ScheduleLock {
    /// Takes the lease for `ttl` if it is free.
    pub async fn try_acquire(conn: &Connection, ttl: Duration) -> Result<Option<Self>> {
        let token = uuid::Uuid::new_v4().to_string();
        let mut redis = conn.redis();
        let ok: Option<String> = redis::cmd("SET")
            .arg(keys::schedule_lock(conn.prefix()))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut redis)
            .await?;
        Ok(ok.map(|_| Self {
            conn: conn.clone(),
            token,
        }))
    }

    /// Takes the lease, waiting up to `wait` for its holder to let go.
    pub async fn acquire(conn: &Connection, ttl: Duration, wait: Duration) -> Result<Option<Self>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(lock) = Self::try_acquire(conn, ttl).await? {
                return Ok(Some(lock));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Lets go of the lease, if it is still ours.
    pub async fn release(self) -> Result<()> {
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        );
        let mut redis = self.conn.redis();
        script
            .key(keys::schedule_lock(self.conn.prefix()))
            .arg(&self.token)
            .invoke_async::<i64>(&mut redis)
            .await?;
        Ok(())
    }
}
