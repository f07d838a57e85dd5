//! `drover workflows` and `drover workflow ...` as the real binary: a type
//! registered from a TOML file, runs started idempotently, listed, shown
//! step by step, cancelled and retried, with exit code 2 for bad input and
//! 1 for what is missing or in the wrong state, and every change audited.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use queue_core::store::{Store, StoreConfig};
use queue_core::{Connection, RedisSettings, workflow};
use support::*;
use testkit::RedisServer;

const ETL: &str = r#"
[[steps]]
id = "fetch"
queue = "etl"
input = { url = "{{ input.url }}" }

[[steps]]
id = "each"
queue = "etl"
depends_on = ["fetch"]
for_each = "{{ steps.fetch.output.parts }}"
input = { part = "{{ item }}" }
"#;

fn file(drover: &Drover, name: &str, text: &str) -> String {
    let path = drover.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs a command that must fail with `code`; answers its stderr.
async fn fails(drover: &Drover, args: &[&str], code: i32) -> String {
    let out = drover.run(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "drover {args:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[tokio::test]
async fn workflow_put_start_runs_show_cancel_and_retry_from_the_command_line() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    drover.ok(&["migrate"]).await;

    // A bad definition names the step, exits 2 and stores nothing.
    let bad = file(
        &drover,
        "bad.toml",
        "[[steps]]\nid = \"a\"\nqueue = \"q\"\n\n[[steps]]\nid = \"b\"\nqueue = \"q\"\ndepends_on = [\"zzz\"]\n",
    );
    let stderr = fails(&drover, &["workflow", "put", "etl", "--file", &bad], 2).await;
    assert!(
        stderr.contains(r#"step "b": depends on unknown step "zzz""#),
        "{stderr}"
    );
    let stderr = fails(
        &drover,
        &[
            "workflow",
            "put",
            "etl",
            "--file",
            &file(&drover, "t.toml", "[[steps]]\nid = \"a\"\n"),
        ],
        2,
    )
    .await;
    assert!(stderr.contains("line 1: missing field `queue`"), "{stderr}");
    fails(
        &drover,
        &["workflow", "put", "etl", "--file", "/nonexistent.json"],
        2,
    )
    .await;
    assert_eq!(
        drover.json(&["workflows", "--json"]).await,
        serde_json::json!([])
    );

    let etl = file(&drover, "etl.toml", ETL);
    let out = drover.ok(&["workflow", "put", "etl", "--file", &etl]).await;
    assert_eq!(out.trim(), "registered workflow type etl (version 1)");
    let out = drover.ok(&["workflow", "put", "etl", "--file", &etl]).await;
    assert_eq!(out.trim(), "replaced workflow type etl (version 2)");
    let table = drover.ok(&["workflows"]).await;
    let row = table.lines().find(|l| l.starts_with("etl ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..4], ["etl", "2", "2", "etl"], "{table}");
    let types = drover.json(&["workflows", "--json"]).await;
    assert_eq!(
        types[0]["definition"]["steps"][1]["for_each"],
        "{{ steps.fetch.output.parts }}"
    );

    // Starting: the id; the same key and input, the same run.
    let start = |input: &'static str, key: &'static str| {
        let args = [
            "workflow",
            "start",
            "etl",
            "--input",
            input,
            "--idempotency-key",
            key,
        ];
        let drover = &drover;
        async move { drover.ok(&args).await.trim().to_string() }
    };
    let id = start(r#"{"url":"https://example.com"}"#, "nightly-1").await;
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(
        start(r#"{"url":"https://example.com"}"#, "nightly-1").await,
        id
    );
    let args = [
        "workflow",
        "start",
        "etl",
        "--input",
        r#"{"url":"x"}"#,
        "--idempotency-key",
        "nightly-1",
    ];
    let stderr = fails(&drover, &args, 1).await;
    assert!(
        stderr.contains("already used for a different request"),
        "{stderr}"
    );
    let stderr = fails(&drover, &["workflow", "start", "nope"], 1).await;
    assert!(stderr.contains(r#"no workflow type "nope""#), "{stderr}");
    fails(&drover, &["workflow", "start", "etl", "--input", "[1]"], 2).await;
    fails(
        &drover,
        &["workflow", "start", "etl", "--input", "{nope"],
        2,
    )
    .await;
    fails(
        &drover,
        &["workflow", "start", "etl", "--idempotency-key", ""],
        2,
    )
    .await;
    let other = drover
        .ok(&["workflow", "start", "etl", "--input", r#"{"url":"u"}"#])
        .await;

    // Listing, newest first, filtered.
    let runs = drover
        .json(&["workflow", "runs", "--type", "etl", "--json"])
        .await;
    assert_eq!(runs.as_array().unwrap().len(), 2);
    let table = drover.ok(&["workflow", "runs", "--state", "pending"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains(" pending ")),
        "{table}"
    );
    let one = drover
        .json(&["workflow", "runs", "--limit", "1", "--json"])
        .await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    fails(&drover, &["workflow", "runs", "--state", "sleeping"], 2).await;
    fails(&drover, &["workflow", "runs", "--limit", "0"], 2).await;
    fails(&drover, &["workflow", "runs", "--type", "nope"], 1).await;

    // One orchestrator tick dispatches `fetch`; `show` lists it.
    let settings = StoreConfig::default()
        .resolve(&drover.dir.path().join("data"))
        .unwrap();
    let store = Store::connect(&settings).await.unwrap();
    let conn = Connection::connect(RedisSettings::for_url(server.url()).unwrap())
        .await
        .unwrap();
    workflow::tick(&conn, &store, 10).await.unwrap();
    store.close().await;
    let shown = drover.ok(&["workflow", "show", &id]).await;
    assert!(
        shown.starts_with(&format!("run {id} (etl): running\n")),
        "{shown}"
    );
    let step = shown.lines().find(|l| l.starts_with("fetch ")).unwrap();
    let cells: Vec<&str> = step.split_whitespace().collect();
    assert_eq!(
        cells[..5],
        ["fetch", "-", "dispatched", "1", "0"],
        "{shown}"
    );
    let detail = drover.json(&["workflow", "show", &id, "--json"]).await;
    assert_eq!(detail["steps"][0]["job_id"], format!("wf-{id}-fetch-x-1"));
    assert_eq!(detail["steps"][0]["input"]["url"], "https://example.com");
    fails(&drover, &["workflow", "show", "nope"], 1).await;

    // Cancel and retry follow the run's state.
    let out = drover.ok(&["workflow", "cancel", &id]).await;
    assert_eq!(out.trim(), format!("cancelled run {id} (etl)"));
    let stderr = fails(&drover, &["workflow", "cancel", &id], 1).await;
    assert!(
        stderr.contains("is cancelled, so it cannot be cancelled"),
        "{stderr}"
    );
    let out = drover.ok(&["workflow", "retry", &id]).await;
    assert!(
        out.starts_with(&format!("retrying run {id} (etl)")),
        "{out}"
    );
    fails(&drover, &["workflow", "retry", other.trim()], 1).await;
    fails(&drover, &["workflow", "cancel", "nope"], 1).await;

    // Every change is audited as the command line's user.
    let store = Store::connect(&settings).await.unwrap();
    let audit = store.list_audit(100, None).await.unwrap();
    let actions: Vec<(&str, bool)> = audit
        .iter()
        .rev()
        .map(|r| (r.action.as_str(), r.outcome == "ok"))
        .collect();
    assert_eq!(
        actions,
        [
            ("workflow.put", true),
            ("workflow.put", true),
            ("workflow.cancel", true),
            ("workflow.cancel", false),
            ("workflow.retry", true),
            ("workflow.retry", false),
            ("workflow.cancel", false),
        ]
    );
    assert!(
        audit
            .iter()
            .all(|r| r.actor.starts_with("cli:") && r.queue.is_none())
    );
    store.close().await;
}
