//! Recovery: redelivering a delivery or an event and replaying a destination put the right rows
//! back in the queue, due now, with the trigger their next attempt records, and wake the
//! dispatchers. (The HTTP attempts they cause are tested end to end with the dispatcher.)

use std::time::Duration;

use axum::http::StatusCode;
use relay_store::PgPool;
use serde_json::json;
use sqlx::postgres::PgListener;

use crate::support::{OneDelivery, TestApp};

async fn listener(pool: &PgPool) -> PgListener {
    let mut l = PgListener::connect_with(pool).await.unwrap();
    l.listen(relay_store::deliveries::WAKE_CHANNEL).await.unwrap();
    l
}

/// Waits (bounded) for the wake-up the dispatchers listen for.
async fn woken(l: &mut PgListener) {
    let note = tokio::time::timeout(Duration::from_secs(5), l.recv()).await;
    assert!(matches!(note, Ok(Ok(_))), "no wake-up on {}", relay_store::deliveries::WAKE_CHANNEL);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn redeliver_delivery_requeues_any_status_as_manual(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let dst = app.destination(&t, json!({})).await;
    let evt = app.events(&t, src, 1, "message.received").await[0];
    let mut wake = listener(&app.pool).await;
    for status in ["succeeded", "failed", "pending"] {
        let dlv = app.delivery(&t, evt, dst).await;
        if status != "pending" {
            app.finish(dlv, status).await;
        }
        let res = app.call("POST", &format!("/v1/deliveries/{dlv}/redeliver"), Some(&t.token), None).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{status}: {:?}", res.body);
        assert_eq!(
            (res.body["status"].as_str(), res.body["next_trigger"].as_str()),
            (Some("pending"), Some("manual"))
        );
        assert!(res.body["completed_at"].is_null());
        assert_eq!(
            app.delivery_state(dlv).await,
            ("pending".into(), "manual".into(), true, true),
            "{status}"
        );
        woken(&mut wake).await;
    }
    let missing = format!("/v1/deliveries/{}/redeliver", relay_core::DeliveryId::new());
    assert_eq!(app.call("POST", &missing, Some(&t.token), None).await.code(), "delivery_not_found");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn redeliver_delivery_of_a_deleted_destination_is_a_conflict(pool: PgPool) {
    let app = TestApp::new(pool);
    let OneDelivery { t, dst, dlv } = app.one_delivery().await;
    app.call("DELETE", &format!("/v1/destinations/{dst}"), Some(&t.token), None).await;
    let res = app.call("POST", &format!("/v1/deliveries/{dlv}/redeliver"), Some(&t.token), None).await;
    assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "destination_deleted"));
    assert_eq!(app.delivery_state(dlv).await.0, "failed");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn redeliver_event_rematches_the_current_destinations(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let matching = app.destination(&t, json!({"event_types": ["message.*"]})).await;
    let other_type = app.destination(&t, json!({"event_types": ["session.*"]})).await;
    let disabled = app.destination(&t, json!({"enabled": false})).await;
    let evt = app.events(&t, src, 1, "message.received").await[0];
    let existing = app.delivery(&t, evt, matching).await;
    app.finish(existing, "failed").await;
    // Added after the event arrived: redelivery includes it.
    let added_later = app.destination(&t, json!({"device_ids": ["dev_1"]})).await;
    let mut wake = listener(&app.pool).await;

    let path = format!("/v1/events/{evt}/redeliver");
    let res = app.call("POST", &path, Some(&t.token), None).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{:?}", res.body);
    assert_eq!(res.body, json!({"queued": 2}));
    woken(&mut wake).await;
    assert_eq!(app.delivery_state(existing).await, ("pending".into(), "manual".into(), true, true));
    let event = app.get(&format!("/v1/events/{evt}"), &t.token).await;
    let deliveries = event.body["deliveries"].as_array().unwrap();
    let to: Vec<&str> = deliveries.iter().map(|d| d["destination_id"].as_str().unwrap()).collect();
    assert_eq!(deliveries.len(), 2, "{to:?}");
    assert!(to.contains(&matching.to_string().as_str()) && to.contains(&added_later.to_string().as_str()));
    assert!(!to.contains(&other_type.to_string().as_str()) && !to.contains(&disabled.to_string().as_str()));
    assert!(deliveries.iter().all(|d| d["next_trigger"] == "manual" && d["status"] == "pending"));

    // Limited to some destinations: only those (and only if they still match) are queued, and a
    // second redelivery resets the existing row instead of adding one.
    let res = app
        .post(&path, &t.token, json!({"destination_ids": [added_later.to_string(), other_type.to_string()]}))
        .await;
    assert_eq!(res.body, json!({"queued": 1}));
    assert_eq!(
        app.get(&format!("/v1/events/{evt}"), &t.token).await.body["deliveries"].as_array().unwrap().len(),
        2
    );

    let foreign = app.destination(&app.tenant("pro").await, json!({})).await;
    for (body, field) in [
        (json!({"destination_ids": [foreign.to_string()]}), "destination_ids"),
        (json!({"destination_ids": ["src_1"]}), "destination_ids[0]"),
    ] {
        let res = app.post(&path, &t.token, body.clone()).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(res.detail().starts_with(field), "{body}: {}", res.detail());
    }
    assert_eq!(app.post(&path, &t.token, json!({"destinations": []})).await.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn replay_requeues_a_destinations_deliveries_in_range(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let dst = app.destination(&t, json!({})).await;
    let other = app.destination(&t, json!({})).await;
    let events = app.events(&t, src, 4, "message.received").await;
    let failed = app.delivery(&t, events[0], dst).await;
    let succeeded = app.delivery(&t, events[1], dst).await;
    let pending = app.delivery(&t, events[2], dst).await;
    let elsewhere = app.delivery(&t, events[3], other).await;
    app.finish(failed, "failed").await;
    app.finish(succeeded, "succeeded").await;
    app.finish(elsewhere, "failed").await;
    let mut wake = listener(&app.pool).await;
    let path = format!("/v1/destinations/{dst}/replay");

    let res = app
        .post(&path, &t.token, json!({"since": "2000-01-01T00:00:00Z", "until": "2001-01-01T00:00:00Z"}))
        .await;
    assert_eq!((res.status, res.body.clone()), (StatusCode::ACCEPTED, json!({"queued": 0})));
    let res = app.post(&path, &t.token, json!({"since": "2000-01-01T00:00:00Z"})).await;
    assert_eq!((res.status, res.body.clone()), (StatusCode::ACCEPTED, json!({"queued": 1})));
    woken(&mut wake).await;
    assert_eq!(app.delivery_state(failed).await, ("pending".into(), "replay".into(), true, true));
    assert_eq!(app.delivery_state(succeeded).await.0, "succeeded");
    assert_eq!(app.delivery_state(pending).await.1, "auto", "pending deliveries are already queued");
    assert_eq!(app.delivery_state(elsewhere).await.0, "failed", "other destinations are untouched");

    let res = app.post(&path, &t.token, json!({"since": "2000-01-01T00:00:00Z", "status": "all"})).await;
    assert_eq!(res.body, json!({"queued": 1}));
    assert_eq!(app.delivery_state(succeeded).await, ("pending".into(), "replay".into(), true, true));

    for (body, status, field) in [
        (
            json!({"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "until",
        ),
        (json!({"until": "2029-01-01T00:00:00Z"}), StatusCode::BAD_REQUEST, "since"),
        (json!({"since": "2000-01-01T00:00:00Z", "status": "succeeded"}), StatusCode::BAD_REQUEST, "status"),
    ] {
        let res = app.post(&path, &t.token, body.clone()).await;
        assert_eq!(res.status, status, "{body}");
        assert!(res.detail().contains(field), "{body}: {}", res.detail());
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn history_past_its_retention_is_not_redelivered(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await; // 30 days
    let src = app.source(&t).await;
    let dst = app.destination(&t, json!({})).await;
    let now = time::OffsetDateTime::now_utc();
    relay_store::partitions::ensure(&app.pool, 30, now - time::Duration::days(60), now).await.unwrap();
    let minted = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
    let since = minted.duration_since(std::time::UNIX_EPOCH).unwrap();
    let old = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), 0));
    let event = relay_store::events::NewEvent {
        id: relay_core::EventId::from_uuid(old),
        tenant_id: t.id,
        source_id: src,
        wap_event_id: "old".into(),
        event_type: "message.received".into(),
        device_id: None,
        timestamp: now,
        body: bytes::Bytes::from_static(b"{}"),
        dedupe_id: None,
        keep_days: 30,
    };
    let evt = relay_store::events::insert_events(&app.pool, &[event]).await.unwrap()[0];
    let dlv = app.delivery(&t, evt, dst).await;
    app.finish(dlv, "failed").await;

    let res = app.call("POST", &format!("/v1/deliveries/{dlv}/redeliver"), Some(&t.token), None).await;
    assert_eq!((res.status, res.code()), (StatusCode::NOT_FOUND, "delivery_not_found"), "{:?}", res.body);
    let res = app.call("POST", &format!("/v1/events/{evt}/redeliver"), Some(&t.token), None).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{:?}", res.body);
    assert_eq!(app.delivery_state(dlv).await.0, "failed", "nothing was queued");
}
