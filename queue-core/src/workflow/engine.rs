//! The orchestration engine: one [`tick`] moves every active run forward.
//!
//! Each run is handled in its own store transaction, which holds the run's
//! row lock on PostgreSQL (`FOR UPDATE SKIP LOCKED`: several orchestrators
//! share the runs, never the same one at once). In that transaction the
//! engine reads the run's steps, asks Redis how their jobs went, and
//! writes every consequence together: a step's output with the release of
//! the steps that depend on it, a failure with the run's failure, a
//! dispatch with the job id it will use. Jobs are added after the commit;
//! the job id is derived from run, step, item and attempt, so a job lost
//! to a crash between commit and add is added again, identically, by the
//! next tick (a second add of an existing id adds nothing).
//!
//! Resume rule: a step recorded as completed is never dispatched again; a
//! step dispatched when everything died is found `dispatched`, its job is
//! looked up by its id and re-added if missing, with the same idempotency
//! key (`run:step:attempt`) in its data.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Row};

use super::definition::Workflow;
use super::template::{self, Scope};
use crate::clock::now_ms;
use crate::connection::Connection;
use crate::error::{QueueError, Result};
use crate::keys;
use crate::names::QueueName;
use crate::producer::{JobOptions, NewJob, Retention, RetentionPolicy, enqueue_bulk};
use crate::store::workflows::{
    RUN_COLUMNS, STEP_COLUMNS, insert_event, item_to_db, json_text, run_from_row, step_from_row,
};
use crate::store::{RunRecord, RunState, StepRecord, StepState, Store, StoreBackend};

/// Finished step jobs are kept this long in Redis (seconds), long enough
/// for any orchestrator outage short of a week to still read them.
const JOB_RETENTION_SECS: u64 = 7 * 24 * 3_600;
/// The key in a step job's data that carries the workflow context.
pub const WORKFLOW_FIELD: &str = "_workflow";

/// Which step (and item, and attempt) a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    /// The run id.
    pub run: String,
    /// The step id.
    pub step: String,
    /// The fan-out item.
    pub item: Option<u64>,
    /// The dispatch generation.
    pub attempt: u64,
}

impl StepRef {
    /// The job id of this step's job: `wf-<run>-<step>-<item or x>-<attempt>`.
    pub fn job_id(&self) -> String {
        let item = self.item.map_or_else(|| "x".to_string(), |i| i.to_string());
        format!("wf-{}-{}-{item}-{}", self.run, self.step, self.attempt)
    }

    /// Reads a job id made by [`StepRef::job_id`].
    pub fn from_job_id(id: &str) -> Option<Self> {
        let rest = id.strip_prefix("wf-")?;
        let (run, rest) = (rest.get(..32)?, rest.get(32..)?.strip_prefix('-')?);
        let mut parts = rest.rsplitn(3, '-');
        let attempt = parts.next()?.parse().ok()?;
        let item = match parts.next()? {
            "x" => None,
            n => Some(n.parse().ok()?),
        };
        let step = parts.next()?.to_string();
        Some(Self {
            run: run.to_string(),
            step,
            item,
            attempt,
        })
    }

    /// The key a handler uses to make its side effects idempotent: the
    /// same for every try and re-dispatch of this attempt of the step.
    pub fn idempotency_key(&self) -> String {
        match self.item {
            Some(i) => format!("{}:{}[{i}]:{}", self.run, self.step, self.attempt),
            None => format!("{}:{}:{}", self.run, self.step, self.attempt),
        }
    }
}

/// Saves a step's checkpoint; every later try or re-dispatch of the step
/// gets it (the orchestrator copies it into the store).
pub async fn save_checkpoint(conn: &Connection, step: &StepRef, value: &Value) -> Result<()> {
    let key = keys::workflow_checkpoint(conn.prefix(), &step.run, &step.step, step.item);
    let mut redis = conn.redis();
    redis::cmd("SET")
        .arg(key)
        .arg(value.to_string())
        .arg("EX")
        .arg(JOB_RETENTION_SECS)
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}

/// The step's last saved checkpoint.
pub async fn load_checkpoint(conn: &Connection, step: &StepRef) -> Result<Option<Value>> {
    let key = keys::workflow_checkpoint(conn.prefix(), &step.run, &step.step, step.item);
    let mut redis = conn.redis();
    let raw: Option<String> = redis::cmd("GET").arg(key).query_async(&mut redis).await?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// What one tick did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    /// Runs looked at.
    pub runs: usize,
    /// Runs another orchestrator held (skipped).
    pub busy: usize,
    /// Step jobs added (dispatches and re-dispatches).
    pub dispatched: usize,
    /// Of those, jobs found missing and added again.
    pub redispatched: usize,
    /// Steps recorded as completed, with how long they took from dispatch
    /// (ms) and how long their result waited to be recorded (ms).
    pub completed: Vec<(u64, u64)>,
    /// Steps recorded as failed.
    pub failed: usize,
    /// Runs that ended, by their final state.
    pub finished: Vec<RunState>,
}

/// How a step's job went, as Redis says.
#[derive(Debug)]
enum Outcome {
    Missing,
    Running {
        tries: u64,
    },
    Completed {
        output: Value,
        finished_ms: u64,
        tries: u64,
    },
    Failed {
        reason: String,
        tries: u64,
    },
}

/// Moves every active run forward once; at most `limit` runs.
pub async fn tick(conn: &Connection, store: &Store, limit: u32) -> Result<TickReport> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM workflow_runs WHERE state IN ('pending', 'running') \
         OR id IN (SELECT run_id FROM workflow_steps WHERE state = 'dispatched') \
         ORDER BY updated_at_ms LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    let mut report = TickReport::default();
    for id in ids {
        match advance(conn, store, &id, &mut report).await {
            Ok(true) => report.runs += 1,
            Ok(false) => report.busy += 1,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => tracing::warn!(run = id, error = %e, "cannot advance workflow run"),
        }
    }
    Ok(report)
}

/// Everything one run needs to decide.
struct Loaded {
    run: RunRecord,
    workflow: Workflow,
    steps: Vec<StepRecord>,
}

async fn load(tx: &mut AnyConnection, store: &Store, id: &str) -> Result<Option<Loaded>> {
    let lock = match store.backend() {
        StoreBackend::Postgres => " FOR UPDATE SKIP LOCKED",
        StoreBackend::Sqlite => "",
    };
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS}, definition FROM workflow_runs WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let run = run_from_row(&row)?;
    let definition: String = row.try_get("definition")?;
    let workflow = serde_json::from_str(&definition)
        .map_err(|e| QueueError::StoreData(format!("run {id}: definition: {e}")))
        .and_then(|d| Workflow::new(&run.kind, d))?;
    let steps = sqlx::query(&format!(
        "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE run_id = $1"
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(step_from_row)
    .collect::<Result<Vec<_>>>()?;
    Ok(Some(Loaded {
        run,
        workflow,
        steps,
    }))
}

/// Reads the jobs of the dispatched steps (and their checkpoints) in one
/// round trip.
async fn outcomes(
    conn: &Connection,
    run: &str,
    steps: &[&StepRecord],
) -> Result<Vec<(Outcome, Option<Value>)>> {
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    // Job keys of several queues and Drover's checkpoint keys: on a
    // cluster they lie in different slots, so one pipeline per slot.
    let mut commands = Vec::with_capacity(steps.len() * 4);
    for s in steps {
        let queue = QueueName::new(s.queue.as_str())?;
        let k = keys::queue(conn.prefix(), &queue);
        let id = s.job_id.clone().unwrap_or_default();
        let job_key = k.job_key(&id);
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(&job_key).arg(
            &[
                "timestamp",
                "finishedOn",
                "returnvalue",
                "failedReason",
                "attemptsMade",
            ][..],
        );
        commands.push((job_key, hmget));
        for set in [k.completed(), k.failed()] {
            let mut zscore = redis::cmd("ZSCORE");
            zscore.arg(&set).arg(&id);
            commands.push((set, zscore));
        }
        let checkpoint = keys::workflow_checkpoint(conn.prefix(), run, &s.step, s.item);
        let mut get = redis::cmd("GET");
        get.arg(&checkpoint);
        commands.push((checkpoint, get));
    }
    let raw = crate::inspect::slots::per_key(conn, commands).await?;
    let mut out = Vec::with_capacity(steps.len());
    for chunk in raw.chunks(4) {
        let fields: Vec<Option<String>> = redis::from_redis_value(chunk[0].clone())?;
        let in_completed: Option<f64> = redis::from_redis_value(chunk[1].clone())?;
        let in_failed: Option<f64> = redis::from_redis_value(chunk[2].clone())?;
        let checkpoint: Option<String> = redis::from_redis_value(chunk[3].clone())?;
        let field = |i: usize| fields.get(i).cloned().flatten();
        let tries = field(4).and_then(|t| t.parse().ok()).unwrap_or(0);
        let outcome = if field(0).is_none() {
            Outcome::Missing
        } else if in_completed.is_some() {
            Outcome::Completed {
                output: field(2)
                    .and_then(|r| serde_json::from_str(&r).ok())
                    .unwrap_or(Value::Null),
                finished_ms: field(1).and_then(|t| t.parse().ok()).unwrap_or_else(now_ms),
                tries,
            }
        } else if in_failed.is_some() {
            Outcome::Failed {
                reason: field(3).unwrap_or_else(|| "failed".into()),
                tries,
            }
        } else {
            Outcome::Running { tries }
        };
        out.push((
            outcome,
            checkpoint.and_then(|c| serde_json::from_str(&c).ok()),
        ));
    }
    Ok(out)
}

/// A change to one unit of a step, written in the run's transaction.
async fn update_step(tx: &mut AnyConnection, run: &str, s: &StepRecord) -> Result<()> {
    sqlx::query(
        "UPDATE workflow_steps SET state = $4, attempt = $5, job_id = $6, input = $7, output = $8, \
         checkpoint = $9, error = $10, tries = $11, dispatched_at_ms = $12, finished_at_ms = $13 \
         WHERE run_id = $1 AND step = $2 AND item = $3",
    )
    .bind(run)
    .bind(&s.step)
    .bind(item_to_db(s.item))
    .bind(s.state.as_str())
    .bind(i64::try_from(s.attempt).unwrap_or(i64::MAX))
    .bind(s.job_id.as_deref())
    .bind(s.input.as_ref().map(json_text))
    .bind(s.output.as_ref().map(json_text))
    .bind(s.checkpoint.as_ref().map(json_text))
    .bind(s.error.as_deref())
    .bind(i64::try_from(s.tries).unwrap_or(i64::MAX))
    .bind(
        s.dispatched_at_ms
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
    )
    .bind(
        s.finished_at_ms
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_step(tx: &mut AnyConnection, run: &str, s: &StepRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO workflow_steps (run_id, step, item, state, attempt, queue, input, output, error, \
         tries, ready_at_ms, finished_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)",
    )
    .bind(run)
    .bind(&s.step)
    .bind(item_to_db(s.item))
    .bind(s.state.as_str())
    .bind(i64::try_from(s.attempt).unwrap_or(i64::MAX))
    .bind(&s.queue)
    .bind(s.input.as_ref().map(json_text))
    .bind(s.output.as_ref().map(json_text))
    .bind(s.error.as_deref())
    .bind(i64::try_from(s.ready_at_ms).unwrap_or(i64::MAX))
    .bind(s.finished_at_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn unit(step: &str, item: Option<u64>, queue: &str, now: u64) -> StepRecord {
    StepRecord {
        step: step.to_string(),
        item,
        state: StepState::Waiting,
        attempt: 1,
        queue: queue.to_string(),
        job_id: None,
        input: None,
        output: None,
        checkpoint: None,
        error: None,
        tries: 0,
        ready_at_ms: now,
        dispatched_at_ms: None,
        finished_at_ms: None,
    }
}

/// A job to add once the transaction is committed.
struct Dispatch {
    queue: String,
    job: NewJob,
}

/// Advances one run; `false` when another orchestrator holds it.
async fn advance(
    conn: &Connection,
    store: &Store,
    id: &str,
    report: &mut TickReport,
) -> Result<bool> {
    let mut tx = store.begin_write().await?;
    let Some(Loaded {
        mut run,
        workflow,
        mut steps,
    }) = load(&mut tx, store, id).await?
    else {
        return Ok(false);
    };
    let now = now_ms();
    let kind = run.kind.clone();
    let mut events: Vec<Event> = Vec::new();
    let mut to_add: Vec<Dispatch> = Vec::new();
    // Jobs of steps cancelled by a timeout: removed unless already started.
    let mut to_remove: Vec<(String, String)> = Vec::new();

    // 1. A pending run takes a slot if its type has one free.
    if run.state == RunState::Pending {
        if !slot_free(&mut tx, &workflow, store.backend()).await? {
            tx.rollback().await?;
            return Ok(true);
        }
        run.state = RunState::Running;
        run.started_at_ms.get_or_insert(now);
        events.push((None, "running".into(), None));
    }
    if run.state == RunState::Running && run.deadline_ms.is_none() {
        run.deadline_ms = workflow
            .definition()
            .timeout_ms
            .map(|t| now.saturating_add(t));
    }

    // 2. Record what happened to the jobs in flight.
    let dispatched: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].state == StepState::Dispatched)
        .collect();
    let refs: Vec<&StepRecord> = dispatched.iter().map(|&i| &steps[i]).collect();
    let seen = outcomes(conn, id, &refs).await?;
    let mut changed: Vec<usize> = Vec::new();
    for (&i, (outcome, checkpoint)) in dispatched.iter().zip(seen) {
        let s = &mut steps[i];
        let mut dirty = false;
        if checkpoint.is_some() && checkpoint != s.checkpoint {
            s.checkpoint = checkpoint;
            dirty = true;
        }
        match outcome {
            Outcome::Missing => {
                if run.state == RunState::Running {
                    to_add.push(job_for(&run, &workflow, s)?);
                    report.redispatched += 1;
                } else {
                    s.state = StepState::Cancelled;
                    s.finished_at_ms = Some(now);
                    events.push((Some((s.step.clone(), s.item)), "cancelled".into(), None));
                    dirty = true;
                }
            }
            Outcome::Running { tries } => {
                if tries != s.tries {
                    s.tries = tries;
                    dirty = true;
                }
            }
            Outcome::Completed {
                output,
                finished_ms,
                tries,
            } => {
                s.state = StepState::Completed;
                s.output = Some(output);
                s.tries = tries;
                s.finished_at_ms = Some(now);
                report.completed.push((
                    now.saturating_sub(s.dispatched_at_ms.unwrap_or(now)),
                    now.saturating_sub(finished_ms),
                ));
                events.push((Some((s.step.clone(), s.item)), "completed".into(), None));
                dirty = true;
            }
            Outcome::Failed { reason, tries } => {
                s.state = StepState::Failed;
                s.error = Some(reason.clone());
                s.tries = tries;
                s.finished_at_ms = Some(now);
                report.failed += 1;
                events.push((
                    Some((s.step.clone(), s.item)),
                    "failed".into(),
                    Some(reason),
                ));
                dirty = true;
            }
        }
        if dirty {
            changed.push(i);
        }
    }

    // 3. Decide what follows.
    let mut inserted: Vec<StepRecord> = Vec::new();
    if run.state == RunState::Running {
        let failed = steps.iter().find(|s| s.state == StepState::Failed);
        let timed_out = run.deadline_ms.is_some_and(|d| now >= d);
        if let Some(f) = failed {
            run.state = RunState::Failed;
            run.error = Some(format!(
                "step {}{} failed: {}",
                f.step,
                f.item.map(|i| format!("[{i}]")).unwrap_or_default(),
                f.error.as_deref().unwrap_or("failed")
            ));
        } else if timed_out {
            run.state = RunState::Failed;
            run.error = Some(format!(
                "timed out after {} ms",
                workflow.definition().timeout_ms.unwrap_or_default()
            ));
            for (i, s) in steps.iter_mut().enumerate() {
                if matches!(s.state, StepState::Waiting | StepState::Dispatched) {
                    if let (StepState::Dispatched, Some(job)) = (s.state, &s.job_id) {
                        to_remove.push((s.queue.clone(), job.clone()));
                    }
                    s.state = StepState::Cancelled;
                    s.finished_at_ms = Some(now);
                    events.push((
                        Some((s.step.clone(), s.item)),
                        "cancelled".into(),
                        Some("run timed out".into()),
                    ));
                    changed.push(i);
                }
            }
        } else {
            release(
                &run,
                &workflow,
                &mut steps,
                &mut changed,
                &mut inserted,
                &mut events,
                now,
            );
            // Dispatch every ready unit.
            for (i, s) in steps.iter_mut().enumerate() {
                let fan_in = s.item.is_none()
                    && workflow.step(&s.step).is_some_and(|d| d.for_each.is_some());
                if s.state == StepState::Waiting && !fan_in {
                    s.state = StepState::Dispatched;
                    s.job_id = Some(step_ref(&run, s).job_id());
                    s.dispatched_at_ms = Some(now);
                    to_add.push(job_for(&run, &workflow, s)?);
                    events.push((Some((s.step.clone(), s.item)), "dispatched".into(), None));
                    changed.push(i);
                }
            }
            for s in inserted.iter_mut() {
                if s.state == StepState::Waiting
                    && !(s.item.is_none()
                        && workflow.step(&s.step).is_some_and(|d| d.for_each.is_some()))
                {
                    s.state = StepState::Dispatched;
                    s.job_id = Some(step_ref(&run, s).job_id());
                    s.dispatched_at_ms = Some(now);
                    to_add.push(job_for(&run, &workflow, s)?);
                    events.push((Some((s.step.clone(), s.item)), "dispatched".into(), None));
                }
            }
            let failed_on_release = inserted.iter().find(|s| s.state == StepState::Failed);
            if let Some(f) = failed_on_release {
                run.state = RunState::Failed;
                run.error = Some(format!(
                    "step {} failed: {}",
                    f.step,
                    f.error.as_deref().unwrap_or("failed")
                ));
            } else if all_done(&workflow, &steps, &inserted) {
                run.state = RunState::Completed;
                run.output = Some(final_output(&workflow, &steps, &inserted));
            }
        }
        if run.state != RunState::Running {
            run.finished_at_ms = Some(now);
            events.push((None, run.state.as_str().into(), run.error.clone()));
            report.finished.push(run.state);
        }
    } else if run.state == RunState::Cancelled {
        // Jobs of a cancelled run that have not started are removed.
        for &i in &dispatched {
            let s = &mut steps[i];
            if s.state == StepState::Dispatched {
                if let Some(job) = &s.job_id {
                    let queue = QueueName::new(s.queue.as_str())?;
                    if crate::admin::remove_job(conn, &queue, job).await.is_ok() {
                        s.state = StepState::Cancelled;
                        s.finished_at_ms = Some(now);
                        events.push((Some((s.step.clone(), s.item)), "cancelled".into(), None));
                        changed.push(i);
                    }
                }
            }
        }
        for (i, s) in steps.iter_mut().enumerate() {
            if s.state == StepState::Waiting {
                s.state = StepState::Cancelled;
                s.finished_at_ms = Some(now);
                events.push((Some((s.step.clone(), s.item)), "cancelled".into(), None));
                changed.push(i);
            }
        }
    }

    // 4. Write it all, in this one transaction.
    changed.sort_unstable();
    changed.dedup();
    for &i in &changed {
        update_step(&mut tx, id, &steps[i]).await?;
    }
    for s in &inserted {
        insert_step(&mut tx, id, s).await?;
        if s.state == StepState::Dispatched {
            update_step(&mut tx, id, s).await?;
        }
    }
    sqlx::query(
        "UPDATE workflow_runs SET state = $2, output = $3, error = $4, started_at_ms = $5, \
         finished_at_ms = $6, deadline_ms = $7, updated_at_ms = $8 WHERE id = $1",
    )
    .bind(id)
    .bind(run.state.as_str())
    .bind(run.output.as_ref().map(json_text))
    .bind(run.error.as_deref())
    .bind(
        run.started_at_ms
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
    )
    .bind(
        run.finished_at_ms
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
    )
    .bind(
        run.deadline_ms
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
    )
    .bind(i64::try_from(now).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    for (step, state, detail) in &events {
        let step = step.as_ref().map(|(s, i)| (s.as_str(), *i));
        insert_event(&mut tx, now, id, &kind, step, state, detail.as_deref()).await?;
    }
    tx.commit().await?;

    for (queue, job) in to_remove {
        let queue = QueueName::new(queue)?;
        if let Err(e) = crate::admin::remove_job(conn, &queue, &job).await {
            tracing::debug!(job, error = %e, "job of a timed-out run not removed (it may be running)");
        }
    }

    // 5. Add the jobs (idempotent: their ids are fixed by the commit).
    let mut by_queue: BTreeMap<String, Vec<NewJob>> = BTreeMap::new();
    for d in to_add {
        by_queue.entry(d.queue).or_default().push(d.job);
    }
    for (queue, jobs) in by_queue {
        let queue = QueueName::new(queue)?;
        for chunk in jobs.chunks(crate::producer::MAX_BULK_JOBS) {
            enqueue_bulk(conn, &queue, chunk).await?;
            report.dispatched += chunk.len();
        }
    }
    Ok(true)
}

/// Whether a run of this type may start now.
async fn slot_free(
    tx: &mut AnyConnection,
    workflow: &Workflow,
    backend: StoreBackend,
) -> Result<bool> {
    let Some(max) = workflow.definition().max_concurrent_runs else {
        return Ok(true);
    };
    if backend == StoreBackend::Postgres {
        // Orchestrators promoting runs of one type take turns.
        sqlx::query("SELECT kind FROM workflow_types WHERE kind = $1 FOR UPDATE")
            .bind(workflow.kind())
            .fetch_optional(&mut *tx)
            .await?;
    }
    let running: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM workflow_runs WHERE kind = $1 AND state = 'running'",
    )
    .bind(workflow.kind())
    .fetch_one(&mut *tx)
    .await?;
    Ok(running < i64::from(max))
}

fn step_ref(run: &RunRecord, s: &StepRecord) -> StepRef {
    StepRef {
        run: run.id.clone(),
        step: s.step.clone(),
        item: s.item,
        attempt: s.attempt,
    }
}

/// The job of one unit: its rendered input with the workflow context.
fn job_for(run: &RunRecord, workflow: &Workflow, s: &StepRecord) -> Result<Dispatch> {
    let def = workflow
        .step(&s.step)
        .ok_or_else(|| QueueError::StoreData(format!("run {}: unknown step {}", run.id, s.step)))?;
    let r = step_ref(run, s);
    let mut data = match s.input.clone() {
        Some(Value::Object(m)) => m,
        Some(other) => {
            let mut m = Map::new();
            m.insert("input".into(), other);
            m
        }
        None => Map::new(),
    };
    let mut ctx = json!({
        "run": run.id,
        "type": run.kind,
        "step": s.step,
        "attempt": s.attempt,
        "idempotency_key": r.idempotency_key(),
    });
    if let Some(i) = s.item {
        ctx["item"] = json!(i);
    }
    if let Some(c) = &s.checkpoint {
        ctx["checkpoint"] = c.clone();
    }
    if let Some(t) = def.timeout_ms {
        ctx["timeout_ms"] = json!(t);
    }
    data.insert(WORKFLOW_FIELD.into(), ctx);
    let keep = Some(Retention::Policy(RetentionPolicy {
        age: Some(JOB_RETENTION_SECS),
        count: None,
    }));
    Ok(Dispatch {
        queue: s.queue.clone(),
        job: NewJob {
            name: def.job_name().to_string(),
            data: Value::Object(data),
            opts: JobOptions {
                job_id: Some(r.job_id()),
                attempts: def.attempts,
                backoff: def.backoff,
                remove_on_complete: keep,
                remove_on_fail: keep,
                ..JobOptions::default()
            },
        },
    })
}

/// The output of a step as its dependents see it: a plain step's output,
/// or a fan-out step's list of item outputs (its fan-in row's output).
fn output_of(steps: &[StepRecord], inserted: &[StepRecord], step: &str) -> Option<Value> {
    steps
        .iter()
        .chain(inserted)
        .find(|s| s.step == step && s.item.is_none() && s.state == StepState::Completed)
        .map(|s| s.output.clone().unwrap_or(Value::Null))
}

/// Completes fan-ins whose items are all done, and creates the units of
/// steps whose dependencies are all done.
fn release(
    run: &RunRecord,
    workflow: &Workflow,
    steps: &mut [StepRecord],
    changed: &mut Vec<usize>,
    inserted: &mut Vec<StepRecord>,
    events: &mut Vec<Event>,
    now: u64,
) {
    // Fan-ins: the step's own row completes with its items' outputs.
    let mut items: HashMap<&str, Vec<ItemState>> = HashMap::new();
    for s in steps.iter() {
        if let Some(i) = s.item {
            items
                .entry(s.step.as_str())
                .or_default()
                .push((i, s.state, s.output.clone()));
        }
    }
    let mut fan_ins = Vec::new();
    for (idx, s) in steps.iter().enumerate() {
        let is_fan_in = s.item.is_none()
            && s.state == StepState::Waiting
            && workflow.step(&s.step).is_some_and(|d| d.for_each.is_some());
        if !is_fan_in {
            continue;
        }
        let mut list = items.get(s.step.as_str()).cloned().unwrap_or_default();
        // (A fan-out over no items completes when it is made.)
        if !list.is_empty() && list.iter().all(|(_, st, _)| *st == StepState::Completed) {
            list.sort_by_key(|(i, _, _)| *i);
            let outputs: Vec<Value> = list
                .into_iter()
                .map(|(_, _, o)| o.unwrap_or(Value::Null))
                .collect();
            fan_ins.push((idx, Value::Array(outputs)));
        }
    }
    for (idx, output) in fan_ins {
        let s = &mut steps[idx];
        s.state = StepState::Completed;
        s.output = Some(output);
        s.finished_at_ms = Some(now);
        events.push((Some((s.step.clone(), None)), "completed".into(), None));
        changed.push(idx);
    }
    // Steps with no units yet whose dependencies have all completed.
    for step_id in workflow.order() {
        if steps
            .iter()
            .chain(inserted.iter())
            .any(|s| &s.step == step_id)
        {
            continue;
        }
        let Some(def) = workflow.step(step_id) else {
            continue;
        };
        let deps_done = def
            .depends_on
            .iter()
            .all(|d| output_of(steps, inserted, d).is_some());
        if !deps_done {
            continue;
        }
        let (units, mut new_events) = units_for(run, def, steps, inserted, now);
        events.append(&mut new_events);
        inserted.extend(units);
    }
}

type Event = (Option<(String, Option<u64>)>, String, Option<String>);
/// A fan-out item: its position, state and output.
type ItemState = (u64, StepState, Option<Value>);

/// The units of a step whose dependencies are done: one, or a fan-in and
/// one per item; a single failed unit when its input cannot be rendered.
fn units_for(
    run: &RunRecord,
    def: &super::StepDefinition,
    steps: &[StepRecord],
    inserted: &[StepRecord],
    now: u64,
) -> (Vec<StepRecord>, Vec<Event>) {
    let step_id = &def.id;
    let lookup = |id: &str| output_of(steps, inserted, id);
    let scope = Scope {
        input: &run.input,
        outputs: &lookup,
        item: None,
        run_id: &run.id,
        run_type: &run.kind,
    };
    let failed = |why: String| {
        let mut u = unit(step_id, None, &def.queue, now);
        u.state = StepState::Failed;
        u.error = Some(why.clone());
        u.finished_at_ms = Some(now);
        (
            vec![u],
            vec![(
                Some((step_id.clone(), None)),
                "failed".to_string(),
                Some(why),
            )],
        )
    };
    let Some(each) = &def.for_each else {
        return match template::render(&def.input, &scope) {
            Ok(input) => {
                let mut u = unit(step_id, None, &def.queue, now);
                u.input = Some(input);
                (
                    vec![u],
                    vec![(Some((step_id.clone(), None)), "waiting".into(), None)],
                )
            }
            Err(e) => failed(format!("input: {e}")),
        };
    };
    let list = match template::render(&Value::String(each.clone()), &scope) {
        Ok(Value::Array(list)) if list.len() <= super::MAX_FAN_OUT => list,
        Ok(Value::Array(list)) => {
            return failed(format!(
                "for_each gave {} items; at most {} are allowed",
                list.len(),
                super::MAX_FAN_OUT
            ));
        }
        Ok(other) => return failed(format!("for_each must give a list, got {}", short(&other))),
        Err(e) => return failed(format!("for_each: {e}")),
    };
    let mut units = Vec::with_capacity(list.len() + 1);
    // The fan-in row; with no items it completes at once.
    let mut fan_in = unit(step_id, None, &def.queue, now);
    if list.is_empty() {
        fan_in.state = StepState::Completed;
        fan_in.output = Some(Value::Array(Vec::new()));
        fan_in.finished_at_ms = Some(now);
    }
    units.push(fan_in);
    for (i, item) in list.iter().enumerate() {
        let item_scope = Scope {
            item: Some((item, i)),
            ..scope
        };
        match template::render(&def.input, &item_scope) {
            Ok(input) => {
                let mut u = unit(step_id, Some(i as u64), &def.queue, now);
                u.input = Some(input);
                units.push(u);
            }
            Err(e) => return failed(format!("item {i}: input: {e}")),
        }
    }
    let event = (
        Some((step_id.clone(), None)),
        "waiting".to_string(),
        Some(format!("fan-out over {} item(s)", list.len())),
    );
    (units, vec![event])
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 80 {
        let cut = text
            .char_indices()
            .map(|(i, _)| i)
            .take_while(|i| *i <= 80)
            .last()
            .unwrap_or(0);
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

fn all_done(workflow: &Workflow, steps: &[StepRecord], inserted: &[StepRecord]) -> bool {
    workflow
        .order()
        .iter()
        .all(|id| output_of(steps, inserted, id).is_some())
}

/// The outputs of the steps nothing depends on, by step id.
fn final_output(workflow: &Workflow, steps: &[StepRecord], inserted: &[StepRecord]) -> Value {
    let defs = &workflow.definition().steps;
    let mut out = Map::new();
    for d in defs {
        if !defs.iter().any(|o| o.depends_on.contains(&d.id)) {
            out.insert(
                d.id.clone(),
                output_of(steps, inserted, &d.id).unwrap_or(Value::Null),
            );
        }
    }
    Value::Object(out)
}

/// How long the orchestrator waits between ticks when nothing happened.
pub const IDLE_TICK: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip() {
        for (step, item, attempt) in [
            ("fetch", None, 1),
            ("per-item-x", Some(17), 3),
            ("a-b-c", None, 12),
        ] {
            let r = StepRef {
                run: "0123456789abcdef0123456789abcdef".into(),
                step: step.into(),
                item,
                attempt,
            };
            let id = r.job_id();
            crate::names::validate_custom_job_id(&id).unwrap();
            assert_eq!(StepRef::from_job_id(&id), Some(r));
        }
        assert_eq!(StepRef::from_job_id("42"), None);
        assert_eq!(StepRef::from_job_id("wf-short-x-1"), None);
    }

    #[test]
    fn idempotency_keys_are_run_step_attempt() {
        let r = StepRef {
            run: "r".into(),
            step: "s".into(),
            item: None,
            attempt: 2,
        };
        assert_eq!(r.idempotency_key(), "r:s:2");
        assert_eq!(StepRef { item: Some(4), ..r }.idempotency_key(), "r:s[4]:2");
    }
}
