//! Findings of the outside review, each through the public API: text that Postgres cannot store
//! (U+0000) is refused naming where it was, destination hosts that do not resolve yet are
//! accepted while refusals never reveal a resolved address, and custom headers that would not be
//! sent are refused when saved. Destination defaults are one rule for the API and the schema.

use axum::http::StatusCode;
use relay_store::PgPool;
use serde_json::json;

use crate::support::*;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn nul_in_any_stored_text_or_filter_names_the_field(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    let dst = app.destination(&t, json!({})).await;
    for query in [
        "/v1/events?type=%00",
        "/v1/events?device_id=a%00",
        "/v1/events?wap_event_id=%00",
        "/v1/rejections?reason=%00",
    ] {
        let res = app.get(query, &t.token).await;
        assert_eq!((res.status, res.code()), (StatusCode::BAD_REQUEST, "invalid_query"), "{query}");
        assert!(res.detail().contains('`'), "{query}: {}", res.detail());
    }
    let nul = "a\u{0}b";
    let bodies = [
        ("POST", "/v1/sources".to_owned(), json!({"name": nul, "secret": "wap-secret-123456"}), "/name"),
        ("POST", "/v1/sources".to_owned(), json!({"name": "n", "secret": "wap-secret-12\u{0}"}), "/secret"),
        ("PATCH", format!("/v1/sources/{src}"), json!({"name": nul}), "/name"),
        (
            "POST",
            "/v1/destinations".to_owned(),
            json!({"url": PUBLIC_URL, "description": nul}),
            "/description",
        ),
        (
            "POST",
            "/v1/destinations".to_owned(),
            json!({"url": PUBLIC_URL, "device_ids": ["d", nul]}),
            "/device_ids/1",
        ),
        ("PATCH", format!("/v1/destinations/{dst}"), json!({"description": nul}), "/description"),
        ("PATCH", format!("/v1/destinations/{dst}"), json!({"device_ids": [nul]}), "/device_ids/0"),
        (
            "POST",
            format!("/v1/sources/{src}/secret/rotate"),
            json!({"secret": "wap-secret-99\u{0}9"}),
            "/secret",
        ),
    ];
    for (method, path, body, field) in bodies {
        let res = app.call(method, &path, Some(&t.token), Some(body.clone())).await;
        assert_eq!(
            (res.status, res.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
            "{method} {path} {body}"
        );
        assert!(res.detail().starts_with(field), "{method} {path}: {}", res.detail());
    }
    let tenant_bodies = [
        ("POST", "/v1/tenants".to_owned(), json!({"name": nul, "plan": "pro"})),
        ("PATCH", format!("/v1/tenants/{}", t.id), json!({"name": nul})),
    ];
    for (method, path, body) in tenant_bodies {
        let res = app.call(method, &path, Some(&app.operator), Some(body)).await;
        assert_eq!(
            (res.status, res.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
            "{method} {path}"
        );
        assert!(res.detail().starts_with("/name"), "{}", res.detail());
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_host_that_does_not_resolve_yet_is_accepted_and_refusals_name_no_address(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let res = app.post("/v1/destinations", &t.token, json!({"url": "https://not-yet.invalid/hook"})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let res = app.post("/v1/destinations", &t.token, json!({"url": "http://localhost:8080/"})).await;
    assert_eq!((res.status, res.code()), (StatusCode::UNPROCESSABLE_ENTITY, "destination_not_allowed"));
    for address in ["127.0.0.1", "::1", "loopback"] {
        assert!(!res.detail().contains(address), "the refusal names an address: {}", res.detail());
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn custom_headers_that_would_not_be_sent_are_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    for name in
        ["Proxy-Authorization", "Keep-Alive", "TE", "Expect", "Content-Encoding", "Connection", "Upgrade"]
    {
        let res =
            app.post("/v1/destinations", &t.token, json!({"url": PUBLIC_URL, "headers": {name: "x"}})).await;
        assert_eq!(
            (res.status, res.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
            "{name}"
        );
        assert!(res.detail().starts_with(&format!("headers.{name}")), "{name}: {}", res.detail());
    }
    let ok =
        app.post("/v1/destinations", &t.token, json!({"url": PUBLIC_URL, "headers": {"X-Team": "a"}})).await;
    assert_eq!(ok.status, StatusCode::CREATED);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn destination_defaults_are_one_rule_for_the_api_and_the_schema(pool: PgPool) {
    use relay_core::destination as defaults;
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let res = app.post("/v1/destinations", &t.token, json!({"url": PUBLIC_URL})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let d = &res.body;
    assert_eq!((d["timeout_ms"].as_u64(), d["max_in_flight"].as_u64()), (Some(10_000), Some(16)));
    assert_eq!(d["timeout_ms"], defaults::TIMEOUT_MS);
    assert_eq!(d["max_in_flight"], defaults::MAX_IN_FLIGHT);
    assert_eq!(d["retry_policy"]["initial_delay_ms"], defaults::RETRY.initial_delay_ms);
    assert_eq!(d["retry_policy"]["max_delay_ms"], defaults::RETRY.max_delay_ms);
    assert_eq!(d["retry_policy"]["window_seconds"], defaults::RETRY.window_seconds);
    // A row written without the settings (by SQL, an older relay) gets the same values.
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, column_default FROM information_schema.columns \
         WHERE table_name = 'destinations' \
         AND column_name IN ('timeout_ms', 'max_in_flight', 'initial_delay_ms', 'max_delay_ms', 'window_seconds') \
         ORDER BY column_name",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let expected = [
        ("initial_delay_ms", defaults::RETRY.initial_delay_ms),
        ("max_delay_ms", defaults::RETRY.max_delay_ms),
        ("max_in_flight", u64::from(defaults::MAX_IN_FLIGHT)),
        ("timeout_ms", u64::from(defaults::TIMEOUT_MS)),
        ("window_seconds", defaults::RETRY.window_seconds),
    ];
    let found: Vec<(&str, u64)> =
        columns.iter().map(|(name, default)| (name.as_str(), default.parse().unwrap())).collect();
    assert_eq!(found, expected);
}
