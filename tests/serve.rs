//! `drover migrate`, `drover keys` and `drover serve` as an operator runs
//! them: the store must be migrated, keys are shown once and stored hashed,
//! revocation takes effect on a running server, SIGTERM stops it cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::{Drover, free_port, wait_healthy};
use testkit::{Check, RedisServer, wait_until};

#[tokio::test]
async fn an_operator_migrates_creates_keys_serves_and_revokes() {
    let redis = RedisServer::start().await;
    let drover = Drover::new(&redis);

    // An unmigrated store is refused with the way out.
    let out = drover.run(&["keys", "list"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("drover migrate"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let migrated = drover.ok(&["migrate"]).await;
    assert!(migrated.contains("applied 1"), "{migrated}");
    assert!(drover.ok(&["migrate"]).await.contains("up to date"));

    let key: Value = drover
        .json(&[
            "keys",
            "create",
            "--name",
            "app",
            "--scope",
            "enqueue:emails",
            "--json",
        ])
        .await;
    let token = key["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("drv_"), "{key}");
    let listed = drover.ok(&["keys", "list", "--json"]).await;
    assert!(!listed.contains(&token), "the secret is never shown again");
    assert!(listed.contains("enqueue:emails"), "{listed}");
    // Bad scopes and duplicate names are usage errors.
    let out = drover
        .run(&["keys", "create", "--name", "x", "--scope", "root"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = drover
        .run(&[
            "keys",
            "create",
            "--name",
            "x",
            "--scope",
            "read",
            "--rate-limit",
            "0",
        ])
        .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "a limit of 0 would refuse everything: {out:?}"
    );
    let out = drover
        .run(&["keys", "create", "--name", "app", "--scope", "read"])
        .await;
    assert_ne!(out.status.code(), Some(0), "{out:?}");

    let addr = format!("127.0.0.1:{}", free_port());
    let mut serve = drover.spawn("serve", &["serve", "--addr", &addr]);
    wait_healthy(&addr, "drover serve healthy").await;
    let client = support::http_client();
    let post = |token: Option<String>| {
        let mut req = client
            .post(format!("http://{addr}/api/v1/queues/emails/jobs"))
            .header("content-type", "application/json")
            .body(json!({"name": "welcome", "data": {"to": "ada"}}).to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let res = post(Some(token.clone())).await.unwrap();
    assert_eq!(res.status(), 201);
    let id = serde_json::from_str::<Value>(&res.text().await.unwrap()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = drover.json(&["job", "emails", &id, "--json"]).await;
    assert_eq!(job["state"], "waiting");
    assert_eq!(post(None).await.unwrap().status(), 401);
    let ready: Value = serde_json::from_str(
        &client
            .get(format!("http://{addr}/ready"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");

    drover.ok(&["keys", "revoke", "app"]).await;
    wait_until("revoked key refused", Duration::from_secs(15), || {
        let req = post(Some(token.clone()));
        async move {
            match req.await.map(|r| r.status().as_u16()) {
                Ok(401) => Check::Done(()),
                other => Check::NotYet(format!("{other:?}")),
            }
        }
    })
    .await;

    // Key changes are in the audit log, readable by an admin key.
    let admin: Value = drover
        .json(&[
            "keys", "create", "--name", "ops", "--scope", "admin", "--json",
        ])
        .await;
    let audit: Value = serde_json::from_str(
        &client
            .get(format!("http://{addr}/api/v1/audit"))
            .bearer_auth(admin["token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["keys-create", "keys-revoke", "keys-create", "keys-create"],
        "newest first, the refused duplicate included: {audit}"
    );
    assert!(
        !audit.to_string().contains(&token),
        "no secret in the audit log"
    );

    serve.signal(Signal::SIGTERM);
    let status = serve.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}: {}", drover.log("serve"));
}

#[tokio::test]
async fn serve_refuses_bad_flags_and_unmigrated_stores() {
    let redis = RedisServer::start().await;
    let drover = Drover::new(&redis);
    let out = drover.run(&["serve", "--addr", "nowhere"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = drover
        .run(&["serve", "--addr", &format!("127.0.0.1:{}", free_port())])
        .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--migrate"),
        "{out:?}"
    );
    let out = drover
        .run(&[
            "serve",
            "--database-url",
            "mysql://x",
            "--addr",
            "127.0.0.1:1",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
