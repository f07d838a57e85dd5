//! Schedules over HTTP: PUT creates and replaces a BullMQ job scheduler
//! (kept in the store too), GET reads ours and other clients', DELETE
//! removes; bad definitions are refused with nothing written; config-file
//! and foreign schedules are protected; every write is audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use queue_core::QueueName;
use queue_core::schedule::{Owner, Schedule, ScheduleSpec, live};
use serde_json::{Value, json};
use support::{TestApi, code};
use testkit::node;

const PATH: &str = "/api/v1/queues/cache/schedules";

#[tokio::test]
async fn put_get_delete_round_trip_through_bullmq() {
    let api = TestApi::start().await;
    let body = json!({
        "pattern": "0 */30 * * * *",
        "tz": "Europe/Berlin",
        "name": "cache-warm",
        "data": {"source": "popular_templates", "target": "templates"},
        "opts": {"attempts": 3, "backoff": {"type": "exponential", "delay": 1000}},
    });
    let (status, created) = api
        .call(
            "PUT",
            &format!("{PATH}/warm"),
            Some(&api.admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["id"], "warm");
    assert_eq!(created["owner"], "api");
    assert_eq!(created["tz"], "Europe/Berlin");
    let upcoming: Vec<u64> = created["upcoming_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(upcoming.len(), 5);
    assert_eq!(upcoming[0], created["next_ms"].as_u64().unwrap());
    for pair in upcoming.windows(2) {
        assert_eq!(pair[1] - pair[0], 30 * 60 * 1000);
    }

    // BullMQ's own client sees it as written.
    let seen = node::run(
        "jobs.mjs",
        &api.redis.url(),
        &json!({"queue": "cache", "ids": []}),
        Duration::from_secs(60),
    )
    .await;
    let s = &seen["schedulers"][0];
    assert_eq!(s["key"], "warm");
    assert_eq!(s["pattern"], "0 */30 * * * *");
    assert_eq!(s["name"], "cache-warm");
    assert_eq!(s["template"]["data"]["target"], "templates");
    assert_eq!(s["next"], created["next_ms"]);

    // The store keeps the declaration for the reconciler.
    let stored = api
        .store
        .get_schedule(&QueueName::new("cache").unwrap(), "warm")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.schedule.spec().pattern.as_deref(),
        Some("0 */30 * * * *")
    );

    // Replacing answers 200; reads work with a read key.
    let (status, replaced) = api
        .call(
            "PUT",
            &format!("{PATH}/warm"),
            Some(&api.admin),
            Some(json!({"every": 600_000, "name": "cache-warm"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["every"], 600_000);
    assert!(replaced.get("pattern").is_none());
    let (status, one) = api
        .call("GET", &format!("{PATH}/warm"), Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["every"], 600_000);
    let (_, list) = api.call("GET", PATH, Some(&api.reader), None).await;
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);

    let (status, _) = api
        .call("DELETE", &format!("{PATH}/warm"), Some(&api.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, gone) = api
        .call("GET", &format!("{PATH}/warm"), Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&gone), "not_found");
    let (status, _) = api
        .call("DELETE", &format!("{PATH}/warm"), Some(&api.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        api.store
            .get_schedule(&QueueName::new("cache").unwrap(), "warm")
            .await
            .unwrap()
            .is_none()
    );

    // Every write is in the audit log, refused ones included.
    let (_, audit) = api
        .call("GET", "/api/v1/audit?limit=10", Some(&api.admin), None)
        .await;
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("schedule.delete".to_string(), "not_found".to_string()),
            ("schedule.delete".to_string(), "ok".to_string()),
            ("schedule.put".to_string(), "ok".to_string()),
            ("schedule.put".to_string(), "ok".to_string()),
        ]
    );
}

#[tokio::test]
async fn bad_definitions_are_refused_and_write_nothing() {
    let api = TestApi::start().await;
    // Keys besides the per-key rate-limit counters each request bumps.
    let written = || async {
        api.redis
            .keys("*")
            .await
            .into_iter()
            .filter(|k| !k.starts_with("drover:bull:ratelimit:"))
            .collect::<Vec<_>>()
    };
    let before = written().await;
    for (body, status, needle) in [
        (
            json!({"pattern": "61 * * * *"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "pattern \"61 * * * *\"",
        ),
        (
            json!({"pattern": "* * * * *", "tz": "Mars/Olympus"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "time zone",
        ),
        (
            json!({"every": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "at least 1",
        ),
        (
            json!({"pattern": "* * * * *", "every": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not both",
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "give pattern"),
        (
            json!({"every": 5, "endDate": 1_000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "in the past",
        ),
        (
            json!({"every": 5, "opts": {"jobId": "x"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jobId",
        ),
        (
            json!({"every": 5, "evry": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
        (
            json!({"every": "soon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            json!({"every": 5, "missed": "sometimes"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
    ] {
        let (got, res) = api
            .call(
                "PUT",
                &format!("{PATH}/s1"),
                Some(&api.admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(got, status, "{body}: {res}");
        let message = res["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let (got, res) = api
        .call(
            "PUT",
            &format!("{PATH}/bad:id"),
            Some(&api.admin),
            Some(json!({"every": 5})),
        )
        .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{res}");
    let (got, _) = api
        .call(
            "PUT",
            "/api/v1/queues/bad:queue/schedules/s1",
            Some(&api.admin),
            Some(json!({"every": 5})),
        )
        .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(written().await, before, "a refused schedule wrote to Redis");
    assert!(api.store.list_schedules().await.unwrap().is_empty());
}

#[tokio::test]
async fn config_and_foreign_schedules_are_protected() {
    let api = TestApi::start().await;
    // One from the config file (as the reconciler writes it), one made by
    // BullMQ's Node client.
    let spec: ScheduleSpec = serde_json::from_value(json!({"every": 60_000})).unwrap();
    let from_config = Schedule::new(QueueName::new("cache").unwrap(), "from-config", spec).unwrap();
    live::apply(&api.conn, &from_config, Owner::Config)
        .await
        .unwrap();
    node::run(
        "scheduler.mjs",
        &api.redis.url(),
        &json!({"queue": "cache", "id": "from-node", "repeat": {"every": 60_000},
                "template": {"name": "n", "data": {}}}),
        Duration::from_secs(60),
    )
    .await;

    for id in ["from-config", "from-node"] {
        let (status, res) = api
            .call(
                "PUT",
                &format!("{PATH}/{id}"),
                Some(&api.admin),
                Some(json!({"every": 1_000})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{res}");
        assert_eq!(code(&res), "conflict");
    }
    let (status, res) = api
        .call(
            "DELETE",
            &format!("{PATH}/from-config"),
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config file")
    );
    // Both unchanged; the list shows who owns what.
    let (_, list) = api.call("GET", PATH, Some(&api.reader), None).await;
    let owners: Vec<(String, Value)> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["owner"].clone()))
        .collect();
    assert!(
        owners.contains(&("from-config".into(), json!("config"))),
        "{owners:?}"
    );
    assert!(
        owners.contains(&("from-node".into(), Value::Null)),
        "{owners:?}"
    );
    for s in list["schedules"].as_array().unwrap() {
        assert_eq!(s["every"], 60_000);
    }
    // A foreign schedule can still be removed on purpose.
    let (status, _) = api
        .call(
            "DELETE",
            &format!("{PATH}/from-node"),
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
