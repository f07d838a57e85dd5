//! The control loop against a real Redis: leadership moves to a standby
//! when the leader dies, and the kubernetes actuator talks to a local
//! stand-in for the API server's scale subresource (no cluster here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use drover_scheduler::autoscaler::{
    Autoscaler, AutoscalerConfig, AutoscalerMetrics, KubeClient, KubeTarget, TokenSource,
};
use queue_core::autoscale::{self, PolicySpec};
use queue_core::producer::{self, JobOptions, NewJob};
use queue_core::{Connection, QueueName, RedisSettings};
use serde_json::{Value, json};
use testkit::{Check, RedisServer, wait_until};
use tokio_util::sync::CancellationToken;

async fn connect(server: &RedisServer) -> Connection {
    Connection::connect(RedisSettings::for_url(server.url()).unwrap())
        .await
        .unwrap()
}

fn settings(queue: &str, policy: Value) -> drover_scheduler::autoscaler::AutoscalerSettings {
    let spec: PolicySpec = serde_json::from_value(policy).unwrap();
    AutoscalerConfig {
        interval_ms: 200,
        lease_ttl_ms: 1_500,
        queue: BTreeMap::from([(queue.to_string(), spec)]),
        ..AutoscalerConfig::default()
    }
    .resolve()
    .unwrap()
}

async fn add(conn: &Connection, queue: &str, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|_| NewJob {
            name: "n".into(),
            data: json!({}),
            opts: JobOptions::default(),
        })
        .collect();
    producer::enqueue_bulk(conn, &QueueName::new(queue).unwrap(), &jobs)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_standby_takes_over_within_a_lease_period_when_the_leader_dies() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let policy = json!({"min_workers": 1, "max_workers": 4});
    let registries = [prometheus::Registry::new(), prometheus::Registry::new()];
    let start = |holder: &str, registry: &prometheus::Registry| {
        Autoscaler::new(
            conn.clone(),
            settings("f", policy.clone()),
            Some(AutoscalerMetrics::new(registry).unwrap()),
            None,
            holder.to_string(),
        )
        .spawn(CancellationToken::new())
    };
    let a = start("a", &registries[0]);
    let b = start("b", &registries[1]);
    add(&conn, "f", 1).await;
    let first = wait_until("a leader", Duration::from_secs(10), || async {
        match autoscale::leader(&conn).await.unwrap() {
            Some(l) => Check::Done(l),
            None => Check::NotYet("none".into()),
        }
    })
    .await;
    wait_until("the leader published", Duration::from_secs(10), || async {
        match autoscale::queue_status(&conn, &QueueName::new("f").unwrap())
            .await
            .unwrap()
        {
            Some(s) if s.desired.is_some() => Check::Done(()),
            other => Check::NotYet(format!("{other:?}")),
        }
    })
    .await;
    let metrics = |i: usize| {
        use prometheus::Encoder;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registries[i].gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    };
    let (leader, standby_i) = if first.holder == "a" { (0, 1) } else { (1, 0) };
    let text = metrics(leader);
    assert!(text.contains("drover_autoscaler_leader 1"), "{text}");
    assert!(
        text.contains(r#"drover_autoscaler_desired_workers{queue="f"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"drover_autoscaler_actual_workers{queue="f"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"drover_autoscaler_decisions_total{direction="up",queue="f"} 1"#),
        "the start from 0 live slots to the minimum is a decision: {text}"
    );
    assert!(
        text.contains(r#"drover_queue_backlog_jobs{queue="f"} 1"#),
        "{text}"
    );
    assert!(metrics(standby_i).contains("drover_autoscaler_leader 0"));
    // The leader dies without letting go of its lease.
    let (dead, standby) = if first.holder == "a" { (a, b) } else { (b, a) };
    dead.abort();
    let died = Instant::now();
    let next = wait_until("a new leader", Duration::from_secs(10), || async {
        match autoscale::leader(&conn).await.unwrap() {
            Some(l) if l.holder != first.holder => Check::Done(l),
            other => Check::NotYet(format!("{other:?}")),
        }
    })
    .await;
    let took = died.elapsed();
    eprintln!("takeover after {} ms (lease 1500 ms)", took.as_millis());
    assert!(next.epoch > first.epoch);
    // The lease lasts 1.5 s from the last renewal; standbys try every
    // fifth of it (±10%); a second of slack for a busy machine.
    assert!(
        took <= Duration::from_millis(1_500 + 330 + 1_000),
        "{took:?}"
    );
    standby.abort();
}

/// The stand-in API server: one Deployment's scale, and every request.
#[derive(Default)]
struct Fake {
    replicas: u32,
    version: u64,
    requests: Vec<(String, Option<String>, Option<String>, Value)>,
    conflict_next: bool,
}

type Shared = Arc<Mutex<Fake>>;

fn scale_json(f: &Fake) -> Value {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "workers", "namespace": "jobs", "resourceVersion": f.version.to_string()},
        "spec": {"replicas": f.replicas},
        "status": {"replicas": f.replicas}
    })
}

async fn scale_get(
    State(fake): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let mut f = fake.lock().unwrap();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    f.requests
        .push((format!("GET {ns}/{name}"), auth, None, Value::Null));
    (StatusCode::OK, scale_json(&f).to_string())
}

async fn scale_patch(
    State(fake): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut f = fake.lock().unwrap();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let patch: Value = serde_json::from_slice(&body).unwrap();
    f.requests
        .push((format!("PATCH {ns}/{name}"), auth, ct, patch.clone()));
    if f.conflict_next {
        f.conflict_next = false;
        return (StatusCode::CONFLICT, "{}".into());
    }
    if patch["metadata"]["resourceVersion"] != json!(f.version.to_string()) {
        return (StatusCode::CONFLICT, "{}".into());
    }
    f.replicas = u32::try_from(patch["spec"]["replicas"].as_u64().unwrap()).unwrap();
    f.version += 1;
    (StatusCode::OK, scale_json(&f).to_string())
}

#[derive(Debug)]
struct Token;

impl TokenSource for Token {
    fn token(&self) -> Option<String> {
        Some("sa-token".into())
    }
}

#[tokio::test]
async fn the_kubernetes_actuator_patches_the_scale_subresource_with_a_precondition() {
    let server = RedisServer::start().await;
    let conn = connect(&server).await;
    let fake: Shared = Arc::new(Mutex::new(Fake {
        replicas: 1,
        version: 10,
        conflict_next: true,
        ..Fake::default()
    }));
    let app = Router::new()
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
            get(scale_get).patch(scale_patch),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let kube = KubeClient::new(KubeTarget {
        api_url: format!("http://{addr}"),
        namespace: "jobs".into(),
        token: Some(Arc::new(Token)),
        ca_pem: None,
    })
    .unwrap();
    let policy = json!({"actuator": "kubernetes", "deployment": "workers",
        "min_workers": 1, "max_workers": 3, "target_backlog_per_slot": 1, "worker_concurrency": 1});
    let stop = CancellationToken::new();
    let task = Autoscaler::new(
        conn.clone(),
        settings("k", policy),
        None,
        Some(kube),
        "k8s-test".into(),
    )
    .spawn(stop.clone());
    add(&conn, "k", 20).await;
    wait_until(
        "the deployment scaled to 3",
        Duration::from_secs(15),
        || async {
            match fake.lock().unwrap().replicas {
                3 => Check::Done(()),
                n => Check::NotYet(format!("{n} replicas")),
            }
        },
    )
    .await;
    let status = autoscale::queue_status(&conn, &QueueName::new("k").unwrap())
        .await
        .unwrap()
        .unwrap();
    stop.cancel();
    task.await.unwrap();
    let f = fake.lock().unwrap();
    let patches: Vec<_> = f
        .requests
        .iter()
        .filter(|r| r.0.starts_with("PATCH"))
        .collect();
    eprintln!("requests: {:#?}", f.requests);
    assert!(
        patches.len() >= 2,
        "a refused patch (409) is tried again at the next tick"
    );
    for (what, auth, ct, body) in &patches {
        assert_eq!(what, "PATCH jobs/workers");
        assert_eq!(auth.as_deref(), Some("Bearer sa-token"));
        assert_eq!(ct.as_deref(), Some("application/merge-patch+json"));
        assert!(body["metadata"]["resourceVersion"].is_string(), "{body}");
    }
    assert!(f.requests.iter().any(|r| r.0 == "GET jobs/workers"));
    assert_eq!(status.actuator, Some(autoscale::Actuator::Kubernetes));
}
