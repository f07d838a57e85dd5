//! The dashboard in real headless Chromium against the real `drover serve`
//! binary, with a queue filled and worked by the real BullMQ Node client:
//! `compat/scenarios/dashboard-browser.mjs` signs in, retries a failed job
//! and watches it complete live, pauses and resumes, checks that hostile
//! content is inert and that a read-only key can act on nothing, and
//! reads the autoscaler panel of the leader `drover serve` runs. Screenshots
//! of every page land in `<target>/tmp/dashboard-screenshots`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Drover, free_port, wait_healthy};
use testkit::{RedisServer, node};

#[tokio::test]
async fn an_operator_works_the_dashboard_in_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "this test drives Debian's Chromium: apt-get install chromium (.ci/run does)"
    );
    let redis = RedisServer::start().await;
    let drover = Drover::new(&redis);
    drover.ok(&["migrate"]).await;
    let key = |name: &'static str, scope: &'static str| {
        let drover = &drover;
        async move {
            let created: Value = drover
                .json(&["keys", "create", "--name", name, "--scope", scope, "--json"])
                .await;
            created["token"].as_str().unwrap().to_string()
        }
    };
    let admin = key("admin", "admin").await;
    let reader = key("viewer", "read").await;
    // Something on the workers and schedules pages.
    let _worker = drover.spawn_worker("worker", &["--queue", "background", "--handler", "echo"]);
    drover
        .ok(&[
            "schedule",
            "set",
            "reports",
            "nightly",
            "--pattern",
            "0 0 3 * * *",
            "--tz",
            "Europe/Berlin",
            "--name",
            "report",
        ])
        .await;

    // The autoscaler (run by drover serve) publishes what it would do.
    drover
        .ok(&[
            "autoscaler",
            "set",
            "orders",
            "--policy",
            r#"{"actuator":"external","min_workers":1,"max_workers":4}"#,
        ])
        .await;

    let addr = format!("127.0.0.1:{}", free_port());
    let _serve = drover.spawn("serve", &["serve", "--addr", &addr]);
    wait_healthy(&addr, "drover serve healthy").await;

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let params = json!({
        "url": format!("http://{addr}"),
        "admin": admin,
        "reader": reader,
        "shots": shots,
    });
    let result = node::run(
        "dashboard-browser.mjs",
        &redis.url(),
        &params,
        Duration::from_secs(240),
    )
    .await;
    assert_eq!(result["liveCompleted"], true, "{result}");
    assert_eq!(result["paused"], true);
    assert_eq!(result["resumed"], true);
    assert_eq!(result["xssInert"], true);
    assert_eq!(result["readOnlyPost"], 403);
    assert_eq!(result["autoscalerPanel"], true);
    let saved = result["screenshots"].as_array().unwrap();
    assert!(saved.len() >= 15, "{result}");
    for file in saved {
        let len = std::fs::metadata(file.as_str().unwrap()).unwrap().len();
        assert!(len > 5_000, "{file} is a real picture ({len} bytes)");
    }
    println!("dashboard screenshots: {}", shots.display());
    // The server logged no error while the browser worked it.
    let log = drover.log("serve");
    assert!(!log.contains("ERROR"), "{log}");
}
