//! The store through PgBouncer 1.18 in transaction pool mode, with fewer
//! server connections than the store has clients. Without `[store]
//! transaction_pooling` sqlx's named prepared statements break there
//! (names that "already exist" or "do not exist" on the server connection
//! a statement lands on); with it, concurrent work goes through without an
//! error and every write is there. (Every `on_both_engines!` test of the
//! store also runs through PgBouncer; see `support/engine.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // an integration test fails by panicking

use std::path::Path;

use queue_core::now_ms;
use queue_core::store::{AuditEntry, Scope, Store, StoreConfig};
use serde_json::json;
use testkit::{PgBouncer, TestDatabase};

const TASKS: usize = 8;
const ROUNDS: usize = 15;

async fn store(url: &str, transaction_pooling: bool, migrate_url: Option<&str>) -> Store {
    let settings = StoreConfig {
        url: Some(url.to_owned()),
        transaction_pooling,
        migrate_url: migrate_url.map(str::to_owned),
        ..StoreConfig::default()
    }
    .resolve(Path::new("unused"))
    .unwrap();
    Store::connect(&settings).await.unwrap()
}

/// `TASKS` tasks each creating keys, authenticating with them, listing
/// keys, and writing and reading audit records; the errors they met.
async fn concurrent_work(store: &Store, label: &str) -> Vec<String> {
    let tasks = (0..TASKS).map(|t| {
        let store = store.clone();
        let label = label.to_owned();
        tokio::spawn(async move {
            let mut errors = Vec::new();
            let scopes: Vec<Scope> = vec!["read".parse().unwrap()];
            for r in 0..ROUNDS {
                let name = format!("{label}-{t}-{r}");
                match store.create_api_key(&name, &scopes, None).await {
                    Ok(new) => match store.authenticate(&new.token).await {
                        Ok(Some(key)) => assert_eq!(key.name, name),
                        Ok(None) => errors.push(format!("{name}: its token was not found")),
                        Err(e) => errors.push(e.to_string()),
                    },
                    Err(e) => errors.push(e.to_string()),
                }
                let entry = AuditEntry {
                    at_ms: now_ms(),
                    actor: format!("key:{name}"),
                    action: "queue.pause".into(),
                    queue: Some("emails".into()),
                    target: None,
                    params: json!({"round": r}),
                    outcome: "ok".into(),
                };
                if let Err(e) = store.record_audit(&entry).await {
                    errors.push(e.to_string());
                }
                if let Err(e) = store.list_api_keys(false).await {
                    errors.push(e.to_string());
                }
                if let Err(e) = store.list_audit(20, None).await {
                    errors.push(e.to_string());
                }
            }
            errors
        })
    });
    let mut errors = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        errors.extend(t.await.unwrap());
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_statements_break_under_transaction_pooling_and_the_setting_fixes_it() {
    let db = TestDatabase::create().await;
    let bouncer = PgBouncer::start(2).await;
    let through = bouncer.url_for(&db.url);

    // Migrations refuse the pooler and say what to do; over the direct
    // URL they apply.
    let pooled = store(&through, true, None).await;
    let err = pooled.migrate().await.unwrap_err().to_string();
    assert!(err.contains("migrate_url"), "{err}");
    let pooled = store(&through, true, Some(&db.url)).await;
    assert!(!pooled.migrate().await.unwrap().is_empty());
    pooled.check_schema().await.unwrap();

    // sqlx as it comes: its named statements meet each other on PgBouncer's
    // two server connections.
    let naive = store(&through, false, None).await;
    let errors = concurrent_work(&naive, "naive").await;
    assert!(
        errors.iter().any(|e| e.contains("prepared statement")),
        "expected prepared-statement errors without transaction_pooling, got {errors:?}"
    );
    naive.close().await;
    let naive_errors = errors.len();
    let kinds: Vec<&str> = ["already exists", "does not exist", "requires"]
        .into_iter()
        .filter(|kind| errors.iter().any(|e| e.contains(kind)))
        .collect();

    let started = std::time::Instant::now();
    let errors = concurrent_work(&pooled, "pooled").await;
    let through_bouncer = started.elapsed();
    assert!(errors.is_empty(), "{} errors: {errors:?}", errors.len());
    // The same work straight to PostgreSQL, for the figure below.
    let direct = store(&db.url, false, None).await;
    let started = std::time::Instant::now();
    let errors = concurrent_work(&direct, "direct").await;
    let straight = started.elapsed();
    assert!(errors.is_empty(), "{errors:?}");
    direct.close().await;
    eprintln!(
        "store: {} operations by {TASKS} tasks in {:.2}s through PgBouncer (transaction mode, 2 \
         server connections), {:.2}s straight to PostgreSQL; without transaction_pooling \
         {naive_errors} failed (prepared statement ... {kinds:?})",
        TASKS * ROUNDS * 5,
        through_bouncer.as_secs_f64(),
        straight.as_secs_f64()
    );
    let keys = pooled.list_api_keys(false).await.unwrap();
    let made = keys
        .iter()
        .filter(|k| k.name.starts_with("pooled-"))
        .count();
    assert_eq!(made, TASKS * ROUNDS);
    let audit = pooled.list_audit(1_000, None).await.unwrap();
    let written = audit
        .iter()
        .filter(|a| a.actor.starts_with("key:pooled-"))
        .count();
    assert_eq!(written, TASKS * ROUNDS);
    pooled.close().await;
    drop(bouncer);
    db.drop_database().await;
}
