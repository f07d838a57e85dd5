//! An application behind the `http` handler, for tests: it records every
//! call per job id, so a job's side effect can be checked to have happened,
//! and duplicate effects (a job run again after its worker died) are seen.
//!
//! Jobs whose data has `"hold": true` are held on their first call until
//! [`Sink::release`]; later calls of the same job answer at once. Jobs with
//! `"sleep_ms": n` are answered after n ms.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The recording application.
pub struct Sink {
    addr: SocketAddr,
    state: Arc<SinkState>,
    server: JoinHandle<()>,
}

struct SinkState {
    calls: Mutex<HashMap<String, u32>>,
    released: watch::Sender<bool>,
}

impl Sink {
    pub async fn start() -> Self {
        let state = Arc::new(SinkState {
            calls: Mutex::new(HashMap::new()),
            released: watch::channel(false).0,
        });
        let app = Router::new()
            .route("/jobs/{name}", post(call))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// The URL the `http` handler is given (`{name}`: the job name).
    pub fn url(&self) -> String {
        format!("http://{}/jobs/{{name}}", self.addr)
    }

    /// Calls per job id so far.
    pub fn calls(&self) -> HashMap<String, u32> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Calls of one job so far.
    pub fn calls_of(&self, id: &str) -> u32 {
        self.state
            .calls
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Answers held first calls, now and from now on.
    pub fn release(&self) {
        self.state.released.send_replace(true);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn call(
    State(state): State<Arc<SinkState>>,
    Path(_name): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let nth = {
        let mut calls = state.calls.lock().unwrap();
        let n = calls.entry(id.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let data = &body["data"];
    if let Some(ms) = data["sleep_ms"].as_u64() {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if data["hold"] == json!(true) && nth == 1 {
        let mut released = state.released.subscribe();
        let _ = released.wait_for(|r| *r).await;
    }
    Json(json!({ "id": id, "call": nth }))
}
