//! The logs: events, deliveries, attempts and rejections, their filters, and keyset pagination
//! that stays exact while new rows arrive.

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use relay_store::PgPool;
use relay_store::rejections::NewRejection;
use serde_json::{Value, json};

use crate::support::{OneDelivery, TestApp};

fn ids(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn pages_have_no_duplicates_or_gaps_while_events_arrive(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let mut original: Vec<String> = Vec::new();
    for _ in 0..4 {
        original.extend(app.events(&t, src, 30, "message.received").await.iter().map(|e| e.to_string()));
    }
    original.sort();
    original.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/events?limit=50&cursor={c}"),
            None => "/v1/events?limit=50".to_owned(),
        };
        let page = app.get(&path, &t.token).await;
        assert_eq!(page.status, StatusCode::OK);
        sizes.push(page.body["data"].as_array().unwrap().len());
        seen.extend(ids(&page.body));
        // New events arrive between pages; they are newer than every cursor, so they never shift
        // the pages that follow.
        app.events(&t, src, 7, "message.received").await;
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(seen, original, "pages must be exactly the first 120 events, newest first");
    let fresh = app.get("/v1/events?limit=250", &t.token).await;
    assert_eq!(fresh.body["data"].as_array().unwrap().len(), 120 + 21);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn events_list_filters_and_show_payload_and_deliveries(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let a = app.source(&t).await;
    let b = app.source(&t).await;
    let dst = app.destination(&t, json!({})).await;
    let in_a = app.events(&t, a, 2, "message.received").await;
    let in_b = app.events(&t, b, 1, "session.health").await;
    let dlv = app.delivery(&t, in_b[0], dst).await;

    let by_source = app.get(&format!("/v1/events?source_id={a}"), &t.token).await;
    assert_eq!(ids(&by_source.body), [in_a[1].to_string(), in_a[0].to_string()]);
    let by_type = app.get("/v1/events?type=session.health", &t.token).await;
    assert_eq!(ids(&by_type.body), [in_b[0].to_string()]);
    let event = &by_type.body["data"][0];
    assert_eq!(event["source_id"], b.to_string());
    assert_eq!(event["device_id"], "dev_1");
    assert_eq!(event["payload"]["type"], "session.health");
    assert_eq!(event["payload"]["message"], json!({"body": "Hi"}));
    assert!(event.get("deliveries").is_none());
    let wap = event["wap_event_id"].as_str().unwrap();
    assert_eq!(
        ids(&app.get(&format!("/v1/events?wap_event_id={wap}"), &t.token).await.body),
        [in_b[0].to_string()]
    );
    assert_eq!(app.get("/v1/events?device_id=dev_2", &t.token).await.body["data"], json!([]));
    assert_eq!(app.get("/v1/events?until=2000-01-01T00:00:00Z", &t.token).await.body["data"], json!([]));
    let since = app.get("/v1/events?since=2000-01-01T00:00:00Z", &t.token).await;
    assert_eq!(since.body["data"].as_array().unwrap().len(), 3);

    let one = app.get(&format!("/v1/events/{}", in_b[0]), &t.token).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["deliveries"][0]["id"], dlv.to_string());
    assert_eq!(one.body["deliveries"][0]["status"], "pending");
    assert_eq!(
        app.get(&format!("/v1/events/{}", relay_core::EventId::new()), &t.token).await.code(),
        "event_not_found"
    );

    for (query, status, field) in [
        ("source_id=nope", StatusCode::UNPROCESSABLE_ENTITY, "source_id"),
        ("since=yesterday", StatusCode::BAD_REQUEST, "since"),
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("kind=x", StatusCode::BAD_REQUEST, "kind"),
    ] {
        let res = app.get(&format!("/v1/events?{query}"), &t.token).await;
        assert_eq!(res.status, status, "{query}");
        assert!(res.detail().contains(field), "{query}: {}", res.detail());
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn deliveries_and_attempts_list_with_filters(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let d1 = app.destination(&t, json!({})).await;
    let d2 = app.destination(&t, json!({})).await;
    let events = app.events(&t, src, 2, "message.received").await;
    let ok = app.delivery(&t, events[0], d1).await;
    let bad = app.delivery(&t, events[0], d2).await;
    let waiting = app.delivery(&t, events[1], d1).await;
    app.attempt(&t, ok, d1, "success", 120).await;
    app.finish(ok, "succeeded").await;
    app.attempt(&t, bad, d2, "timeout", 10_000).await;
    app.attempt(&t, bad, d2, "http_error", 300).await;
    app.finish(bad, "failed").await;

    let all = app.get("/v1/deliveries", &t.token).await;
    assert_eq!(ids(&all.body), [waiting.to_string(), bad.to_string(), ok.to_string()]);
    assert_eq!(ids(&app.get("/v1/deliveries?status=failed", &t.token).await.body), [bad.to_string()]);
    assert_eq!(
        ids(&app.get(&format!("/v1/deliveries?destination_id={d1}"), &t.token).await.body),
        [waiting.to_string(), ok.to_string()]
    );
    assert_eq!(
        ids(&app.get(&format!("/v1/deliveries?event_id={}", events[1]), &t.token).await.body),
        [waiting.to_string()]
    );
    let one = app.get(&format!("/v1/deliveries/{bad}"), &t.token).await;
    assert_eq!(one.body["status"], "failed");
    assert_eq!(one.body["event_id"], events[0].to_string());
    assert_eq!(one.body["attempt_log"].as_array().unwrap().len(), 2);
    assert_eq!(one.body["attempt_log"][0]["outcome"], "http_error");
    for (query, status) in
        [("status=lost", StatusCode::BAD_REQUEST), ("event_id=1", StatusCode::UNPROCESSABLE_ENTITY)]
    {
        assert_eq!(app.get(&format!("/v1/deliveries?{query}"), &t.token).await.status, status, "{query}");
    }

    let of_bad = app.get(&format!("/v1/deliveries/{bad}/attempts?limit=1"), &t.token).await;
    assert_eq!(of_bad.status, StatusCode::OK);
    let attempt = &of_bad.body["data"][0];
    assert_eq!(attempt["outcome"], "http_error");
    assert_eq!(attempt["delivery_id"], bad.to_string());
    assert_eq!((attempt["number"].as_i64(), attempt["trigger"].as_str()), (Some(1), Some("auto")));
    assert_eq!(attempt["response_headers"], json!({"content-type": "text/plain"}));
    let next = of_bad.body["next_cursor"].as_str().unwrap();
    let rest = app.get(&format!("/v1/deliveries/{bad}/attempts?limit=1&cursor={next}"), &t.token).await;
    assert_eq!(rest.body["data"][0]["outcome"], "timeout");
    assert!(rest.body["next_cursor"].is_null());
    assert_eq!(
        app.get(&format!("/v1/deliveries/{bad}/attempts?limit=999"), &t.token).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let all = app.get("/v1/attempts", &t.token).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 3);
    let timeouts = app.get("/v1/attempts?outcome=timeout", &t.token).await;
    assert_eq!(timeouts.body["data"].as_array().unwrap().len(), 1);
    let of_d1 = app.get(&format!("/v1/attempts?destination_id={d1}"), &t.token).await;
    assert_eq!(of_d1.body["data"][0]["outcome"], "success");
    assert_eq!(of_d1.body["data"].as_array().unwrap().len(), 1);
    let res = app.get("/v1/attempts?outcome=exploded", &t.token).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.detail().contains("outcome") || res.detail().contains("exploded"), "{}", res.detail());
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn rejections_list_with_filters(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("starter").await;
    let src = app.source(&t).await;
    let headers = BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]);
    for (reason, status) in [("invalid_signature", 401), ("invalid_event", 400)] {
        let r = NewRejection {
            tenant_id: t.id,
            source_id: src,
            reason,
            status,
            detail: Some("why"),
            headers: headers.clone(),
            body: br#"{"eventId":"e1"}"#,
            body_bytes: 16,
        };
        let id = relay_core::RejectionId::new();
        relay_store::rejections::insert_rejection(&app.pool, id, &r).await.unwrap();
        relay_store::rejections::add_repeats(&app.pool, &[(id, 3)]).await.unwrap();
    }
    let all = app.get("/v1/rejections", &t.token).await;
    assert_eq!(all.status, StatusCode::OK);
    let reasons: Vec<&str> =
        all.body["data"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["invalid_event", "invalid_signature"]);
    assert!(all.body["data"].as_array().unwrap().iter().all(|r| r["repeats"] == 3), "{}", all.body);
    let first = &all.body["data"][0];
    assert_eq!((first["status"].as_i64(), first["body"].as_str()), (Some(400), Some(r#"{"eventId":"e1"}"#)));
    assert_eq!(first["headers"], json!({"content-type": "application/json"}));
    let sig = app.get("/v1/rejections?reason=invalid_signature", &t.token).await;
    assert_eq!(sig.body["data"].as_array().unwrap().len(), 1);
    let other = app.get(&format!("/v1/rejections?source_id={}", relay_core::SourceId::new()), &t.token).await;
    assert_eq!(other.body["data"], json!([]));
    assert_eq!(app.get("/v1/rejections?since=2999-01-01T00:00:00Z", &t.token).await.body["data"], json!([]));
    let res = app.get("/v1/rejections?source_id=x", &t.token).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unique: HashSet<String> = ids(&all.body).into_iter().collect();
    assert_eq!(unique.len(), 2);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn dates_at_the_ends_of_the_calendar_answer_normally(pool: PgPool) {
    let app = TestApp::new(pool);
    let OneDelivery { t, dst, dlv } = app.one_delivery().await;
    app.finish(dlv, "failed").await;
    let far = "9999-12-31T23:55:00Z";
    let early = "0000-01-01T00:00:00Z";
    for (path, found) in [
        (format!("/v1/events?until={far}"), 1),
        (format!("/v1/events?since={early}&until={far}"), 1),
        (format!("/v1/events?since={far}"), 0),
        (format!("/v1/events?until={early}"), 0),
        (format!("/v1/deliveries?since={early}&until={far}"), 1),
        (format!("/v1/deliveries?since={far}"), 0),
        (format!("/v1/rejections?since={early}"), 0),
        (format!("/v1/rejections?since={far}"), 0),
    ] {
        let res = app.get(&path, &t.token).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {:?}", res.body);
        assert_eq!(res.body["data"].as_array().unwrap().len(), found, "{path}");
    }
    let stats = app.get(&format!("/v1/stats?since={early}"), &t.token).await;
    assert_eq!(stats.status, StatusCode::OK, "{:?}", stats.body);
    // An offset that moves the instant past the calendar's end is refused or answered, never a 500.
    for query in ["until=9999-12-31T23:59:59-23:59", "since=0000-01-01T00:00:00%2B23:59"] {
        for list in ["events", "deliveries", "rejections", "stats"] {
            let res = app.get(&format!("/v1/{list}?{query}"), &t.token).await;
            assert!(
                matches!(res.status, StatusCode::OK | StatusCode::BAD_REQUEST),
                "{list}?{query}: {res:?}"
            );
        }
    }
    let res = app.get("/v1/events?until=9999-12-31T23:59:59-23:59", &t.token).await;
    assert_eq!((res.status, res.code()), (StatusCode::BAD_REQUEST, "invalid_query"));
    assert!(res.detail().contains("until") && res.detail().contains("out of range"), "{}", res.detail());

    let replay = format!("/v1/destinations/{dst}/replay");
    let res = app.post(&replay, &t.token, json!({"since": early, "until": far})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{:?}", res.body);
    assert_eq!(res.body["queued"], 1);
    let res = app.post(&replay, &t.token, json!({"since": "9999-12-31T23:50:00Z", "until": far})).await;
    assert_eq!((res.status, &res.body["queued"]), (StatusCode::ACCEPTED, &json!(0)));
    let res =
        app.post(&replay, &t.token, json!({"since": early, "until": "9999-12-31T23:59:59-23:59"})).await;
    assert!(res.status.is_client_error(), "{res:?}");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn events_by_wap_event_id_use_the_dedupe_keys_and_page(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let a = app.source(&t).await;
    let b = app.source(&t).await;
    // A long history: 20 000 events of this tenant.
    sqlx::query(
        "INSERT INTO events (id, tenant_id, source_id, wap_event_id, type, \"timestamp\", body) \
         SELECT gen_random_uuid(), $1, $2, 'hist_' || n, 'message.received', now(), '{}' \
         FROM generate_series(1, 20000) n",
    )
    .bind(t.id.uuid())
    .bind(a.uuid())
    .execute(&app.pool)
    .await
    .unwrap();
    // WAPing's ids are unique per source only: the same one may arrive through two sources.
    let mut expected = Vec::new();
    for src in [a, b] {
        let e = relay_store::events::NewEvent {
            id: relay_core::EventId::new(),
            tenant_id: t.id,
            source_id: src,
            wap_event_id: "evt_twice".to_owned(),
            event_type: "message.received".to_owned(),
            device_id: None,
            timestamp: time::OffsetDateTime::now_utc(),
            body: br#"{"eventId":"evt_twice"}"#.to_vec().into(),
            dedupe_id: None,
            keep_days: 0,
        };
        expected.extend(relay_store::events::insert_events(&app.pool, &[e]).await.unwrap());
    }
    sqlx::query("ANALYZE events").execute(&app.pool).await.unwrap();

    let first = app.get("/v1/events?wap_event_id=evt_twice&limit=1", &t.token).await;
    assert_eq!(ids(&first.body), [expected[1].to_string()]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second =
        app.get(&format!("/v1/events?wap_event_id=evt_twice&limit=1&cursor={cursor}"), &t.token).await;
    assert_eq!(ids(&second.body), [expected[0].to_string()]);
    assert!(second.body["next_cursor"].is_null());
    let other = app.tenant("pro").await;
    assert_eq!(app.get("/v1/events?wap_event_id=evt_twice", &other.token).await.body["data"], json!([]));

    let filter =
        relay_store::events::EventFilter { wap_event_id: Some("evt_twice".to_owned()), ..Default::default() };
    let plan = relay_store::events::explain_list_events(&app.pool, t.id, &filter, None, 51).await.unwrap();
    assert!(plan.contains("event_keys_pkey"), "{plan}");
    assert!(!plan.contains("Seq Scan on events"), "{plan}");
}
