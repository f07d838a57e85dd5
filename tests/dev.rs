//! `drover dev`: the README's first command. With no Redis configured it
//! starts a private redis-server in its data directory, processes jobs with
//! the built-in handler, and stops its redis-server when it stops.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use testkit::{Check, ChildGuard, wait_until};

fn drover(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
    cmd.args(args)
        .env_remove("REDIS_URL")
        .env_remove("DROVER_PREFIX")
        .env_remove("DROVER_CONFIG")
        .env_remove("DROVER_REDIS_CLUSTER_NODES")
        .env_remove("DATABASE_URL");
    cmd
}

#[tokio::test]
async fn dev_runs_everything_on_a_private_redis() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("state");
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, api_port) = (free_port(), free_port());
    let log = std::fs::File::create(data.path().join("dev.log")).unwrap();
    // A schedule in the config file: dev keeps it in Redis and runs it.
    let config = data.path().join("drover.toml");
    std::fs::write(
        &config,
        "[[schedule]]\nid = \"dev-tick\"\nqueue = \"default\"\nevery = 500\nname = \"tick\"\n",
    )
    .unwrap();
    let child = drover(&[
        "dev",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--queue",
        "default",
        "--metrics-addr",
        &format!("127.0.0.1:{port}"),
        "--addr",
        &format!("127.0.0.1:{api_port}"),
    ])
    .stdin(Stdio::null())
    .stdout(log.try_clone().unwrap())
    .stderr(log)
    .spawn()
    .unwrap();
    let mut dev = ChildGuard::new("drover dev", child);
    let socket = data_dir.join("redis.sock");
    let url = format!("redis+unix://{}", socket.display());
    let read_log = || std::fs::read_to_string(data.path().join("dev.log")).unwrap_or_default();

    wait_until("drover dev ready", Duration::from_secs(30), || async {
        if read_log().contains("ready: the dashboard is at") {
            Check::Done(())
        } else {
            Check::NotYet(read_log())
        }
    })
    .await;
    let log_now = read_log();
    assert!(
        log_now.contains("no authentication"),
        "says loudly it is open: {log_now}"
    );
    assert!(
        log_now.contains(&format!("REDIS_URL={url} drover enqueue")),
        "tells how to reach its Redis: {log_now}"
    );

    let out = drover(&["enqueue", "default", "hello", "--data", r#"{"who":"dev"}"#])
        .env("REDIS_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let job: Value = wait_until("job completed", Duration::from_secs(20), || async {
        let out = drover(&["job", "default", &id, "--json"])
            .env("REDIS_URL", &url)
            .output()
            .unwrap();
        let job: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if job["state"] == "completed" {
            Check::Done(job)
        } else {
            Check::NotYet(job.to_string())
        }
    })
    .await;
    assert_eq!(job["returnvalue"]["who"], "dev");

    // The dashboard needs no sign-in in dev and lists the queue.
    let page = support::http_client()
        .get(format!("http://127.0.0.1:{api_port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("development mode") && html.contains("href=\"/queues/default\""),
        "{html}"
    );

    // The HTTP API needs no key in dev (loopback only), and its jobs run.
    let res = support::http_client()
        .post(format!(
            "http://127.0.0.1:{api_port}/api/v1/queues/default/jobs"
        ))
        .header("content-type", "application/json")
        .body(r#"{"name":"hello","data":{"via":"http"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    let http_id = body["id"].as_str().unwrap().to_string();
    wait_until("http job completed", Duration::from_secs(20), || async {
        let out = drover(&["job", "default", &http_id, "--json"])
            .env("REDIS_URL", &url)
            .output()
            .unwrap();
        let job: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if job["state"] == "completed" && job["returnvalue"]["via"] == "http" {
            Check::Done(())
        } else {
            Check::NotYet(job.to_string())
        }
    })
    .await;
    // The declared schedule runs: its runs complete one after another.
    wait_until(
        "scheduled runs completed",
        Duration::from_secs(20),
        || async {
            let out = drover(&["jobs", "default", "--state", "completed", "--json"])
                .env("REDIS_URL", &url)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let runs = text.matches("repeat:dev-tick:").count();
            if runs >= 2 {
                Check::Done(())
            } else {
                Check::NotYet(text)
            }
        },
    )
    .await;
    // Its store is a SQLite file in the data directory.
    assert!(
        data_dir.join("drover.db").is_file(),
        "SQLite store in {}",
        data_dir.display()
    );

    dev.signal(Signal::SIGTERM);
    let status = dev.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}: {}", read_log());
    assert!(
        !queue_core_answers(&url).await,
        "the private redis-server stopped with drover dev"
    );
    // Its data survived on disk (append-only file).
    let aof_dir = data_dir.join("appendonlydir");
    assert!(
        aof_dir.is_dir(),
        "append-only file kept in {}",
        data_dir.display()
    );
}

async fn queue_core_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    match client.get_multiplexed_async_connection().await {
        Ok(mut conn) => redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

#[test]
fn dev_refuses_to_serve_beyond_loopback() {
    for flag in ["--addr", "--metrics-addr"] {
        let out = drover(&["dev", flag, "0.0.0.0:0"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback"), "{flag}: {err}");
    }
}
