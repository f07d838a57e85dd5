//! The `drover worker` process: graceful SIGTERM, crash recovery, Redis
//! restarts, metrics and registration, all against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use support::*;
use testkit::{Check, RedisServer, wait_until};

async fn wait_active(server: &RedisServer, queue: &str, n: usize) {
    wait_until(
        &format!("{n} active in {queue}"),
        Duration::from_secs(20),
        || async {
            match active_len(server, queue).await {
                have if have == n => Check::Done(()),
                have => Check::NotYet(format!("{have} active")),
            }
        },
    )
    .await;
}

/// Must show: SIGTERM with jobs in flight loses nothing and runs nothing
/// twice. Short jobs finish within the grace period; long ones are handed
/// back at its end and finished exactly once by the next worker.
#[tokio::test]
async fn sigterm_with_jobs_in_flight_loses_none_and_runs_none_twice() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    // Enqueue before the worker starts, so it takes all ten at once: the
    // short jobs must still be running when they are all in flight.
    let mut short = Vec::new();
    let mut long = Vec::new();
    for i in 0..5 {
        short.push(
            drover
                .enqueue("sd", "short", &json!({ "i": i, "sleep_ms": 1500 }), &[])
                .await,
        );
        long.push(
            drover
                .enqueue("sd", "long", &json!({ "i": i, "sleep_ms": 8000 }), &[])
                .await,
        );
    }
    let mut first = drover.spawn_worker(
        "first",
        &[
            "--queue",
            "sd",
            "--concurrency",
            "10",
            "--shutdown-timeout",
            "4000",
        ],
    );
    wait_active(&server, "sd", 10).await;
    first.signal(Signal::SIGTERM);
    let status = first.wait_exit(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "first worker exit: {status}\n{}",
        drover.log("first")
    );
    let log = drover.log("first");
    assert!(log.contains("handed_back=5"), "{log}");
    for id in &short {
        assert!(
            server.zset("sd", "completed").await.contains(id),
            "short job {id} finished in the grace period"
        );
    }
    for id in &long {
        assert!(
            server.list("sd", "wait").await.contains(id),
            "long job {id} handed back\n{log}"
        );
    }

    let _second = drover.spawn_worker("second", &["--queue", "sd", "--concurrency", "10"]);
    server
        .wait_count("sd", "completed", 10, Duration::from_secs(20))
        .await;
    let completions = event_counts(&server, "sd", "completed").await;
    assert_eq!(completions.len(), 10);
    assert!(completions.values().all(|n| *n == 1), "{completions:?}");
    assert!(event_counts(&server, "sd", "failed").await.is_empty());
    for id in short.iter().chain(&long) {
        let h = server.job_hash("sd", id).await;
        assert_eq!(h["atm"], "1", "job {id}: one finished attempt");
    }
    for id in &long {
        assert_eq!(
            server.job_hash("sd", id).await["ats"],
            "2",
            "long job {id} started twice, finished once"
        );
    }
}

/// A worker killed outright (no chance to hand back) has its job recovered
/// as stalled by another worker once its lock expires.
#[tokio::test]
async fn a_killed_workers_job_is_recovered_as_stalled() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let flags = [
        "--queue",
        "crash",
        "--lock-duration",
        "1000",
        "--stalled-interval",
        "500",
    ];
    let mut doomed = drover.spawn_worker("doomed", &flags);
    let id = drover
        .enqueue("crash", "n", &json!({ "sleep_ms": 600000 }), &[])
        .await;
    wait_active(&server, "crash", 1).await;
    doomed.signal(Signal::SIGKILL);
    doomed.wait_exit(Duration::from_secs(5)).await;
    // Let the next run finish quickly.
    redis::cmd("HSET")
        .arg(format!("bull:crash:{id}"))
        .arg("data")
        .arg(r#"{"sleep_ms":0}"#)
        .query_async::<()>(&mut server.conn().await)
        .await
        .unwrap();
    let _rescuer = drover.spawn_worker("rescuer", &flags);
    server.wait_in("crash", "completed", &id).await;
    let h = server.job_hash("crash", &id).await;
    assert_eq!(h["stc"], "1", "recovered once as stalled");
    assert_eq!(h["atm"], "1");
    assert_eq!(
        event_counts(&server, "crash", "stalled").await.get(&id),
        Some(&1)
    );
}

#[tokio::test]
async fn the_worker_survives_a_redis_restart() {
    let mut server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let _worker = drover.spawn_worker("steady", &["--queue", "r", "--concurrency", "2"]);
    let before = drover.enqueue("r", "n", &json!({}), &[]).await;
    server.wait_in("r", "completed", &before).await;
    server.kill();
    server.restart().await;
    // The restarted Redis is empty; the worker reconnects by itself.
    let after = drover
        .enqueue("r", "n", &json!({ "after": true }), &[])
        .await;
    server.wait_in("r", "completed", &after).await;
    assert_eq!(
        server.job_hash("r", &after).await["returnvalue"],
        r#"{"after":true}"#
    );
}

#[tokio::test]
async fn metrics_and_registration_show_the_running_worker() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _worker = drover.spawn_worker(
        "observed",
        &[
            "--queue",
            "m1,m2",
            "--concurrency",
            "3",
            "--metrics-addr",
            &addr,
        ],
    );
    let ok = drover.enqueue("m1", "good", &json!({}), &[]).await;
    let bad = drover
        .enqueue("m2", "bad", &json!({ "fail": "nope" }), &[])
        .await;
    server.wait_in("m1", "completed", &ok).await;
    server.wait_in("m2", "failed", &bad).await;

    let body = wait_until("metrics served", Duration::from_secs(10), || async {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(_) => Check::Done(http_get(&addr, "/metrics").await),
            Err(e) => Check::NotYet(e.to_string()),
        }
    })
    .await;
    assert!(
        body.contains(
            r#"drover_jobs_processed_total{name="good",outcome="completed",queue="m1"} 1"#
        ),
        "{body}"
    );
    assert!(
        body.contains(r#"drover_jobs_processed_total{name="bad",outcome="failed",queue="m2"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"drover_worker_concurrency{queue="m1"} 3"#),
        "{body}"
    );
    assert!(
        body.contains("drover_job_duration_seconds_bucket"),
        "{body}"
    );

    let workers = wait_until("registered", Duration::from_secs(10), || async {
        let w = drover.json(&["workers", "--json"]).await;
        if w["drover"].as_array().is_some_and(|a| !a.is_empty()) {
            Check::Done(w)
        } else {
            Check::NotYet(w.to_string())
        }
    })
    .await;
    let me = &workers["drover"][0];
    let queues: Vec<&str> = me["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, vec!["m1", "m2"]);
    assert_eq!(me["queues"][0]["concurrency"], 3);
    assert!(me["pid"].as_u64().unwrap() > 0);
}

/// A minimal HTTP/1.1 GET (the test needs no HTTP client dependency).
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}
