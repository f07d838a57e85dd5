//! The command line as ops and scripts use it: names, output, exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use serde_json::{Value, json};
use support::*;
use testkit::RedisServer;

/// Asserts a run failed with `code` and one line on stderr containing
/// `needle`; returns that line.
fn failed_with(out: &std::process::Output, code: i32, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr:?}");
    assert!(lines[0].starts_with("drover: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr:?}");
    lines[0].to_string()
}

#[tokio::test]
async fn bad_arguments_exit_2_with_one_line() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let config = drover.dir.path().join("bad.toml");
    std::fs::write(&config, "[redis]\nurll = \"redis://x\"\n").unwrap();
    let config = config.to_string_lossy().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["enqueue", "q"], "<NAME>"),
        (
            vec!["enqueue", "q", "n", "--data", "{x"],
            "--data is not valid JSON",
        ),
        (
            vec!["enqueue", "q", "n", "--priority", "9999999"],
            "priority must be between",
        ),
        (
            vec!["enqueue", "q", "n", "--job-id", "42"],
            "must not be an integer",
        ),
        (
            vec!["enqueue", "q", "n", "--backoff", "linear:5"],
            "expected fixed:MS or exponential:MS",
        ),
        (
            vec!["enqueue", "q", "n", "--opts", r#"{"atempts":3}"#],
            "unknown field",
        ),
        (vec!["enqueue", "a:b", "n"], "must not contain ':'"),
        (
            vec!["jobs", "q", "--state", "bogus"],
            "unknown job state \"bogus\"",
        ),
        (
            vec!["jobs", "q", "--size", "5000"],
            "--size must be between 1 and 1000",
        ),
        (vec!["worker"], "no queue to consume"),
        (
            vec!["worker", "--queue", "a", "--concurrency", "0"],
            "between 1 and",
        ),
        (
            vec!["worker", "--queue", "a", "--handler", "http"],
            "needs a URL",
        ),
        (
            vec![
                "worker",
                "--queue",
                "a",
                "--handler",
                "http",
                "--url",
                "ftp://x",
            ],
            "http://",
        ),
        (
            vec!["worker", "--queue", "a", "--handler", "carrier-pigeon"],
            "carrier-pigeon",
        ),
        (vec!["--prefix", "drover", "queues"], "reserved"),
        (vec!["--prefix", "a:b", "queues"], "must not contain ':'"),
        (vec!["queues", "--nope"], "--nope"),
        (vec!["retry", "q"], "<ID>"),
        (
            vec!["clean", "q", "--state", "failed", "--limit", "0"],
            "--limit must be at least 1",
        ),
        (vec!["--config", &config, "queues"], "unknown field"),
        (
            vec!["--config", "/no/such/file.toml", "queues"],
            "cannot read config file",
        ),
    ];
    for (args, needle) in cases {
        let out = drover.run(&args).await;
        failed_with(&out, 2, needle);
    }
    // Nothing was written by any of them.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_with_exit_1_in_bounded_time() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let mut cmd = tokio::process::Command::from(drover.command(&["queues"]));
    cmd.env("REDIS_URL", "redis://127.0.0.1:1");
    let out = cmd.output().await.unwrap();
    failed_with(&out, 1, "cannot connect to redis at redis://127.0.0.1:1");
}

#[tokio::test]
async fn enqueue_prints_the_id_and_stores_bullmq_options() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let plain = drover
        .ok(&["enqueue", "mail", "welcome", "--data", r#"{"to":"a@b"}"#])
        .await;
    assert_eq!(plain.trim(), "1");
    let out = drover
        .json(&[
            "enqueue",
            "mail",
            "digest",
            "--data",
            "{}",
            "--attempts",
            "4",
            "--backoff",
            "exponential:250",
            "--priority",
            "3",
            "--json",
        ])
        .await;
    let id = out["id"].as_str().unwrap().to_string();
    let job = drover.json(&["job", "mail", &id, "--json"]).await;
    assert_eq!(job["state"], "prioritized");
    assert_eq!(job["opts"]["attempts"], 4);
    assert_eq!(
        job["opts"]["backoff"],
        json!({ "type": "exponential", "delay": 250 })
    );
    assert_eq!(job["max_attempts"], 4);

    let delayed = drover
        .enqueue(
            "mail",
            "later",
            &json!({}),
            &["--delay", "60000", "--job-id", "later-1"],
        )
        .await;
    assert_eq!(delayed, "later-1");
    let job = drover.json(&["job", "mail", "later-1", "--json"]).await;
    assert_eq!(job["state"], "delayed");
    assert_eq!(job["delay"], 60000);
    // Adding an existing custom id returns it and changes nothing.
    let again = drover
        .enqueue(
            "mail",
            "later",
            &json!({ "changed": true }),
            &["--job-id", "later-1"],
        )
        .await;
    assert_eq!(again, "later-1");
    let job = drover.json(&["job", "mail", "later-1", "--json"]).await;
    assert_eq!(job["data"], json!({}));

    let lifo = drover
        .enqueue(
            "mail",
            "urgent",
            &json!({}),
            &["--opts", r#"{"lifo":true,"removeOnComplete":true}"#],
        )
        .await;
    let job = drover.json(&["job", "mail", &lifo, "--json"]).await;
    assert_eq!(job["opts"]["lifo"], true);
    assert_eq!(job["opts"]["removeOnComplete"], true);
    // LIFO: it is next to run, so the oldest-first page starts with it.
    let page = drover
        .json(&[
            "jobs",
            "mail",
            "--state",
            "waiting",
            "--oldest-first",
            "--json",
        ])
        .await;
    assert_eq!(page["jobs"][0]["id"], lifo.as_str());
}

#[tokio::test]
async fn read_commands_print_tables_and_json() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    for i in 0..25 {
        drover
            .enqueue("reports", "build", &json!({ "n": i }), &[])
            .await;
    }
    drover.enqueue("emails", "send", &json!({}), &[]).await;

    let queues = drover.json(&["queues", "--json"]).await;
    assert_eq!(
        queues,
        json!([
            { "queue": "emails", "counts": counts(1) },
            { "queue": "reports", "counts": counts(25) },
        ])
    );
    let table = drover.ok(&["queues"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("QUEUE"), "{table}");
    assert!(
        lines[2].starts_with("reports") && lines[2].contains("25"),
        "{table}"
    );

    let page = drover
        .json(&["jobs", "reports", "--size", "10", "--page", "3", "--json"])
        .await;
    assert_eq!(page["total"], 25);
    assert_eq!(page["offset"], 20);
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["5", "4", "3", "2", "1"],
        "newest first, third page"
    );
    let text = drover.ok(&["jobs", "reports", "--size", "2"]).await;
    assert!(
        text.starts_with("25 waiting job(s) in reports; page 1 of 13"),
        "{text}"
    );

    let job = drover.ok(&["job", "reports", "7"]).await;
    assert!(job.contains("state:        waiting"), "{job}");
    assert!(job.contains("\"n\": 6"), "{job}");
    let missing = drover.run(&["job", "reports", "999"]).await;
    failed_with(&missing, 1, "job \"999\" not found in queue \"reports\"");

    let workers = drover.json(&["workers", "--json"]).await;
    assert_eq!(workers, json!({ "drover": [], "bullmq": [] }));
}

fn counts(waiting: u64) -> Value {
    json!({
        "waiting": waiting, "prioritized": 0, "delayed": 0, "active": 0,
        "completed": 0, "failed": 0, "waiting_children": 0, "paused": false
    })
}

#[tokio::test]
async fn admin_commands_act_and_say_what_they_did() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    for _ in 0..3 {
        drover
            .enqueue("ops", "bad", &json!({ "fail": "nope" }), &[])
            .await;
    }
    drover
        .enqueue("ops", "later", &json!({}), &["--delay", "600000"])
        .await;
    drover
        .enqueue("ops", "later", &json!({}), &["--delay", "600000"])
        .await;

    assert_eq!(drover.ok(&["pause", "ops"]).await.trim(), "paused ops");
    let q = drover.json(&["queues", "--json"]).await;
    assert_eq!(q[0]["counts"]["paused"], true);
    assert_eq!(drover.ok(&["resume", "ops"]).await.trim(), "resumed ops");

    let mut worker = drover.spawn_worker("ops", &["--queue", "ops"]);
    server
        .wait_count("ops", "failed", 3, std::time::Duration::from_secs(20))
        .await;
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    worker.wait_exit(std::time::Duration::from_secs(15)).await;

    assert_eq!(
        drover.ok(&["retry", "ops", "1"]).await.trim(),
        "retrying job 1 of ops"
    );
    assert_eq!(
        drover.ok(&["retry", "ops", "--all"]).await.trim(),
        "retrying 2 failed job(s) of ops"
    );
    assert_eq!(
        drover.ok(&["promote", "ops", "4"]).await.trim(),
        "promoted job 4 of ops"
    );
    assert_eq!(
        drover.ok(&["promote", "ops", "--all"]).await.trim(),
        "promoted 1 delayed job(s) of ops"
    );
    let promote_again = drover.run(&["promote", "ops", "4"]).await;
    failed_with(&promote_again, 1, "cannot be promoted");
    assert_eq!(
        drover.ok(&["remove", "ops", "5"]).await.trim(),
        "removed job 5 of ops"
    );
    assert_eq!(
        drover.ok(&["drain", "ops"]).await.trim(),
        "removed 4 waiting job(s) from ops"
    );
    assert_eq!(
        drover
            .ok(&["clean", "ops", "--state", "completed"])
            .await
            .trim(),
        "removed 0 completed job(s) from ops"
    );
    assert_eq!(
        drover.ok(&["obliterate", "ops"]).await.trim(),
        "obliterated ops"
    );
    let gone = drover.run(&["pause", "ops"]).await;
    failed_with(&gone, 1, "queue \"ops\" not found");
}

#[tokio::test]
async fn settings_layer_file_then_environment_then_flags() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let config = drover.dir.path().join("drover.toml");
    std::fs::write(&config, "[redis]\nprefix = \"fromfile\"\n").unwrap();
    let config = config.to_string_lossy().to_string();

    drover.ok(&["--config", &config, "enqueue", "q", "n"]).await;
    let mut cmd =
        tokio::process::Command::from(drover.command(&["--config", &config, "enqueue", "q", "n"]));
    cmd.env("DROVER_PREFIX", "fromenv");
    assert!(cmd.output().await.unwrap().status.success());
    let mut cmd = tokio::process::Command::from(drover.command(&[
        "--config", &config, "--prefix", "fromflag", "enqueue", "q", "n",
    ]));
    cmd.env("DROVER_PREFIX", "fromenv");
    assert!(cmd.output().await.unwrap().status.success());

    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:q:id")
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys, vec!["fromenv:q:id", "fromfile:q:id", "fromflag:q:id"]);
}
