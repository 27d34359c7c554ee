//! Destinations: the signing secret shown only on create and by `/secret`, rotation with a grace
//! period, the SSRF address policy, filters and limits, enable/disable, and delete.

use axum::http::StatusCode;
use relay_store::PgPool;
use serde_json::json;

use crate::support::{OneDelivery, PUBLIC_URL, TestApp};

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn create_destination_returns_its_signing_secret_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("starter").await;
    let src = app.source(&t).await;
    let body = json!({"url": PUBLIC_URL, "description": "CRM", "source_ids": [src.to_string()],
        "event_types": ["message.*"], "device_ids": ["dev_1"], "headers": {"Authorization": "Bearer crm"},
        "timeout_ms": 5000, "rate_limit_per_second": 5, "max_in_flight": 4,
        "retry_policy": {"initial_delay_ms": 1000, "max_delay_ms": 60000, "window_seconds": 3600}});
    let res = app.post("/v1/destinations", &t.token, body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let secret = res.body["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    relay_core::secret::WebhookSecret::parse(&secret).unwrap();
    assert_eq!(res.body["source_ids"], json!([src.to_string()]));
    assert_eq!(res.body["event_types"], json!(["message.*"]));
    assert_eq!(res.body["headers"], json!({"Authorization": "…"}), "a credential is never shown");
    assert_eq!(
        res.body["retry_policy"],
        json!({"initial_delay_ms": 1000, "max_delay_ms": 60000, "window_seconds": 3600})
    );
    assert_eq!((res.body["timeout_ms"].as_i64(), res.body["max_in_flight"].as_i64()), (Some(5000), Some(4)));

    let path = format!("/v1/destinations/{}", res.id());
    let got = app.get(&path, &t.token).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body.get("signing_secret").is_none());
    assert!(!got.body.to_string().contains(&secret));
    let listed = app.get("/v1/destinations", &t.token).await;
    assert!(!listed.body.to_string().contains(&secret));
    let shown = app.get(&format!("{path}/secret"), &t.token).await;
    assert_eq!(shown.body["signing_secret"], secret);
    assert!(shown.body["previous_signing_secret"].is_null());

    // Defaults.
    let res = app.post("/v1/destinations", &t.token, json!({"url": "http://8.8.4.4:8080/x"})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    assert_eq!(res.body["event_types"], json!(["*"]));
    assert_eq!(
        res.body["retry_policy"],
        json!({"initial_delay_ms": 5000, "max_delay_ms": 3_600_000, "window_seconds": 86_400})
    );
    assert_eq!((res.body["timeout_ms"].as_i64(), res.body["enabled"].as_bool()), (Some(10_000), Some(true)));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn create_destination_refuses_blocked_addresses_and_bad_fields(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("enterprise").await;
    let other = app.tenant("enterprise").await;
    let foreign_source = app.source(&other).await;
    for url in [
        "http://127.0.0.1/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/",
        "http://localhost:8080/",
        "http://metadata.google.internal/",
        "ftp://8.8.8.8/",
        "not a url",
    ] {
        let res = app.post("/v1/destinations", &t.token, json!({"url": url})).await;
        assert_eq!(
            (res.status, res.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "destination_not_allowed"),
            "{url}"
        );
        assert!(res.detail().starts_with("url:"), "{url}: {}", res.detail());
    }
    let cases = [
        (json!({"event_types": ["mess age"]}), "event_types[0]"),
        (json!({"event_types": []}), "event_types"),
        (json!({"headers": {"Webhook-Signature": "x"}}), "headers.Webhook-Signature"),
        (json!({"headers": {"X-Wap-Event-Id": "x"}}), "headers.X-Wap-Event-Id"),
        (json!({"headers": {"X-Ok": "line\nbreak"}}), "headers.X-Ok"),
        (json!({"timeout_ms": 60000}), "timeout_ms"),
        (json!({"max_in_flight": 0}), "max_in_flight"),
        (json!({"rate_limit_per_second": 0}), "rate_limit_per_second"),
        (json!({"retry_policy": {"window_seconds": 300_000}}), "retry_policy.window_seconds"),
        (json!({"retry_policy": {"initial_delay_ms": 10, "max_delay_ms": 5}}), "retry_policy.max_delay_ms"),
        (json!({"source_ids": [foreign_source.to_string()]}), "source_ids"),
        (json!({"source_ids": ["dst_x"]}), "source_ids[0]"),
        (json!({"device_ids": [""]}), "device_ids[0]"),
    ];
    for (extra, field) in cases {
        let mut body = json!({"url": PUBLIC_URL});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let res = app.post("/v1/destinations", &t.token, body).await;
        assert_eq!(
            (res.status, res.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
            "{extra}"
        );
        assert!(res.detail().starts_with(field), "{extra}: {}", res.detail());
    }
    let res = app.post("/v1/destinations", &t.token, json!({"url": PUBLIC_URL, "retries": 3})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.detail().contains("retries"));
    assert_eq!(app.get("/v1/destinations", &t.token).await.body["data"], json!([]));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn host_names_are_judged_by_what_they_resolve_to(pool: PgPool) {
    // The machine's own name resolves to a local address through /etc/hosts (no DNS needed).
    let Some(name) = std::fs::read_to_string("/etc/hostname").ok().map(|n| n.trim().to_owned()) else {
        return;
    };
    let resolved: Vec<_> = match tokio::net::lookup_host((name.as_str(), 80)).await {
        Ok(addrs) => addrs.collect(),
        Err(_) => return,
    };
    if resolved.is_empty() || resolved.iter().any(|a| relay_core::address::ip_allowed(a.ip())) {
        return;
    }
    let app = TestApp::new(pool.clone());
    let t = app.tenant("pro").await;
    let res = app.post("/v1/destinations", &t.token, json!({"url": format!("http://{name}:9/hook")})).await;
    assert_eq!((res.status, res.code()), (StatusCode::UNPROCESSABLE_ENTITY, "destination_not_allowed"));
    // With private destinations allowed (tests, on-prem) the same name is accepted.
    let open = TestApp::with_policy(pool, true);
    let res = open.post("/v1/destinations", &t.token, json!({"url": format!("http://{name}:9/hook")})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let res = open.post("/v1/destinations", &t.token, json!({"url": "http://169.254.169.254/"})).await;
    assert_eq!(res.code(), "destination_not_allowed", "metadata stays refused");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn destinations_past_the_plan_count_answer_plan_limit(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("starter").await;
    for _ in 0..3 {
        app.destination(&t, json!({})).await;
    }
    let res = app.post("/v1/destinations", &t.token, json!({"url": PUBLIC_URL})).await;
    assert_eq!((res.status, res.code()), (StatusCode::FORBIDDEN, "plan_limit"));
    let res = app
        .patch(&format!("/v1/tenants/{}", t.id), &app.operator, json!({"limits": {"destinations": 4}}))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let res = app.post("/v1/destinations", &t.token, json!({"url": PUBLIC_URL})).await;
    assert_eq!(res.status, StatusCode::CREATED);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn update_destination_merges_and_revalidates(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let id = app.destination(&t, json!({"description": "CRM", "rate_limit_per_second": 3})).await;
    let path = format!("/v1/destinations/{id}");
    let res =
        app.patch(&path, &t.token, json!({"enabled": false, "description": null, "timeout_ms": 2000})).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["enabled"], false);
    assert!(res.body["disabled_reason"].is_string() && res.body["disabled_at"].is_string());
    assert!(res.body["description"].is_null());
    assert_eq!(
        (res.body["timeout_ms"].as_i64(), res.body["rate_limit_per_second"].as_i64()),
        (Some(2000), Some(3))
    );
    // The relay disabled it after 72 h of failures; `enabled: true` brings it back afresh.
    sqlx::query("UPDATE destinations SET failing_since = now() - interval '80 hours', disabled_reason = 'failing' WHERE id = $1")
        .bind(id.uuid())
        .execute(&app.pool)
        .await
        .unwrap();
    let res = app.patch(&path, &t.token, json!({"enabled": true, "rate_limit_per_second": null})).await;
    assert_eq!(res.body["enabled"], true);
    assert!(res.body["disabled_reason"].is_null() && res.body["failing_since"].is_null());
    assert!(res.body["rate_limit_per_second"].is_null());
    let res = app.patch(&path, &t.token, json!({"retry_policy": {"window_seconds": 200_000}})).await;
    assert_eq!(res.body["retry_policy"]["window_seconds"], 200_000, "pro allows 72 h");

    for (body, code, field) in [
        (json!({"url": "http://127.0.0.1/"}), "destination_not_allowed", "url"),
        (json!({"event_types": ["*.x"]}), "validation_error", "event_types[0]"),
        (
            json!({"retry_policy": {"window_seconds": 300_000}}),
            "validation_error",
            "retry_policy.window_seconds",
        ),
    ] {
        let res = app.patch(&path, &t.token, body.clone()).await;
        assert_eq!((res.status, res.code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{body}");
        assert!(res.detail().starts_with(field), "{body}: {}", res.detail());
    }
    assert_eq!(app.patch(&path, &t.token, json!({"enabled": "yes"})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get(&path, &t.token).await.body["url"], PUBLIC_URL);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn deleting_a_destination_fails_its_pending_deliveries(pool: PgPool) {
    let app = TestApp::new(pool);
    let OneDelivery { t, dst, dlv } = app.one_delivery().await;
    let path = format!("/v1/destinations/{dst}");
    let res = app.call("DELETE", &path, Some(&t.token), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &t.token).await.code(), "destination_not_found");
    assert_eq!(app.delivery_state(dlv).await.0, "failed");
    assert_eq!(app.get("/v1/tenant", &t.token).await.body["usage"]["backlog"], 0);
    assert_eq!(app.call("DELETE", &path, Some(&t.token), None).await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn rotating_the_signing_secret_keeps_the_previous_one_signing(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("starter").await;
    let res = app.post("/v1/destinations", &t.token, json!({"url": PUBLIC_URL})).await;
    let first = res.body["signing_secret"].as_str().unwrap().to_owned();
    let path = format!("/v1/destinations/{}/secret", res.id());
    let rotated = app.call("POST", &format!("{path}/rotate"), Some(&t.token), None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let second = rotated.body["signing_secret"].as_str().unwrap().to_owned();
    assert!(second.starts_with("whsec_") && second != first);
    assert_eq!(rotated.body["previous_signing_secret"], first);
    let at = time::OffsetDateTime::parse(
        rotated.body["previous_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((86_300..=86_400).contains(&left), "{left}");
    let shown = app.get(&path, &t.token).await;
    assert_eq!(
        (shown.body["signing_secret"].as_str(), shown.body["previous_signing_secret"].as_str()),
        (Some(second.as_str()), Some(first.as_str()))
    );

    let res = app.post(&format!("{path}/rotate"), &t.token, json!({"previous_valid_seconds": 60})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["previous_signing_secret"], second);
    let res =
        app.post(&format!("{path}/rotate"), &t.token, json!({"previous_valid_seconds": 9_999_999})).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.detail().starts_with("previous_valid_seconds"));
    let res = app.post(&format!("{path}/rotate"), &t.token, json!({"grace": 1})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
}

/// The whole stored row as text: what a database dump or a read replica would show.
async fn stored_row(app: &TestApp, id: &str) -> String {
    let id: relay_core::DestinationId = id.parse().unwrap();
    sqlx::query_scalar("SELECT d::text FROM destinations d WHERE id = $1")
        .bind(id.uuid())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn credential_headers_are_masked_in_output_and_encrypted_at_rest(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let bearer = "Bearer sk_live_abcdefgh1234";
    let api_key = "key-0123456789wxyz";
    let headers = json!({"Authorization": bearer, "X-Api-Key": api_key, "Cookie": "sid=s3cr3t",
        "X-Session-Id": "sess-42", "X-Team": "payments"});
    let masked = json!({"Authorization": "…1234", "X-Api-Key": "…wxyz", "Cookie": "…",
        "X-Session-Id": "…", "X-Team": "payments"});
    let res = app.post("/v1/destinations", &t.token, json!({"url": PUBLIC_URL, "headers": headers})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    assert_eq!(res.body["headers"], masked);
    let id = res.id();
    let path = format!("/v1/destinations/{id}");
    let secrets = [bearer, api_key, "sid=s3cr3t", "sess-42"];
    let shown = [
        app.get(&path, &t.token).await.body,
        app.get("/v1/destinations", &t.token).await.body,
        app.patch(&path, &t.token, json!({"description": "CRM"})).await.body,
        app.get(&format!("{path}/secret"), &t.token).await.body,
    ];
    for body in &shown {
        for secret in secrets {
            assert!(!body.to_string().contains(secret), "{secret} leaked in {body}");
        }
    }
    assert_eq!(shown[0]["headers"], masked);
    assert_eq!(shown[1]["data"][0]["headers"], masked);
    assert_eq!(shown[2]["headers"], masked, "a patch without `headers` keeps them");
    let row = stored_row(&app, &id).await;
    for secret in [bearer, "sk_live_abcdefgh1234", api_key, "s3cr3t", "sess-42"] {
        assert!(!row.contains(secret), "{secret} stored in clear: {row}");
    }
    assert!(row.contains("payments"), "ordinary headers stay readable: {row}");

    // Echoing a masked value back is refused rather than stored in place of the credential.
    let res = app.patch(&path, &t.token, json!({"headers": masked})).await;
    assert_eq!((res.status, res.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"));
    assert!(res.detail().starts_with("headers.Authorization"), "{}", res.detail());
    // A patch with `headers` replaces the whole map.
    let res = app.patch(&path, &t.token, json!({"headers": {"X-Token": "tok-9876543210mnop"}})).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["headers"], json!({"X-Token": "…mnop"}));
    let row = stored_row(&app, &id).await;
    assert!(!row.contains("tok-9876543210mnop") && !row.contains("payments"), "{row}");
    let res = app.patch(&path, &t.token, json!({"headers": {}})).await;
    assert_eq!(res.body["headers"], json!({}));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_plan_without_room_answers_plan_limit_before_validation(pool: PgPool) {
    let app = TestApp::new(pool);
    let free = app.tenant("free").await;
    for body in [
        json!({"url": PUBLIC_URL}),
        json!({"url": "http://127.0.0.1/hook", "timeout_ms": 0}),
        json!({"url": "https://no-such-host.invalid/hook"}),
        json!({"url": PUBLIC_URL, "retry_policy": {"window_seconds": 999_999_999}}),
    ] {
        let res = app.post("/v1/destinations", &free.token, body.clone()).await;
        assert_eq!((res.status, res.code()), (StatusCode::FORBIDDEN, "plan_limit"), "{body}: {:?}", res.body);
    }
    let res = app.post("/v1/sources", &free.token, json!({"name": "", "secret": "x"})).await;
    assert_eq!((res.status, res.code()), (StatusCode::FORBIDDEN, "plan_limit"), "{:?}", res.body);

    // At the plan's count, the same: no DNS lookup or field check comes first.
    let t = app.tenant("starter").await;
    app.source(&t).await;
    for _ in 0..3 {
        app.destination(&t, json!({})).await;
    }
    let res = app.post("/v1/destinations", &t.token, json!({"url": "https://no-such-host.invalid/"})).await;
    assert_eq!((res.status, res.code()), (StatusCode::FORBIDDEN, "plan_limit"));
    let res =
        app.post("/v1/sources", &t.token, json!({"name": "", "verification": {"scheme": "bogus"}})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "an unreadable body is still a 400");
    let res = app.post("/v1/sources", &t.token, json!({"name": ""})).await;
    assert_eq!((res.status, res.code()), (StatusCode::FORBIDDEN, "plan_limit"));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn the_meta_format_and_its_context_are_checked_and_shown(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let url = crate::support::PUBLIC_URL;
    let body = json!({"url": url, "format": "meta_cloud_api", "meta": {"display_phone_number": "+1 555"}});
    let res = app.post("/v1/destinations", &t.token, body).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.detail().contains("display_phone_number"), "{}", res.detail());
    let body =
        json!({"url": url, "format": "meta_cloud_api", "meta": {"phone_number_id": "1065", "waba_id": ""}});
    let res = app.post("/v1/destinations", &t.token, body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    assert_eq!(
        (res.body["format"].as_str(), &res.body["meta"]),
        (Some("meta_cloud_api"), &json!({"phone_number_id": "1065"}))
    );
    let path = format!("/v1/destinations/{}", res.id());
    let res = app.patch(&path, &t.token, json!({"format": "standard", "meta": null})).await;
    assert_eq!((res.body["format"].as_str(), res.body["meta"].is_null()), (Some("waping"), true));
    let res = app.post("/v1/destinations", &t.token, json!({"url": url, "format": "xml"})).await;
    assert!(res.status.is_client_error());
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn ordering_defaults_to_none_and_can_be_per_device(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let url = crate::support::PUBLIC_URL;
    let res = app.post("/v1/destinations", &t.token, json!({"url": url})).await;
    assert_eq!(res.body["ordering"], "none", "{:?}", res.body);
    let res = app.post("/v1/destinations", &t.token, json!({"url": url, "ordering": "per_device"})).await;
    assert_eq!((res.status, res.body["ordering"].as_str()), (StatusCode::CREATED, Some("per_device")));
    let path = format!("/v1/destinations/{}", res.id());
    let res = app.patch(&path, &t.token, json!({"ordering": "none"})).await;
    assert_eq!(res.body["ordering"], "none");
    let res = app.get(&path, &t.token).await;
    assert_eq!(res.body["ordering"], "none");
    let res = app.post("/v1/destinations", &t.token, json!({"url": url, "ordering": "per_event"})).await;
    assert!(res.status.is_client_error());
}

/// A destination may be created paused (CONTRACT §5); it starts unpaused otherwise.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_destination_may_be_created_paused(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let url = crate::support::PUBLIC_URL;
    let res = app.post("/v1/destinations", &t.token, json!({"url": url, "paused": true})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    assert_eq!(res.body["paused"], true);
    assert!(res.body["paused_at"].is_string(), "{:?}", res.body);
    let res = app.get(&format!("/v1/destinations/{}", res.id()), &t.token).await;
    assert_eq!(res.body["paused"], true);
    let res = app.post("/v1/destinations", &t.token, json!({"url": url})).await;
    assert_eq!((res.body["paused"].as_bool(), res.body["paused_at"].is_null()), (Some(false), true));
}
