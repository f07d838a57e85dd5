//! `drover workflows` and `drover workflow put|start|runs|show|cancel|retry`:
//! workflow types and runs in the durable store. They need no Redis: the
//! orchestrator of `drover scheduler` (or `drover dev`) takes a started
//! run from the store, and removes the jobs of a cancelled one.

use std::path::Path;

use queue_core::idempotency::MAX_IDEMPOTENCY_KEY_BYTES;
use queue_core::store::{RunState, StepRecord, Store, StoredWorkflowType};
use queue_core::workflow::{Workflow, WorkflowDefinition};
use queue_core::{QueueError, now_ms};
use serde_json::{Value, json};

use super::store;
use crate::cli::{
    WorkflowCommand, WorkflowPutArgs, WorkflowRunArgs, WorkflowRunsArgs, WorkflowStartArgs,
};
use crate::config::FileConfig;
use crate::exit::UsageError;
use crate::output::{self, Table, maybe_timestamp, timestamp, truncate};

/// `drover workflows`.
pub(crate) async fn types(config: &FileConfig, as_json: bool) -> anyhow::Result<()> {
    let store = open(config).await?;
    let types = store.list_workflow_types().await;
    store.close().await;
    let types = types?;
    if as_json {
        let all: Vec<Value> = types.iter().map(type_json).collect();
        return output::json(&all);
    }
    if types.is_empty() {
        output::line("no workflow types; `drover workflow put TYPE --file FILE` registers one");
        return Ok(());
    }
    let mut table = Table::new(["TYPE", "VERSION", "STEPS", "QUEUES", "UPDATED", "BY"]);
    for t in &types {
        let steps = &t.workflow.definition().steps;
        let mut queues: Vec<&str> = steps.iter().map(|s| s.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        table.row(vec![
            t.workflow.kind().to_string(),
            t.version.to_string(),
            steps.len().to_string(),
            truncate(&queues.join(","), 40),
            timestamp(t.updated_at_ms),
            t.updated_by.clone(),
        ]);
    }
    table.print();
    Ok(())
}

/// A type as the API shows it.
fn type_json(t: &StoredWorkflowType) -> Value {
    json!({
        "type": t.workflow.kind(),
        "version": t.version,
        "updated_at_ms": t.updated_at_ms,
        "updated_by": t.updated_by,
        "definition": t.workflow.definition(),
    })
}

/// `drover workflow ...`.
pub(crate) async fn command(config: &FileConfig, command: &WorkflowCommand) -> anyhow::Result<()> {
    match command {
        WorkflowCommand::Put(args) => put(config, args).await,
        WorkflowCommand::Start(args) => start(config, args).await,
        WorkflowCommand::Runs(args) => runs(config, args).await,
        WorkflowCommand::Show(args) => show(config, args).await,
        WorkflowCommand::Cancel(args) => act(config, &args.run, Act::Cancel).await,
        WorkflowCommand::Retry(args) => act(config, &args.run, Act::Retry).await,
    }
}

async fn open(config: &FileConfig) -> anyhow::Result<Store> {
    store::open(&config.store_settings()?, false).await
}

/// Reads and checks a definition: JSON, or TOML for a `.toml` file.
fn read_definition(path: &Path, kind: &str) -> Result<Workflow, UsageError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read {shown}: {e}")))?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let definition: WorkflowDefinition = if is_toml {
        toml::from_str(&text).map_err(|e| {
            let before = e.span().and_then(|at| text.get(..at.start));
            let line = before.map_or(1, |t| t.matches('\n').count() + 1);
            UsageError(format!("{shown}: line {line}: {}", e.message()))
        })?
    } else {
        serde_json::from_str(&text).map_err(|e| UsageError(format!("{shown}: {e}")))?
    };
    Workflow::new(kind, definition).map_err(|e| UsageError(format!("{shown}: {e}")))
}

#[allow(clippy::print_stdout)] // the command's output
async fn put(config: &FileConfig, args: &WorkflowPutArgs) -> anyhow::Result<()> {
    let workflow = read_definition(&args.file, &args.kind)?;
    let params = serde_json::to_value(workflow.definition())?;
    let store = open(config).await?;
    let (actor, now) = (store::cli_actor(), now_ms());
    let result = store.put_workflow_type(&workflow, &actor, now).await;
    store::audit(
        &store,
        "workflow.put",
        None,
        Some(&args.kind),
        params,
        &result,
    )
    .await;
    store.close().await;
    let version = result?;
    if args.json {
        return output::json(&json!({
            "type": workflow.kind(),
            "version": version,
            "updated_at_ms": now,
            "updated_by": actor,
            "definition": workflow.definition(),
        }));
    }
    // Types are never deleted, so version 1 is a new one.
    let what = if version == 1 {
        "registered"
    } else {
        "replaced"
    };
    println!("{what} workflow type {} (version {version})", args.kind);
    Ok(())
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // the id; a note on a replay
async fn start(config: &FileConfig, args: &WorkflowStartArgs) -> anyhow::Result<()> {
    let input: Value = serde_json::from_str(&args.input)
        .map_err(|e| UsageError(format!("--input is not JSON: {e}")))?;
    if !input.is_object() {
        return Err(UsageError("--input must be a JSON object".into()).into());
    }
    let key = args.idempotency_key.as_deref();
    if let Some(key) = key {
        check_idempotency_key(key)?;
    }
    let store = open(config).await?;
    let started = async {
        let found = store.get_workflow_type(&args.kind).await?;
        let kind = args.kind.clone();
        let workflow = found
            .ok_or(QueueError::WorkflowTypeNotFound { kind })?
            .workflow;
        store.start_run(&workflow, &input, key, now_ms()).await
    }
    .await;
    store.close().await;
    let (run, created) = started?;
    if !created {
        eprintln!(
            "drover: run {} was started earlier with this idempotency key",
            run.id
        );
    }
    if args.json {
        return output::json(&run);
    }
    println!("{}", run.id);
    Ok(())
}

/// The rule of the API's `Idempotency-Key`: 1 to 255 visible ASCII
/// characters.
fn check_idempotency_key(key: &str) -> Result<(), UsageError> {
    let visible = key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !visible {
        return Err(UsageError(format!(
            "--idempotency-key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"
        )));
    }
    Ok(())
}

async fn runs(config: &FileConfig, args: &WorkflowRunsArgs) -> anyhow::Result<()> {
    let state: Option<RunState> = args
        .state
        .as_deref()
        .map(|s| serde_json::from_value(Value::from(s)))
        .transpose()
        .map_err(|e| UsageError(format!("--state: {e}")))?;
    let store = open(config).await?;
    let listed = async {
        if let Some(kind) = &args.kind {
            if store.get_workflow_type(kind).await?.is_none() {
                let kind = kind.clone();
                return Err(QueueError::WorkflowTypeNotFound { kind });
            }
        }
        store
            .list_runs(args.kind.as_deref(), state, args.limit, None)
            .await
    }
    .await;
    store.close().await;
    let runs = listed?;
    if args.json {
        return output::json(&runs);
    }
    if runs.is_empty() {
        output::line("no runs");
        return Ok(());
    }
    let mut table = Table::new(["RUN", "TYPE", "STATE", "CREATED", "DURATION", "ERROR"]);
    for r in &runs {
        let took = r.started_at_ms.map(|s| span(s, r.finished_at_ms));
        table.row(vec![
            r.id.clone(),
            r.kind.clone(),
            r.state.to_string(),
            timestamp(r.created_at_ms),
            took.unwrap_or_else(|| "-".into()),
            truncate(r.error.as_deref().unwrap_or("-"), 60),
        ]);
    }
    table.print();
    Ok(())
}

async fn show(config: &FileConfig, args: &WorkflowRunArgs) -> anyhow::Result<()> {
    let store = open(config).await?;
    let found = store.get_run(&args.run).await;
    store.close().await;
    let id = args.run.clone();
    let detail = found?.ok_or(QueueError::WorkflowRunNotFound { id })?;
    if args.json {
        return output::json(&detail);
    }
    let run = &detail.run;
    output::line(format!("run {} ({}): {}", run.id, run.kind, run.state));
    output::line(format!(
        "created {}, started {}, finished {}",
        timestamp(run.created_at_ms),
        maybe_timestamp(run.started_at_ms),
        maybe_timestamp(run.finished_at_ms)
    ));
    if let Some(error) = &run.error {
        output::line(format!("error: {}", truncate(error, 200)));
    }
    if detail.steps.is_empty() {
        output::line("no step has started yet");
        return Ok(());
    }
    let mut table = Table::new([
        "STEP", "ITEM", "STATE", "ATTEMPT", "TRIES", "DURATION", "ERROR",
    ]);
    for s in &detail.steps {
        table.row(step_row(s));
    }
    table.print();
    Ok(())
}

fn step_row(s: &StepRecord) -> Vec<String> {
    // A fan-in never runs a job: it took from ready to done.
    let from = s.dispatched_at_ms.unwrap_or(s.ready_at_ms);
    let took = if s.dispatched_at_ms.is_some() || s.finished_at_ms.is_some() {
        span(from, s.finished_at_ms)
    } else {
        "-".into()
    };
    vec![
        s.step.clone(),
        s.item.map_or_else(|| "-".into(), |i| i.to_string()),
        s.state.to_string(),
        s.attempt.to_string(),
        s.tries.to_string(),
        took,
        truncate(s.error.as_deref().unwrap_or("-"), 60),
    ]
}

/// How long from `start` to `end`, or so far (with `…`) when unfinished.
fn span(start: u64, end: Option<u64>) -> String {
    match end {
        Some(end) => duration(end.saturating_sub(start)),
        None => format!("{}…", duration(now_ms().saturating_sub(start))),
    }
}

/// `450ms`, `3.2s`, `4m05s`, `2h03m`.
fn duration(ms: u64) -> String {
    let secs = ms / 1_000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}.{}s", secs, ms % 1_000 / 100),
        60_000..3_600_000 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60),
    }
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Cancel,
    Retry,
}

#[allow(clippy::print_stdout)]
async fn act(config: &FileConfig, run: &str, what: Act) -> anyhow::Result<()> {
    let store = open(config).await?;
    let (result, action) = match what {
        Act::Cancel => (store.cancel_run(run, now_ms()).await, "workflow.cancel"),
        Act::Retry => (store.retry_run(run, now_ms()).await, "workflow.retry"),
    };
    store::audit(&store, action, None, Some(run), json!({}), &result).await;
    store.close().await;
    let record = result?;
    match what {
        Act::Cancel => println!("cancelled run {} ({})", record.id, record.kind),
        Act::Retry => println!(
            "retrying run {} ({}): its failed and cancelled steps run again",
            record.id, record.kind
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(450), "450ms");
        assert_eq!(duration(3_250), "3.2s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_380_000), "2h03m");
    }
}
