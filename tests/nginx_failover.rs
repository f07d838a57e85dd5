//! Two `drover serve` behind a real nginx running `deploy/nginx/drover.conf`;
//! one instance is killed (SIGKILL) under load. Clients retry failed
//! requests with the same Idempotency-Key, as the API asks. Afterwards
//! every accepted request's job exists, with the data sent, exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Drover, free_port, wait_healthy};
use testkit::{ChildGuard, RedisServer, workspace_root};

const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 150;
/// Kill instance A once this many requests were accepted.
const KILL_AFTER: usize = 600;

/// `deploy/nginx/drover.conf` with its addresses moved to free ports and
/// its relative paths under `prefix`.
fn render_config(prefix: &Path, listen: u16, a: u16, b: u16) -> String {
    let conf = std::fs::read_to_string(workspace_root().join("deploy/nginx/drover.conf")).unwrap();
    assert!(
        conf.contains("least_conn;"),
        "the deployed config balances by least_conn"
    );
    std::fs::create_dir_all(prefix.join("tmp")).unwrap();
    conf.replace(
        "listen 127.0.0.1:8080;",
        &format!("listen 127.0.0.1:{listen};"),
    )
    .replace("server 127.0.0.1:8081 ", &format!("server 127.0.0.1:{a} "))
    .replace("server 127.0.0.1:8082 ", &format!("server 127.0.0.1:{b} "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_instance_under_load_loses_and_duplicates_nothing() {
    let redis = RedisServer::start().await;
    let drover = Drover::new(&redis);
    drover.ok(&["migrate"]).await;
    let key: Value = drover
        .json(&[
            "keys",
            "create",
            "--name",
            "lb",
            "--scope",
            "enqueue:orders",
            "--scope",
            "read",
            // The load here is the point; the rate limit has its own test.
            "--rate-limit",
            "1000000",
            "--json",
        ])
        .await;
    let token = key["token"].as_str().unwrap().to_string();

    let (port_a, port_b, port_lb) = (free_port(), free_port(), free_port());
    let addr_a = format!("127.0.0.1:{port_a}");
    let addr_b = format!("127.0.0.1:{port_b}");
    let mut a = drover.spawn("serve-a", &["serve", "--addr", &addr_a]);
    let _b = drover.spawn("serve-b", &["serve", "--addr", &addr_b]);
    wait_healthy(&addr_a, "instance A").await;
    wait_healthy(&addr_b, "instance B").await;

    let prefix = drover.dir.path().join("nginx");
    std::fs::create_dir_all(&prefix).unwrap();
    std::fs::write(
        prefix.join("drover.conf"),
        render_config(&prefix, port_lb, port_a, port_b),
    )
    .unwrap();
    let nginx = Command::new(nginx_bin())
        .args([
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            "drover.conf",
            "-g",
            "daemon off;",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(drover.dir.path().join("nginx.log")).unwrap())
        .spawn()
        .unwrap();
    let mut nginx = ChildGuard::new("nginx", nginx);
    let lb = format!("127.0.0.1:{port_lb}");
    wait_healthy(&lb, "nginx").await;

    let client = support::http_client();
    let accepted = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let tasks = (0..CLIENTS).map(|c| {
        let (client, token, lb) = (client.clone(), token.clone(), lb.clone());
        let (accepted, retries) = (Arc::clone(&accepted), Arc::clone(&retries));
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for seq in 0..REQUESTS_PER_CLIENT {
                let marker = format!("{c}-{seq}");
                let body = json!({"name": "order", "data": {"marker": marker}}).to_string();
                let deadline = Instant::now() + Duration::from_secs(60);
                let id = loop {
                    let res = client
                        .post(format!("http://{lb}/api/v1/queues/orders/jobs"))
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .header("idempotency-key", &marker)
                        .body(body.clone())
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                            break v["id"].as_str().unwrap().to_string();
                        }
                        Ok(r) if r.status().is_server_error() => {}
                        Ok(r) => panic!("{marker}: unexpected {}", r.status()),
                        Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {}
                        Err(e) => panic!("{marker}: {e}"),
                    }
                    assert!(Instant::now() < deadline, "{marker} never accepted");
                    retries.fetch_add(1, Ordering::Relaxed);
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                ids.push((marker, id));
            }
            ids
        })
    });
    let tasks: Vec<_> = tasks.collect();

    // Let A take part, then kill it mid-load.
    testkit::wait_until("load under way", Duration::from_secs(60), || {
        let n = accepted.load(Ordering::Relaxed);
        async move {
            if n >= KILL_AFTER {
                testkit::Check::Done(())
            } else {
                testkit::Check::NotYet(n.to_string())
            }
        }
    })
    .await;
    let served_by_a = served_posts(&client, &addr_a, &token).await;
    assert!(
        served_by_a > 0,
        "instance A served part of the load before it died"
    );
    a.kill();
    let at_kill = accepted.load(Ordering::Relaxed);

    let mut by_marker: BTreeMap<String, String> = BTreeMap::new();
    for t in tasks {
        for (marker, id) in t.await.unwrap() {
            assert!(by_marker.insert(marker, id).is_none());
        }
    }
    let total = CLIENTS * REQUESTS_PER_CLIENT;
    assert_eq!(by_marker.len(), total);
    assert!(
        at_kill < total,
        "the kill happened under load ({at_kill} of {total} done)"
    );

    // Every accepted job exists with its own data, and there is nothing else.
    let waiting = redis.list("orders", "wait").await;
    let ids: BTreeSet<&String> = by_marker.values().collect();
    assert_eq!(ids.len(), total, "distinct ids for distinct requests");
    assert_eq!(waiting.len(), total, "exactly one job per accepted request");
    for (marker, id) in &by_marker {
        let hash = redis.job_hash("orders", id).await;
        let data: Value = serde_json::from_str(&hash["data"]).unwrap();
        assert_eq!(data["marker"], marker.as_str(), "job {id}");
    }
    // SIGTERM: nginx's fast stop, which takes its worker process along
    // (SIGKILL would orphan it) without waiting for idle keep-alive
    // connections, as the graceful SIGQUIT does (it once took over 20 s
    // on a loaded CI machine).
    nginx.signal(nix::sys::signal::Signal::SIGTERM);
    nginx.wait_exit(Duration::from_secs(20)).await;
    eprintln!(
        "failover: {total} accepted, A served {served_by_a} before SIGKILL at {at_kill}, {} client retries",
        retries.load(Ordering::Relaxed)
    );
}

/// POSTs instance A answered, from its own /metrics.
async fn served_posts(client: &reqwest::Client, addr: &str, token: &str) -> u64 {
    let text = client
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("drover_http_requests_total{method=\"POST\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn nginx_bin() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}
