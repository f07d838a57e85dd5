//! Secrets never reach a log or an error body: a full run of the real
//! binaries (migrate, keys, serve, a worker, the dashboard) at debug log
//! level, against a Redis that needs a password and a PostgreSQL URL that
//! carries one, with valid, bogus and malformed keys, sign-ins right and
//! wrong, and a Redis password that is refused. Then every log and every
//! response body is searched for each secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use support::{Drover, free_port, http_client};
use testkit::{ChildGuard, RedisServer, TestDatabase, wait_until};

/// Starts `drover <args>` at debug level with `env`, logging to
/// `<dir>/<label>.log`.
fn spawn_debug(drover: &Drover, label: &str, args: &[&str], env: &[(&str, &str)]) -> ChildGuard {
    let log = std::fs::File::create(drover.log_path(label)).unwrap();
    let child = drover
        .command(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    ChildGuard::new(format!("drover {label}"), child)
}

#[tokio::test]
async fn no_secret_reaches_a_log_or_an_error_body() {
    let redis = RedisServer::start().await;
    let redis_pw = format!("redis-pw-{}", uuid_like());
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(&redis_pw)
        .query_async::<()>(&mut redis.conn().await)
        .await
        .unwrap();
    let redis_url = format!("redis://:{redis_pw}@127.0.0.1:{}", redis.port());
    let db = TestDatabase::create().await;
    let pg_pw = format!("pg-pw-{}", uuid_like());
    // Trust authentication ignores the password, but the URL carries it
    // everywhere Drover handles the URL.
    let db_url = db
        .url
        .replacen("postgres@", &format!("postgres:{pg_pw}@"), 1);
    assert!(db_url.contains(&pg_pw), "{}", db.url);
    let drover = Drover::new(&redis);
    let env = [
        ("REDIS_URL", redis_url.as_str()),
        ("DATABASE_URL", db_url.as_str()),
    ];
    let run = |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::from(drover.command(args));
        cmd.envs(env).env("RUST_LOG", "debug").kill_on_drop(true);
        async move { cmd.output().await.unwrap() }
    };
    let mut logs = String::new();
    let migrate = run(&["migrate"]).await;
    assert!(migrate.status.success(), "{migrate:?}");
    logs.push_str(&String::from_utf8_lossy(&migrate.stderr));
    let created = run(&[
        "keys", "create", "--name", "ops", "--scope", "admin", "--json",
    ])
    .await;
    assert!(created.status.success(), "{created:?}");
    logs.push_str(&String::from_utf8_lossy(&created.stderr));
    let token = serde_json::from_slice::<Value>(&created.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let addr = format!("127.0.0.1:{}", free_port());
    let mut serve = spawn_debug(&drover, "serve", &["serve", "--addr", &addr], &env);
    let mut worker = spawn_debug(
        &drover,
        "worker",
        &["worker", "--queue", "mail", "--handler", "echo"],
        &env,
    );
    support::wait_healthy(&addr, "drover serve healthy").await;
    let client = http_client();
    let base = format!("http://{addr}");
    let bogus = format!("drv_{}", "5e".repeat(32));
    let mut bodies = String::new();

    // The API with a good key, a bogus token-shaped one, a malformed one.
    for auth in [
        format!("Bearer {token}"),
        format!("Bearer {bogus}"),
        format!("Bearer {token}x"),
        token.clone(),
    ] {
        let res = client
            .post(format!("{base}/api/v1/queues/mail/jobs"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(r#"{"name":"hello","data":{"n":1}}"#)
            .send()
            .await
            .unwrap();
        bodies.push_str(&res.text().await.unwrap());
    }
    // A bad body from an authenticated caller: the 4xx quotes its input,
    // not the key it came with.
    let res = client
        .post(format!("{base}/api/v1/queues/mail/jobs"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(r#"{"name":"hello","data":1,"opts":{"attempts":"three"}}"#)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    bodies.push_str(&res.text().await.unwrap());

    // The dashboard: a wrong key, then the right one, a page, sign-out.
    let form = |key: &str| format!("key={key}&next=%2F");
    let res = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&bogus))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    bodies.push_str(&res.text().await.unwrap());
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let session = cookie.trim_start_matches("drover_session=").to_string();
    let page = no_redirects
        .get(format!("{base}/queues/mail"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains(&session),
        "the page never shows the session token"
    );
    assert!(!html.contains(&token), "nor the key");

    // The job ran (the worker really worked against the password-protected Redis).
    let job_done = wait_until("the job completed", Duration::from_secs(20), || async {
        let res = client
            .get(format!("{base}/api/v1/queues/mail/jobs?state=completed"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        if v["total"].as_u64() >= Some(1) {
            testkit::Check::Done(())
        } else {
            testkit::Check::NotYet(v.to_string())
        }
    });
    job_done.await;

    // A wrong Redis password is refused, and not quoted back.
    let wrong_pw = format!("wrong-pw-{}", uuid_like());
    let wrong_url = format!("redis://:{wrong_pw}@127.0.0.1:{}", redis.port());
    let mut cmd = tokio::process::Command::from(drover.command(&["queues"]));
    cmd.env("REDIS_URL", &wrong_url).env("RUST_LOG", "debug");
    let refused = cmd.output().await.unwrap();
    assert!(!refused.status.success());
    let refused_err = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused_err.trim().is_empty());

    serve.signal(Signal::SIGTERM);
    worker.signal(Signal::SIGTERM);
    serve.wait_exit(Duration::from_secs(30)).await;
    worker.wait_exit(Duration::from_secs(30)).await;
    logs.push_str(&drover.log("serve"));
    logs.push_str(&drover.log("worker"));
    assert!(logs.contains("DEBUG"), "the run logged at debug level");
    assert!(logs.len() > 2_000, "{} bytes of logs", logs.len());

    for (what, secret) in [
        ("the API key", token.as_str()),
        ("a bogus key", bogus.as_str()),
        ("the session token", session.as_str()),
        ("the Redis password", redis_pw.as_str()),
        ("the PostgreSQL password", pg_pw.as_str()),
        ("the wrong Redis password", wrong_pw.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} is in a log");
        assert!(
            !bodies.contains(secret),
            "{what} is in an error body: {bodies}"
        );
        assert!(
            !refused_err.contains(secret),
            "{what} is in the CLI's error: {refused_err}"
        );
    }
    db.drop_database().await;
}

/// 32 hex digits, different every run.
fn uuid_like() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
