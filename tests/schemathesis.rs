//! Schemathesis against the real `drover serve`: it reads
//! `/api/v1/openapi.json` and sends thousands of generated requests
//! (coverage, fuzzing and stateful phases, a fixed seed) to every
//! operation but the never-ending event streams, checking that no answer
//! is a 5xx and that every status code, content type and body matches the
//! document. `DROVER_SCHEMATHESIS_SEED` and `DROVER_SCHEMATHESIS_EXAMPLES`
//! (default 1 and 25) make longer runs by hand. `.ci/run` installs
//! schemathesis (pinned in `.ci/schemathesis-requirements.txt`) into
//! `~/.cache/drover-schemathesis`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::{Drover, free_port, wait_healthy};
use testkit::RedisServer;

fn schemathesis() -> PathBuf {
    std::env::var_os("DROVER_SCHEMATHESIS").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/drover-schemathesis/bin/schemathesis")
        },
        PathBuf::from,
    )
}

/// A setting for longer runs by hand (RELIABILITY.md), or CI's default.
fn knob(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "{} is missing: .ci/run installs schemathesis (or set DROVER_SCHEMATHESIS)",
        st.display()
    );
    let redis = RedisServer::start().await;
    let drover = Drover::new(&redis);
    drover.ok(&["migrate"]).await;
    let created: Value = drover
        .json(&[
            "keys", "create", "--name", "st", "--scope", "admin", "--json",
        ])
        .await;
    let key = created["token"].as_str().unwrap().to_string();
    let addr = format!("127.0.0.1:{}", free_port());
    let _serve = drover.spawn("serve", &["serve", "--addr", &addr]);
    wait_healthy(&addr, "drover serve healthy").await;

    let scratch = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&st)
        .args(["run", &format!("http://{addr}/api/v1/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--exclude-path-regex",
            "events$",
            "--seed",
            &knob("DROVER_SCHEMATHESIS_SEED", "1"),
            "--max-examples",
            &knob("DROVER_SCHEMATHESIS_EXAMPLES", "25"),
            "--workers",
            "2",
        ])
        .env("NO_COLOR", "1")
        // Its cache (`.schemathesis/`) goes there, not into the checkout.
        .current_dir(scratch.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let summary = &report[report.rfind("SUMMARY").unwrap_or(0)..];
    println!("{summary}");
    assert!(
        out.status.success(),
        "schemathesis failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: u64 = summary
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_suffix("passed")
                .and_then(|l| l.split_whitespace().next())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(generated > 1_000, "schemathesis tested little: {summary}");
    let log = drover.log("serve");
    assert!(!log.contains("panicked"), "{log}");
}
