//! `drover serve` with a migrated store and an admin API key, on one
//! test's Redis, for tests that drive the HTTP API under stress (chaos,
//! load shedding, soak).

use std::time::Duration;

use serde_json::Value;
use testkit::{Check, ChildGuard, RedisServer, wait_until};

use super::{Drover, free_port, wait_healthy};

/// The API in front of one test's Redis.
pub struct Stack {
    pub drover: Drover,
    /// The config file every process of the stack reads.
    pub config: String,
    /// `host:port` of `drover serve`.
    pub addr: String,
    /// An admin key.
    pub token: String,
    pub serve: ChildGuard,
    client: reqwest::Client,
}

/// One API answer: its status and body, or why there was none.
pub type Answer = Result<(u16, Value), String>;

impl Stack {
    /// Migrates the store, creates an admin key, writes `config` and starts
    /// `drover serve` with it.
    pub async fn start(server: &RedisServer, config: &str) -> Self {
        let drover = Drover::new(server);
        drover.ok(&["migrate"]).await;
        let key = drover
            .json(&[
                "keys", "create", "--name", "stress", "--scope", "admin", "--json",
            ])
            .await;
        let token = key["token"].as_str().unwrap().to_string();
        let path = drover.dir.path().join("drover.toml");
        std::fs::write(&path, config).unwrap();
        let config = path.display().to_string();
        let addr = format!("127.0.0.1:{}", free_port());
        let serve = drover.spawn("serve", &["serve", "--addr", &addr, "--config", &config]);
        wait_healthy(&addr, "drover serve healthy").await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            // Generous: an answer this late counts as no answer.
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(1024)
            .build()
            .unwrap();
        Self {
            drover,
            config,
            addr,
            token,
            serve,
            client,
        }
    }

    /// A client for the stack (cheap to clone).
    pub fn client(&self) -> ApiClient {
        ApiClient {
            base: format!("http://{}", self.addr),
            token: self.token.clone(),
            http: self.client.clone(),
        }
    }

    /// Starts `drover <args> --config <the stack's config>`.
    pub fn spawn(&self, label: &str, args: &[&str]) -> ChildGuard {
        let mut full = args.to_vec();
        full.extend_from_slice(&["--config", &self.config]);
        self.drover.spawn(label, &full)
    }
}

/// Sends authenticated JSON requests to the stack's API.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// `method path` with an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let res = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(|e| format!("{e:?}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// `POST /api/v1/queues/{queue}/jobs`: the id of the job when the API
    /// acknowledged it (201), else the status.
    pub async fn enqueue(&self, queue: &str, job: &Value) -> Result<String, Answer> {
        match self
            .call("POST", &format!("/api/v1/queues/{queue}/jobs"), Some(job))
            .await
        {
            Ok((201, body)) => Ok(body["id"].as_str().unwrap().to_string()),
            other => Err(other),
        }
    }

    /// Waits until the workflow run `run` has completed.
    pub async fn wait_run_completed(&self, run: &str) {
        let path = format!("/api/v1/workflow-runs/{run}");
        wait_until(
            &format!("workflow run {run} completed"),
            Duration::from_secs(60),
            || async {
                match self.call("GET", &path, None).await {
                    Ok((200, r)) if r["state"] == "completed" => Check::Done(()),
                    other => Check::NotYet(format!("{other:?}")),
                }
            },
        )
        .await;
    }
}
