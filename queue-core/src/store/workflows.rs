//! Workflow types, runs, their steps and events, in the durable store.
//!
//! The orchestrator's own transitions (dispatch, record a step's result,
//! release dependents, finish a run) are in `workflow::engine`, each run's
//! in one transaction; this module holds what people and the API do:
//! register types, start, list, show, cancel and retry runs, read events.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, ms_from_db, ms_to_db};
use crate::error::{QueueError, Result};
use crate::workflow::{Workflow, WorkflowDefinition};

/// Most runs or events one page holds.
pub const MAX_WORKFLOW_PAGE: u32 = 1_000;

/// Where a run stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting for a slot (`max_concurrent_runs`).
    Pending,
    /// Steps are being run.
    Running,
    /// Every step completed.
    Completed,
    /// A step failed, or the run timed out; retry runs its failed steps.
    Failed,
    /// Cancelled on request.
    Cancelled,
}

/// Where a step (or one item of a fan-out) stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// Ready, about to be dispatched (or, for a fan-in, waiting for its
    /// items).
    Waiting,
    /// Its job is in Redis for a worker.
    Dispatched,
    /// Done; its output is stored.
    Completed,
    /// Its job failed after all its tries.
    Failed,
    /// The run was cancelled or timed out before it finished.
    Cancelled,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// As stored.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl std::str::FromStr for $t {
            type Err = QueueError;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok(Self::$v),)*
                    other => Err(QueueError::StoreData(format!(
                        "unknown {} {other:?}", stringify!($t)
                    ))),
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(RunState { Pending => "pending", Running => "running", Completed => "completed", Failed => "failed", Cancelled => "cancelled" });
text_enum!(StepState { Waiting => "waiting", Dispatched => "dispatched", Completed => "completed", Failed => "failed", Cancelled => "cancelled" });

/// A registered workflow type.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorkflowType {
    /// The checked definition.
    pub workflow: Workflow,
    /// Grows with every change.
    pub version: u64,
    /// When it last changed (ms).
    pub updated_at_ms: u64,
    /// Who changed it.
    pub updated_by: String,
}

/// A run, without its steps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// The run id (32 hex digits).
    pub id: String,
    /// Its workflow type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it stands.
    pub state: RunState,
    /// What it was started with.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub input: Value,
    /// The outputs of its last steps (those nothing depends on), by step.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub output: Option<Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The key it was started with, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When it was started (ms).
    pub created_at_ms: u64,
    /// When its first step could run (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When it ended (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// When it times out (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// One step of a run (or one item of a fan-out step).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// The step id.
    pub step: String,
    /// The fan-out item (0, 1, ...), or absent for the step itself (for a
    /// fan-out step: its fan-in, whose output is the list of the items').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<u64>,
    /// Where it stands.
    pub state: StepState,
    /// Dispatch generation: 1, and one more for every retry of the run.
    pub attempt: u64,
    /// Its queue.
    pub queue: String,
    /// Its current job's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The job data it was given (the rendered input).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub input: Option<Value>,
    /// What it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub output: Option<Value>,
    /// The last checkpoint its handler saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub checkpoint: Option<Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tries BullMQ made of its current job.
    pub tries: u64,
    /// When it became ready (ms).
    pub ready_at_ms: u64,
    /// When its job was added (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatched_at_ms: Option<u64>,
    /// When it finished (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

/// A run with its steps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Its steps, in dependency order, items after their step.
    pub steps: Vec<StepRecord>,
}

/// A state change of a run or a step.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowEvent {
    /// Grows with every event: resume a feed after it.
    pub id: i64,
    /// When (ms).
    pub at_ms: u64,
    /// The run.
    pub run_id: String,
    /// The run's workflow type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The step, for step events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The fan-out item, for item events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<u64>,
    /// The new state.
    pub state: String,
    /// More about it (an error, a reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub(crate) fn json_text(v: &Value) -> String {
    v.to_string()
}

pub(crate) fn parse_json(field: &str, text: Option<String>) -> Result<Option<Value>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| QueueError::StoreData(format!("{field} is not JSON: {e}")))
    })
    .transpose()
}

pub(crate) fn item_from_db(item: i64) -> Option<u64> {
    u64::try_from(item).ok()
}

pub(crate) fn item_to_db(item: Option<u64>) -> i64 {
    item.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX))
}

pub(crate) const RUN_COLUMNS: &str = "id, kind, state, input, output, error, idempotency_key, \
     created_at_ms, started_at_ms, finished_at_ms, deadline_ms";

pub(crate) fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
    let state: String = row.try_get("state")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        state: state.parse()?,
        input: parse_json("input", Some(row.try_get("input")?))?.unwrap_or(Value::Null),
        output: parse_json("output", row.try_get("output")?)?,
        error: row.try_get("error")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at_ms: ms_from_db(row.try_get("created_at_ms")?),
        started_at_ms: row
            .try_get::<Option<i64>, _>("started_at_ms")?
            .map(ms_from_db),
        finished_at_ms: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(ms_from_db),
        deadline_ms: row
            .try_get::<Option<i64>, _>("deadline_ms")?
            .map(ms_from_db),
    })
}

pub(crate) const STEP_COLUMNS: &str = "step, item, state, attempt, queue, job_id, input, output, \
     checkpoint, error, tries, ready_at_ms, dispatched_at_ms, finished_at_ms";

pub(crate) fn step_from_row(row: &AnyRow) -> Result<StepRecord> {
    let state: String = row.try_get("state")?;
    Ok(StepRecord {
        step: row.try_get("step")?,
        item: item_from_db(row.try_get("item")?),
        state: state.parse()?,
        attempt: ms_from_db(row.try_get("attempt")?),
        queue: row.try_get("queue")?,
        job_id: row.try_get("job_id")?,
        input: parse_json("input", row.try_get("input")?)?,
        output: parse_json("output", row.try_get("output")?)?,
        checkpoint: parse_json("checkpoint", row.try_get("checkpoint")?)?,
        error: row.try_get("error")?,
        tries: ms_from_db(row.try_get("tries")?),
        ready_at_ms: ms_from_db(row.try_get("ready_at_ms")?),
        dispatched_at_ms: row
            .try_get::<Option<i64>, _>("dispatched_at_ms")?
            .map(ms_from_db),
        finished_at_ms: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(ms_from_db),
    })
}

fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Records an event inside `conn`'s transaction.
pub(crate) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    at_ms: u64,
    run_id: &str,
    kind: &str,
    step: Option<(&str, Option<u64>)>,
    state: &str,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO workflow_events (at_ms, run_id, kind, step, item, state, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(ms_to_db(at_ms))
    .bind(run_id)
    .bind(kind)
    .bind(step.map(|(s, _)| s))
    .bind(
        step.and_then(|(_, i)| i)
            .map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
    )
    .bind(state)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Registers `workflow` (or replaces its definition); answers its new
    /// version. Runs already started keep the definition they started
    /// with.
    pub async fn put_workflow_type(
        &self,
        workflow: &Workflow,
        actor: &str,
        now_ms: u64,
    ) -> Result<u64> {
        let definition = serde_json::to_string(workflow.definition())
            .map_err(|e| QueueError::StoreData(format!("cannot encode a workflow: {e}")))?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO workflow_types (kind, definition, version, updated_at_ms, updated_by) \
             VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (kind) DO UPDATE SET definition = excluded.definition, \
             version = workflow_types.version + 1, updated_at_ms = excluded.updated_at_ms, \
             updated_by = excluded.updated_by \
             RETURNING version",
        )
        .bind(workflow.kind())
        .bind(definition)
        .bind(ms_to_db(now_ms))
        .bind(actor)
        .fetch_one(self.pool())
        .await?;
        Ok(ms_from_db(version))
    }

    /// Registers `workflow` unless the store already holds this exact
    /// definition (so restarts do not bump versions); answers the new
    /// version when it wrote one.
    pub async fn ensure_workflow_type(
        &self,
        workflow: &Workflow,
        actor: &str,
        now_ms: u64,
    ) -> Result<Option<u64>> {
        if let Some(stored) = self.get_workflow_type(workflow.kind()).await? {
            if stored.workflow.definition() == workflow.definition() {
                return Ok(None);
            }
        }
        self.put_workflow_type(workflow, actor, now_ms)
            .await
            .map(Some)
    }

    /// One registered type.
    pub async fn get_workflow_type(&self, kind: &str) -> Result<Option<StoredWorkflowType>> {
        let row = sqlx::query(
            "SELECT kind, definition, version, updated_at_ms, updated_by FROM workflow_types WHERE kind = $1",
        )
        .bind(kind)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(type_from_row).transpose()
    }

    /// Every registered type, by name.
    pub async fn list_workflow_types(&self) -> Result<Vec<StoredWorkflowType>> {
        let rows = sqlx::query(
            "SELECT kind, definition, version, updated_at_ms, updated_by FROM workflow_types \
             ORDER BY kind LIMIT $1",
        )
        .bind(i64::from(MAX_WORKFLOW_PAGE))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(type_from_row).collect()
    }

    /// Starts a run of `workflow` with `input`; the orchestrator takes it
    /// from there. With an idempotency key, a second start with the same
    /// key and input answers the first run (`false`: not new); the same
    /// key with another input is refused.
    pub async fn start_run(
        &self,
        workflow: &Workflow,
        input: &Value,
        idempotency_key: Option<&str>,
        now_ms: u64,
    ) -> Result<(RunRecord, bool)> {
        if let Some(key) = idempotency_key {
            if let Some(existing) = self.run_by_key(workflow.kind(), key).await? {
                return same_input(existing, input).map(|r| (r, false));
            }
        }
        let definition = serde_json::to_string(workflow.definition())
            .map_err(|e| QueueError::StoreData(format!("cannot encode a workflow: {e}")))?;
        let id = new_run_id();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO workflow_runs (id, kind, definition, state, input, idempotency_key, \
             created_at_ms, updated_at_ms) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(workflow.kind())
        .bind(definition)
        .bind(json_text(input))
        .bind(idempotency_key)
        .bind(ms_to_db(now_ms))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // A concurrent start with the same key won.
            tx.rollback().await?;
            let key = idempotency_key.unwrap_or_default();
            let existing = self
                .run_by_key(workflow.kind(), key)
                .await?
                .ok_or_else(|| {
                    QueueError::StoreData("a run vanished after a conflicting start".into())
                })?;
            return same_input(existing, input).map(|r| (r, false));
        }
        insert_event(&mut tx, now_ms, &id, workflow.kind(), None, "pending", None).await?;
        tx.commit().await?;
        let run = self.get_run(&id).await?.ok_or_else(|| {
            QueueError::StoreData("a run vanished right after it was started".into())
        })?;
        Ok((run.run, true))
    }

    async fn run_by_key(&self, kind: &str, key: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE kind = $1 AND idempotency_key = $2"
        ))
        .bind(kind)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// A run with its steps.
    pub async fn get_run(&self, id: &str) -> Result<Option<RunDetail>> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let run = run_from_row(&row)?;
        let rows = sqlx::query(&format!(
            "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE run_id = $1 ORDER BY ready_at_ms, step, item"
        ))
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let steps = rows.iter().map(step_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Some(RunDetail { run, steps }))
    }

    /// Runs newest first, of one type and/or in one state; `before` (a run
    /// id from the previous page) continues the list.
    pub async fn list_runs(
        &self,
        kind: Option<&str>,
        state: Option<RunState>,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Vec<RunRecord>> {
        let (before_ms, before_id) = match before {
            Some(id) => {
                let at: Option<i64> =
                    sqlx::query_scalar("SELECT created_at_ms FROM workflow_runs WHERE id = $1")
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await?;
                (at.unwrap_or(i64::MAX), id.to_string())
            }
            None => (i64::MAX, String::new()),
        };
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs \
             WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR state = $2) \
             AND (created_at_ms < $3 OR (created_at_ms = $3 AND id < $4)) \
             ORDER BY created_at_ms DESC, id DESC LIMIT $5"
        ))
        .bind(kind.unwrap_or_default())
        .bind(state.map(RunState::as_str).unwrap_or_default())
        .bind(before_ms)
        .bind(if before.is_some() {
            before_id
        } else {
            "~".into()
        })
        .bind(i64::from(limit.clamp(1, MAX_WORKFLOW_PAGE)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Runs per state, for metrics.
    pub async fn count_runs_by_state(&self) -> Result<Vec<(RunState, u64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM workflow_runs GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok((state.parse()?, ms_from_db(r.try_get("n")?)))
            })
            .collect()
    }

    /// Asks for a run to stop: it becomes `cancelled`; the orchestrator
    /// removes its jobs that have not started and ignores the rest.
    pub async fn cancel_run(&self, id: &str, now_ms: u64) -> Result<RunRecord> {
        self.transition(
            id,
            now_ms,
            &[RunState::Pending, RunState::Running],
            RunState::Cancelled,
            "cancelled",
        )
        .await
    }

    /// Runs a failed or cancelled run again from where it stopped: its
    /// failed and cancelled steps are dispatched anew (next attempt), its
    /// completed steps are kept. The run is `pending` until the
    /// orchestrator gives it a slot (`max_concurrent_runs`).
    pub async fn retry_run(&self, id: &str, now_ms: u64) -> Result<RunRecord> {
        self.transition(
            id,
            now_ms,
            &[RunState::Failed, RunState::Cancelled],
            RunState::Pending,
            "retried",
        )
        .await
    }

    async fn transition(
        &self,
        id: &str,
        now_ms: u64,
        from: &[RunState],
        to: RunState,
        what: &str,
    ) -> Result<RunRecord> {
        let mut tx = self.begin_write().await?;
        let lock = match self.backend() {
            super::StoreBackend::Postgres => " FOR UPDATE",
            super::StoreBackend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = $1{lock}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let run = row
            .as_ref()
            .map(run_from_row)
            .transpose()?
            .ok_or_else(|| QueueError::WorkflowRunNotFound { id: id.to_string() })?;
        if !from.contains(&run.state) {
            return Err(QueueError::WorkflowRunNotInState {
                id: id.to_string(),
                actual: run.state.to_string(),
                action: if to == RunState::Cancelled {
                    "cancelled"
                } else {
                    "retried"
                },
            });
        }
        if to == RunState::Pending {
            // Units whose input could not be rendered are made again from
            // the current outputs.
            sqlx::query(
                "DELETE FROM workflow_steps WHERE run_id = $1 AND state = 'failed' AND job_id IS NULL",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            // Failed and cancelled units become ready again, next attempt.
            sqlx::query(
                "UPDATE workflow_steps SET state = 'waiting', attempt = attempt + 1, job_id = NULL, \
                 error = NULL, tries = 0, ready_at_ms = $2, dispatched_at_ms = NULL, finished_at_ms = NULL \
                 WHERE run_id = $1 AND state IN ('failed', 'cancelled')",
            )
            .bind(id)
            .bind(ms_to_db(now_ms))
            .execute(&mut *tx)
            .await?;
        }
        let finished = (to == RunState::Cancelled).then_some(ms_to_db(now_ms));
        sqlx::query(
            "UPDATE workflow_runs SET state = $2, error = NULL, finished_at_ms = $3, updated_at_ms = $4, \
             deadline_ms = CASE WHEN $5 THEN NULL ELSE deadline_ms END WHERE id = $1",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(finished)
        .bind(ms_to_db(now_ms))
        // A retried run gets its whole timeout again, from when the
        // orchestrator gives it a slot again.
        .bind(to == RunState::Pending)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            now_ms,
            id,
            &run.kind,
            None,
            to.as_str(),
            Some(what),
        )
        .await?;
        tx.commit().await?;
        self.get_run(id)
            .await?
            .map(|d| d.run)
            .ok_or_else(|| QueueError::WorkflowRunNotFound { id: id.to_string() })
    }

    /// Events after `after_id` (oldest first), of one run or all.
    pub async fn list_workflow_events(
        &self,
        after_id: i64,
        run_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkflowEvent>> {
        let rows = sqlx::query(
            "SELECT id, at_ms, run_id, kind, step, item, state, detail FROM workflow_events \
             WHERE id > $1 AND ($2 = '' OR run_id = $2) ORDER BY id LIMIT $3",
        )
        .bind(after_id)
        .bind(run_id.unwrap_or_default())
        .bind(i64::from(limit.clamp(1, MAX_WORKFLOW_PAGE)))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkflowEvent {
                    id: r.try_get("id")?,
                    at_ms: ms_from_db(r.try_get("at_ms")?),
                    run_id: r.try_get("run_id")?,
                    kind: r.try_get("kind")?,
                    step: r.try_get("step")?,
                    item: r.try_get::<Option<i64>, _>("item")?.and_then(item_from_db),
                    state: r.try_get("state")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}

fn same_input(existing: RunRecord, input: &Value) -> Result<RunRecord> {
    if existing.input == *input {
        Ok(existing)
    } else {
        Err(QueueError::IdempotencyKeyReused)
    }
}

fn type_from_row(row: &AnyRow) -> Result<StoredWorkflowType> {
    let kind: String = row.try_get("kind")?;
    let definition: String = row.try_get("definition")?;
    let def: WorkflowDefinition = serde_json::from_str(&definition)
        .map_err(|e| QueueError::StoreData(format!("workflow type {kind}: {e}")))?;
    let workflow = Workflow::new(&kind, def)
        .map_err(|e| QueueError::StoreData(format!("workflow type {kind}: {e}")))?;
    Ok(StoredWorkflowType {
        workflow,
        version: ms_from_db(row.try_get("version")?),
        updated_at_ms: ms_from_db(row.try_get("updated_at_ms")?),
        updated_by: row.try_get("updated_by")?,
    })
}
