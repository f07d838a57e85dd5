//! The autoscaler's routes: policies set and removed through the API (bad
//! ones refused with 422 and nothing written), and what the leader
//! published read back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use queue_core::QueueName;
use queue_core::autoscale;
use serde_json::json;
use support::{TestApi, code};

#[tokio::test]
async fn policies_are_checked_set_shown_and_removed() {
    let api = TestApi::start().await;
    let path = "/api/v1/autoscaler/queues/emails";
    for (body, field) in [
        (json!({"min_workers": 5, "max_workers": 2}), "min_workers"),
        (json!({"actuator": "pm2"}), "unknown variant `pm2`"),
        (json!({"max_workers": 3, "maxworkers": 4}), "maxworkers"),
        (json!({"actuator": "kubernetes"}), "deployment"),
        (
            json!({"scale_down": {"policies": [{"type": "percent", "value": 0, "period_secs": 10}]}}),
            "scale_down.policies[0].value",
        ),
    ] {
        let (status, err) = api
            .call("PUT", path, Some(&api.admin), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert!(!code(&err).is_empty(), "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    assert!(
        autoscale::api_policies(&api.conn).await.unwrap().is_empty(),
        "a refused policy writes nothing"
    );

    let body = json!({"actuator": "process", "min_workers": 0, "max_workers": 6,
        "scale_down": {"stabilization_window_secs": 60}});
    let (status, view) = api.call("PUT", path, Some(&api.admin), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["effective"]["max_workers"], 6);
    assert_eq!(
        view["effective"]["scale_down"]["stabilization_window_secs"],
        60
    );
    assert_eq!(
        view["effective"]["scale_up"]["policies"][0]["type"], "percent",
        "defaults filled in: {view}"
    );
    let stored = autoscale::api_policy(&api.conn, &QueueName::new("emails").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.max_workers, Some(6));

    // No leader has run: the queue is unknown to the autoscaler yet.
    let (status, body) = api.call("GET", path, Some(&api.reader), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api
        .call("GET", "/api/v1/autoscaler", Some(&api.reader), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["leader"].is_null(), "{body}");
    let (status, body) = api
        .call(
            "GET",
            "/api/v1/autoscaler?decisions=0",
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api
        .call(
            "GET",
            &format!("{path}/history?last=10"),
            Some(&api.reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["samples"], json!([]));

    let (status, _) = api.call("DELETE", path, Some(&api.admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.call("DELETE", path, Some(&api.admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let audit = api.store.list_audit(10, None).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "autoscaler.policy.put"),
        "{audit:?}"
    );
}
