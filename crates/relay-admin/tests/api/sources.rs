//! Sources: create/list/get/patch/delete and secret rotation; secrets sealed at rest and never
//! returned; plan count limits, also under concurrent creation.

use axum::http::StatusCode;
use relay_core::SourceId;
use relay_store::PgPool;
use serde_json::{Value, json};

use crate::support::TestApp;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn create_source_seals_the_secret_and_shows_only_a_hint(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("starter").await;
    let res = app
        .post(
            "/v1/sources",
            &t.token,
            json!({"name": "WA main", "secret": "wap-secret-abcd1234", "verify_token": "vt-1"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let id = res.id();
    assert!(id.starts_with("src_"));
    assert_eq!(res.body["ingest_url"], format!("https://relay.example.com/v1/ingest/{id}"));
    assert_eq!(res.body["verification"], json!({"scheme": "hmac_sha256", "header": "X-Wap-Signature"}));
    assert_eq!(res.body["verified"], true);
    assert_eq!(res.body["secret_hint"], "…1234");
    assert_eq!(res.body["verify_token_set"], true);
    let text = res.body.to_string();
    assert!(
        !text.contains("wap-secret-abcd1234") && !text.contains("vt-1") && res.body.get("secret").is_none()
    );

    let sid: SourceId = id.parse().unwrap();
    let row = relay_store::sources::get_source(&app.pool, t.id, sid).await.unwrap();
    let sealed = row.secret.unwrap();
    assert!(!sealed.windows(8).any(|w| w == b"wap-secr"));
    assert_eq!(app.state.master_key.open(&sealed).unwrap().expose(), "wap-secret-abcd1234");
    assert_eq!(app.state.master_key.open(&row.verify_token.unwrap()).unwrap().expose(), "vt-1");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn create_source_refuses_bad_fields_by_name(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("enterprise").await;
    let cases = [
        (json!({"name": "a"}), StatusCode::UNPROCESSABLE_ENTITY, "secret"),
        (json!({"name": "a", "secret": "short"}), StatusCode::UNPROCESSABLE_ENTITY, "secret"),
        (json!({"name": "", "secret": "long-enough"}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        (
            json!({"name": "a", "secret": "long-enough", "verification": {"scheme": "standard_webhooks"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "secret",
        ),
        (
            json!({"name": "a", "secret": "long-enough", "verification": {"scheme": "hmac_sha256", "header": "Bad Header"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "verification.header",
        ),
        (
            json!({"name": "a", "secret": "long-enough", "verification": {"scheme": "hmac_sha256_timestamped", "tolerance_seconds": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "verification.tolerance_seconds",
        ),
        (
            json!({"name": "a", "secret": "long-enough", "verification": {"scheme": "hmac_sha256", "hedaer": "X"}}),
            StatusCode::BAD_REQUEST,
            "hedaer",
        ),
        (
            json!({"name": "a", "secret": "long-enough", "verify_token": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "verify_token",
        ),
        (json!({"name": "a", "secret": "long-enough", "colour": "red"}), StatusCode::BAD_REQUEST, "colour"),
    ];
    for (body, status, field) in cases {
        let res = app.post("/v1/sources", &t.token, body.clone()).await;
        assert_eq!(res.status, status, "{body}: {:?}", res.body);
        assert!(res.detail().contains(field), "{body}: {}", res.detail());
    }
    // `none` needs no secret and is shown as unverified.
    let res =
        app.post("/v1/sources", &t.token, json!({"name": "open", "verification": {"scheme": "none"}})).await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!((res.body["verified"].as_bool(), res.body["secret_hint"].is_null()), (Some(false), true));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn plan_limits_hold_under_concurrent_creation(pool: PgPool) {
    let app = TestApp::new(pool);
    let free = app.tenant("free").await;
    let res = app.post("/v1/sources", &free.token, json!({"name": "a", "secret": "long-enough"})).await;
    assert_eq!((res.status, res.code()), (StatusCode::FORBIDDEN, "plan_limit"));

    let growth = app.tenant("growth").await; // 2 sources
    let attempts = (0..6).map(|i| {
        let app = &app;
        let token = growth.token.clone();
        async move {
            app.post("/v1/sources", &token, json!({"name": format!("s{i}"), "secret": "long-enough"})).await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let refused =
        results.iter().filter(|r| r.status == StatusCode::FORBIDDEN && r.code() == "plan_limit").count();
    assert_eq!((created, refused), (2, 4));
    let list = app.get("/v1/sources", &growth.token).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    // Deleting one makes room again.
    let id = list.body["data"][0]["id"].as_str().unwrap();
    let res = app.call("DELETE", &format!("/v1/sources/{id}"), Some(&growth.token), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = app.post("/v1/sources", &growth.token, json!({"name": "again", "secret": "long-enough"})).await;
    assert_eq!(res.status, StatusCode::CREATED);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn list_get_patch_and_delete_sources(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let a = app.source(&t).await;
    let b = app.source(&t).await;
    let list = app.get("/v1/sources?limit=1", &t.token).await;
    assert_eq!(list.body["data"][0]["id"], b.to_string());
    let next = list.body["next_cursor"].as_str().unwrap();
    let list = app.get(&format!("/v1/sources?limit=1&cursor={next}"), &t.token).await;
    assert_eq!(list.body["data"][0]["id"], a.to_string());
    assert!(list.body["next_cursor"].is_null());

    let path = format!("/v1/sources/{a}");
    assert_eq!(app.get(&path, &t.token).await.body["name"], "wa");
    let res = app
        .patch(&path, &t.token, json!({"name": "renamed", "verification": {"scheme": "hmac_sha256_timestamped"}, "verify_token": "tok"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["name"], "renamed");
    assert_eq!(res.body["verification"]["tolerance_seconds"], 300);
    assert_eq!(res.body["verify_token_set"], true);
    let res = app.patch(&path, &t.token, json!({"verify_token": null})).await;
    assert_eq!(res.body["verify_token_set"], false);
    // Switching to Standard Webhooks needs a whsec_ secret: refused with the current one, accepted
    // with a new one given in the same patch.
    let res = app.patch(&path, &t.token, json!({"verification": {"scheme": "standard_webhooks"}})).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.detail().contains("secret"));
    let whsec = relay_core::secret::WebhookSecret::generate().as_secret().expose().to_owned();
    let res = app
        .patch(&path, &t.token, json!({"verification": {"scheme": "standard_webhooks"}, "secret": whsec}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let res = app.patch(&path, &t.token, json!({"secret": 5})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    let res = app.call("DELETE", &path, Some(&t.token), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &t.token).await.code(), "source_not_found");
    assert_eq!(app.call("DELETE", &path, Some(&t.token), None).await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn rotating_a_source_secret_keeps_the_previous_one_for_a_while(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("starter").await;
    let sid = app.source(&t).await;
    let path = format!("/v1/sources/{sid}/secret/rotate");
    let res = app.post(&path, &t.token, json!({"secret": "the-new-secret-9876"})).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["secret_hint"], "…9876");
    assert!(res.body["previous_secret_expires_at"].is_string());
    let row = relay_store::sources::get_source(&app.pool, t.id, sid).await.unwrap();
    let key = &app.state.master_key;
    assert_eq!(key.open(row.secret.as_ref().unwrap()).unwrap().expose(), "the-new-secret-9876");
    assert_eq!(key.open(row.previous_secret.as_ref().unwrap()).unwrap().expose(), "wap-secret-123456");
    let left = row.previous_secret_expires_at.unwrap() - time::OffsetDateTime::now_utc();
    assert!((86_300..=86_400).contains(&left.whole_seconds()), "{left}");

    let res =
        app.post(&path, &t.token, json!({"secret": "another-secret", "previous_valid_seconds": 0})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body["previous_secret_expires_at"].is_null());
    for (body, status, field) in [
        (json!({"secret": "x"}), StatusCode::UNPROCESSABLE_ENTITY, "secret"),
        (
            json!({"secret": "long-enough", "previous_valid_seconds": 10_000_000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "previous_valid_seconds",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "secret"),
    ] {
        let res = app.post(&path, &t.token, body.clone()).await;
        assert_eq!(res.status, status, "{body}");
        assert!(res.detail().contains(field), "{body}: {}", res.detail());
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_source_dedupe_key_is_json_pointers_shown_changed_and_cleared(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let body = json!({"name": "wa", "secret": "secret-123456", "dedupe_key": ["/message/id"]});
    let res = app.post("/v1/sources", &t.token, body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    assert_eq!(res.body["dedupe_key"], json!(["/message/id"]));
    let path = format!("/v1/sources/{}", res.id());
    let res = app.patch(&path, &t.token, json!({"dedupe_key": ["message.id"]})).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.detail().contains("dedupe_key"), "{}", res.detail());
    let res = app.patch(&path, &t.token, json!({"dedupe_key": ["/deviceId", "/message/id"]})).await;
    assert_eq!(res.body["dedupe_key"], json!(["/deviceId", "/message/id"]));
    let res = app.patch(&path, &t.token, json!({"name": "renamed"})).await;
    assert_eq!(res.body["dedupe_key"], json!(["/deviceId", "/message/id"]), "kept when not named");
    let res = app.patch(&path, &t.token, json!({"dedupe_key": null})).await;
    assert_eq!(res.body["dedupe_key"], Value::Null);
    let res = app
        .post("/v1/sources", &t.token, json!({"name": "b", "secret": "secret-123456", "dedupe_key": []}))
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
}
