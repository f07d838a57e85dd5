//! The crate graph is the architecture: dependencies point down to
//! `queue-core`, the feature crates never depend on each other, and only
//! `queue-core` may reach Redis. This test reads `cargo metadata` and fails
//! on any new edge.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Our crates and the workspace crates each may depend on (normal and
/// build dependencies; dev-dependencies are test tooling).
const ALLOWED: &[(&str, &[&str])] = &[
    ("drover-queue-core", &[]),
    ("drover-worker", &["drover-queue-core"]),
    ("drover-scheduler", &["drover-queue-core"]),
    ("drover-api", &["drover-queue-core"]),
    ("drover-dashboard", &["drover-queue-core", "drover-api"]),
    (
        "drover",
        &[
            "drover-queue-core",
            "drover-worker",
            "drover-scheduler",
            "drover-api",
            "drover-dashboard",
        ],
    ),
    ("drover-bench", &["drover-queue-core"]),
    ("drover-testkit", &[]),
];

/// External crates that speak to Redis; only these of ours may use them.
const REDIS_CRATES: &[&str] = &["redis", "bullmq-official"];
const MAY_USE_REDIS: &[&str] = &["drover-queue-core", "drover-bench", "drover-testkit"];

fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Normal and build dependencies of every workspace package.
fn edges(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_downwards() {
    let edges = edges(&metadata());
    let ours: BTreeSet<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
    let members: BTreeSet<&str> = edges.keys().map(String::as_str).collect();
    assert_eq!(
        members, ours,
        "a crate was added or removed: update ALLOWED"
    );
    for (krate, allowed) in ALLOWED {
        let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
        let used: BTreeSet<&str> = edges[*krate]
            .iter()
            .map(String::as_str)
            .filter(|d| ours.contains(d))
            .collect();
        let forbidden: Vec<&&str> = used.difference(&allowed).collect();
        assert!(
            forbidden.is_empty(),
            "{krate} must not depend on {forbidden:?}; see ARCHITECTURE.md"
        );
    }
}

#[test]
fn only_queue_core_reaches_redis() {
    for (krate, deps) in edges(&metadata()) {
        if MAY_USE_REDIS.contains(&krate.as_str()) {
            continue;
        }
        let direct: Vec<&String> = deps
            .iter()
            .filter(|d| REDIS_CRATES.contains(&d.as_str()))
            .collect();
        assert!(
            direct.is_empty(),
            "{krate} depends on {direct:?}; Redis is reached through queue-core only"
        );
    }
}
