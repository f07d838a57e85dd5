//! Cache warming end to end, as processes: a schedule of the config file
//! enqueues `cache-warm` jobs, a `drover worker --handler cache-warm` fills
//! the keys from an SQL query, and `drover cache get` reads them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an integration test fails by panicking

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use sqlx::Connection as _;
use support::*;
use testkit::{Check, RedisServer, wait_until};

#[tokio::test]
async fn a_schedule_warms_the_cache_and_drover_cache_get_reads_it() {
    let server = RedisServer::start().await;
    let drover = Drover::new(&server);
    let db = drover.dir.path().join("app.db");
    let url = format!("sqlite:{}?mode=rwc", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE templates (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO templates VALUES (1, 'welcome'), (2, 'receipt'), (3, 'reset')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let config = drover.dir.path().join("drover.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[handler.cache_warm.sources.popular_templates]
database = "sqlite:{}"
query = "SELECT id, name FROM templates"

[handler.cache_warm.targets.templates]
key = "cache:template:{{id}}"
ttl_ms = 60000

[[schedule]]
id = "warm-templates"
queue = "cache"
every = 1000
name = "cache-warm"
data = {{ source = "popular_templates", target = "templates" }}
"#,
            db.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    drover.ok(&["migrate"]).await;
    let mut scheduler = drover.spawn("scheduler", &["scheduler", "--config", config]);
    let mut worker = drover.spawn(
        "worker",
        &[
            "worker",
            "--config",
            config,
            "--queue",
            "cache",
            "--handler",
            "cache-warm",
        ],
    );

    let out = wait_until("the cache warmed", Duration::from_secs(30), || async {
        let out = drover
            .run(&["cache", "get", "cache:template:2", "--json"])
            .await;
        if out.status.success() {
            Check::Done(String::from_utf8(out.stdout).unwrap())
        } else {
            Check::NotYet(String::from_utf8_lossy(&out.stderr).to_string())
        }
    })
    .await;
    let got: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        got["value"],
        serde_json::json!({"id": 2, "name": "receipt"})
    );
    let ttl = got["ttl_ms"].as_u64().unwrap();
    assert!(ttl > 0 && ttl <= 60_000);
    let pretty = drover.ok(&["cache", "get", "cache:template:1"]).await;
    assert!(pretty.contains("\"name\": \"welcome\""), "{pretty}");

    let miss = drover.run(&["cache", "get", "cache:template:9"]).await;
    assert_eq!(miss.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&miss.stderr).contains("is not cached"));

    // The warm jobs completed with their counts.
    let jobs = drover
        .json(&["jobs", "cache", "--state", "completed", "--json"])
        .await;
    let text = jobs.to_string();
    assert!(text.contains("\"keys_written\":3"), "{text}");

    for child in [&mut scheduler, &mut worker] {
        child.signal(Signal::SIGTERM);
        assert!(child.wait_exit(Duration::from_secs(30)).await.success());
    }
}
