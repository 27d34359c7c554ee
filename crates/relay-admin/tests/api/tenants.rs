//! Operator routes: tenants, tenant tokens and plans.

use axum::http::StatusCode;
use relay_store::PgPool;
use serde_json::json;

use crate::support::TestApp;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn create_tenant_answers_201_with_plan_limits(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app.post("/v1/tenants", &app.operator, json!({"name": "Acme", "plan": "starter"})).await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert!(res.id().starts_with("ten_"));
    assert_eq!(res.body["name"], "Acme");
    assert_eq!(res.body["status"], "active");
    assert_eq!(res.body["limits"]["sources"], 1);
    assert_eq!(res.body["limits"]["destinations"], 3);
    assert_eq!(res.body["limits"]["backlog"], 10_000);
    assert_eq!(res.body["limit_overrides"], json!({}));
    assert!(res.body["created_at"].as_str().unwrap().ends_with('Z'));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn create_tenant_refuses_bad_fields_by_name(pool: PgPool) {
    let app = TestApp::new(pool);
    let cases = [
        (
            json!({"name": "", "plan": "starter"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "name",
        ),
        (
            json!({"name": "x".repeat(201), "plan": "pro"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "name",
        ),
        (json!({"name": "A", "plan": "gold"}), StatusCode::BAD_REQUEST, "invalid_request", "plan"),
        (json!({"name": "A"}), StatusCode::BAD_REQUEST, "invalid_request", "plan"),
        (
            json!({"name": "A", "plan": "pro", "bogus": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "bogus",
        ),
    ];
    for (body, status, code, field) in cases {
        let res = app.post("/v1/tenants", &app.operator, body.clone()).await;
        assert_eq!((res.status, res.code()), (status, code), "{body}");
        assert!(res.detail().contains(field), "{body}: {}", res.detail());
    }
    let res = app.call("POST", "/v1/tenants", Some(&app.operator), None).await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn list_tenants_pages_newest_first(pool: PgPool) {
    let app = TestApp::new(pool);
    let a = app.tenant("starter").await.id.to_string();
    let b = app.tenant("growth").await.id.to_string();
    let c = app.tenant("pro").await.id.to_string();
    let first = app.get("/v1/tenants?limit=2", &app.operator).await;
    assert_eq!(first.status, StatusCode::OK);
    let ids: Vec<&str> =
        first.body["data"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [c.as_str(), b.as_str()]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("/v1/tenants?limit=2&cursor={cursor}"), &app.operator).await;
    assert_eq!(second.body["data"][0]["id"], a);
    assert_eq!(second.body["data"].as_array().unwrap().len(), 1);
    assert!(second.body["next_cursor"].is_null());

    for (query, status, field) in [
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("limit=251", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("limit=ten", StatusCode::BAD_REQUEST, "limit"),
        ("cursor=src_0123", StatusCode::BAD_REQUEST, "cursor"),
        ("colour=red", StatusCode::BAD_REQUEST, "colour"),
    ] {
        let res = app.get(&format!("/v1/tenants?{query}"), &app.operator).await;
        assert_eq!(res.status, status, "{query}");
        assert!(res.detail().contains(field), "{query}: {}", res.detail());
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn get_tenant_answers_the_tenant_or_404(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("growth").await;
    let res = app.get(&format!("/v1/tenants/{}", t.id), &app.operator).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["plan"], "growth");
    let res = app.get("/v1/tenants/ten_not_an_id", &app.operator).await;
    assert_eq!((res.status, res.code()), (StatusCode::NOT_FOUND, "tenant_not_found"));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn update_tenant_changes_plan_status_and_merges_overrides(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("starter").await;
    let path = format!("/v1/tenants/{}", t.id);
    let res = app
        .patch(
            &path,
            &app.operator,
            json!({"plan": "pro", "status": "suspended", "limits": {"burst": 7, "sources": 9, "ingest_per_second": 3}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!((res.body["plan"].as_str(), res.body["status"].as_str()), (Some("pro"), Some("suspended")));
    assert_eq!(res.body["limits"]["burst"], 7);
    assert_eq!(res.body["limits"]["sources"], 9);
    assert_eq!(res.body["limits"]["ingest_per_second"], 3);
    assert_eq!(res.body["limits"]["destinations"], 25);
    // `null` removes one override; the others stay.
    let res = app.patch(&path, &app.operator, json!({"limits": {"sources": null}})).await;
    assert_eq!(res.body["limit_overrides"], json!({"burst": 7, "ingest_per_second": 3}));
    assert_eq!(res.body["limits"]["sources"], 5);
    // `"limits": null` removes them all.
    let res = app.patch(&path, &app.operator, json!({"limits": null})).await;
    assert_eq!(res.body["limit_overrides"], json!({}));
    // The tenant itself sees the change.
    assert_eq!(app.get("/v1/tenant", &t.token).await.body["status"], "suspended");

    for (body, status, field) in [
        (json!({"status": "paused"}), StatusCode::BAD_REQUEST, "status"),
        (json!({"limits": {"bogus": 1}}), StatusCode::BAD_REQUEST, "bogus"),
        (json!({"limits": {"burst": -1}}), StatusCode::BAD_REQUEST, "burst"),
        (
            json!({"limits": {"deliveries_per_second": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limits.deliveries_per_second",
        ),
        (json!({"limits": {"burst": 0}}), StatusCode::UNPROCESSABLE_ENTITY, "limits.burst"),
        (
            json!({"limits": {"ingest_per_second": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limits.ingest_per_second",
        ),
        (
            json!({"limits": {"retention_days": 4_000_000}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limits.retention_days",
        ),
        (
            json!({"limits": {"retry_window_seconds": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limits.retry_window_seconds",
        ),
        (json!({"name": " "}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
    ] {
        let res = app.patch(&path, &app.operator, body.clone()).await;
        assert_eq!(res.status, status, "{body}");
        assert!(res.detail().contains(field), "{body}: {}", res.detail());
    }
    let unknown = format!("/v1/tenants/{}", relay_core::TenantId::new());
    assert_eq!(app.patch(&unknown, &app.operator, json!({"name": "x"})).await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn create_tenant_token_mints_a_working_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("starter").await;
    let path = format!("/v1/tenants/{}/tokens", t.id);
    let res = app.call("POST", &path, Some(&app.operator), None).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let expires = time::OffsetDateTime::parse(
        res.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (expires - time::OffsetDateTime::now_utc()).whole_days();
    assert!((29..=30).contains(&days), "{days}");
    let token = res.body["token"].as_str().unwrap();
    let me = app.get("/v1/tenant", token).await;
    assert_eq!((me.status, me.body["id"].as_str()), (StatusCode::OK, Some(t.id.to_string().as_str())));

    let res = app.post(&path, &app.operator, json!({"ttl_seconds": 120})).await;
    assert_eq!(res.status, StatusCode::CREATED);
    let res = app.post(&path, &app.operator, json!({"ttl_seconds": 5})).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.detail().starts_with("ttl_seconds"));
    let res = app.post(&path, &app.operator, json!({"ttl": 5})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let unknown = format!("/v1/tenants/{}/tokens", relay_core::TenantId::new());
    assert_eq!(app.post(&unknown, &app.operator, json!({})).await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn list_plans_shows_the_plan_table(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app.get("/v1/plans", &app.operator).await;
    assert_eq!(res.status, StatusCode::OK);
    let plans = res.body["data"].as_array().unwrap();
    let names: Vec<&str> = plans.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["free", "starter", "growth", "pro", "enterprise"]);
    assert_eq!(plans[0]["limits"]["webhooks"], false);
    assert_eq!(plans[4]["limits"]["deliveries_per_second"], 1000);
    assert_eq!(
        (&plans[1]["limits"]["ingest_per_second"], &plans[1]["limits"]["ingest_burst"]),
        (&json!(50), &json!(500))
    );
    assert_eq!(plans[3]["limits"]["retry_window_seconds"], 259_200);
    assert!(res.body["next_cursor"].is_null());
}
