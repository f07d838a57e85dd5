//! The real BullMQ Node client, pinned in `compat/package.json`.
//!
//! Scenario scripts live in `compat/scenarios/`. Each takes its parameters as
//! JSON in the `SCENARIO` environment variable (plus `REDIS_URL`) and prints
//! exactly one JSON document on stdout as its last line.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::process::{ChildGuard, workspace_root};

/// `compat/`, where `npm ci` installed the pinned BullMQ client.
pub fn compat_dir() -> PathBuf {
    workspace_root().join("compat")
}

fn script_path(script: &str) -> PathBuf {
    let dir = compat_dir();
    assert!(
        dir.join("node_modules/bullmq/package.json").exists(),
        "compat/node_modules is missing: run `npm ci` in compat/ (.ci/run does this)"
    );
    dir.join("scenarios").join(script)
}

fn command(script: &str, redis_url: &str, params: &Value) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(script_path(script))
        .current_dir(compat_dir())
        .env("REDIS_URL", redis_url)
        .env("SCENARIO", params.to_string());
    cmd
}

/// Runs a scenario to completion and returns the JSON it printed.
///
/// # Panics
///
/// If the script fails, exceeds `deadline`, or prints no JSON.
pub async fn run(script: &str, redis_url: &str, params: &Value, deadline: Duration) -> Value {
    let mut cmd = tokio::process::Command::from(command(script, redis_url, params));
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(deadline, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("node {script} did not finish within {deadline:?}"))
        .unwrap_or_else(|e| panic!("cannot run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node {script} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    last_json_line(&stdout)
        .unwrap_or_else(|| panic!("node {script} printed no JSON:\n{stdout}\nstderr: {stderr}"))
}

/// Starts a long-running scenario (a Node worker, say) in the background.
/// Its stdout and stderr go to files in `log_dir` for post-mortems.
pub fn spawn(
    script: &str,
    redis_url: &str,
    params: &Value,
    log_dir: &std::path::Path,
) -> ChildGuard {
    let stem = script.trim_end_matches(".mjs");
    let out = std::fs::File::create(log_dir.join(format!("{stem}.out"))).expect("log file");
    let err = std::fs::File::create(log_dir.join(format!("{stem}.err"))).expect("log file");
    let child = command(script, redis_url, params)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node {script}: {e}"));
    ChildGuard::new(format!("node {script}"), child)
}

/// The last line of `text` that parses as JSON.
pub fn last_json_line(text: &str) -> Option<Value> {
    text.lines()
        .rev()
        .find_map(|line| serde_json::from_str(line.trim()).ok())
}
