//! Access control across every admin route of the document: no token is 401, the other role's
//! token 403, and another tenant's ids 404 (and leave the owner's resources untouched). The
//! table is checked against the OpenAPI document so a new route cannot skip these checks.

use axum::http::StatusCode;
use relay_store::PgPool;
use serde_json::{Value, json};

use crate::support::{Tenant, TestApp};

struct Route {
    method: &'static str,
    template: &'static str,
    operator: bool,
    body: Option<Value>,
}

fn routes() -> Vec<Route> {
    let r = |method, template, operator, body: Option<Value>| Route { method, template, operator, body };
    vec![
        r("POST", "/v1/tenants", true, Some(json!({"name": "x", "plan": "starter"}))),
        r("GET", "/v1/tenants", true, None),
        r("GET", "/v1/tenants/{id}", true, None),
        r("PATCH", "/v1/tenants/{id}", true, Some(json!({"name": "y"}))),
        r("POST", "/v1/tenants/{id}/tokens", true, Some(json!({}))),
        r("GET", "/v1/plans", true, None),
        r("GET", "/v1/tenant", false, None),
        r("GET", "/v1/stats", false, None),
        r("GET", "/v1/stats/series", false, None),
        r("GET", "/v1/stream", false, None),
        r("POST", "/v1/sources", false, Some(json!({"name": "s", "secret": "secret-123456"}))),
        r("GET", "/v1/sources", false, None),
        r("GET", "/v1/sources/{src}", false, None),
        r("PATCH", "/v1/sources/{src}", false, Some(json!({"name": "renamed"}))),
        r("DELETE", "/v1/sources/{src}", false, None),
        r("POST", "/v1/sources/{src}/secret/rotate", false, Some(json!({"secret": "secret-abcdef"}))),
        r("POST", "/v1/destinations", false, Some(json!({"url": crate::support::PUBLIC_URL}))),
        r("GET", "/v1/destinations", false, None),
        r("GET", "/v1/destinations/{dst}", false, None),
        r("PATCH", "/v1/destinations/{dst}", false, Some(json!({"enabled": false}))),
        r("DELETE", "/v1/destinations/{dst}", false, None),
        r("GET", "/v1/destinations/{dst}/secret", false, None),
        r("POST", "/v1/destinations/{dst}/secret/rotate", false, None),
        r("POST", "/v1/destinations/{dst}/test", false, None),
        r(
            "POST",
            "/v1/destinations/{dst}/preview",
            false,
            Some(json!({"eventId": "e", "type": "message.received", "timestamp": "2026-04-03T12:00:00Z"})),
        ),
        r(
            "POST",
            "/v1/destinations/{dst}/replay",
            false,
            Some(json!({"since": "2020-01-01T00:00:00Z", "status": "all"})),
        ),
        r("GET", "/v1/events", false, None),
        r("GET", "/v1/events/{evt}", false, None),
        r("POST", "/v1/events/{evt}/redeliver", false, None),
        r("GET", "/v1/deliveries", false, None),
        r("GET", "/v1/deliveries/{dlv}", false, None),
        r("GET", "/v1/deliveries/{dlv}/attempts", false, None),
        r("POST", "/v1/deliveries/{dlv}/redeliver", false, None),
        r("GET", "/v1/attempts", false, None),
        r("GET", "/v1/rejections", false, None),
    ]
}

/// The document's path for a route of the table.
fn doc_path(template: &str) -> String {
    ["{src}", "{dst}", "{evt}", "{dlv}"].iter().fold(template.to_owned(), |p, v| p.replace(v, "{id}"))
}

#[test]
fn the_table_covers_every_admin_operation() {
    let doc = serde_json::to_value(relay_admin::openapi()).unwrap();
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete", "put"] {
            if item.get(method).is_some() && !path.starts_with("/v1/ingest") {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let mut table: Vec<String> =
        routes().iter().map(|r| format!("{} {}", r.method, doc_path(r.template))).collect();
    documented.sort();
    table.sort();
    assert_eq!(table, documented);
}

struct Owned {
    tenant: Tenant,
    ids: Vec<(&'static str, String)>,
}

async fn owned_resources(app: &TestApp) -> Owned {
    let tenant = app.tenant("pro").await;
    let src = app.source(&tenant).await;
    let dst = app.destination(&tenant, json!({})).await;
    let evt = app.events(&tenant, src, 1, "message.received").await[0];
    let dlv = app.delivery(&tenant, evt, dst).await;
    app.attempt(&tenant, dlv, dst, "http_error", 40).await;
    let ids = vec![
        ("{id}", tenant.id.to_string()),
        ("{src}", src.to_string()),
        ("{dst}", dst.to_string()),
        ("{evt}", evt.to_string()),
        ("{dlv}", dlv.to_string()),
    ];
    Owned { tenant, ids }
}

fn fill(template: &str, ids: &[(&str, String)]) -> String {
    ids.iter().fold(template.to_owned(), |p, (k, v)| p.replace(k, v))
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn every_route_needs_a_token_of_its_role(pool: PgPool) {
    let app = TestApp::new(pool);
    let owned = owned_resources(&app).await;
    for route in routes() {
        let path = fill(route.template, &owned.ids);
        let res = app.call(route.method, &path, None, route.body.clone()).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{} {path} without a token", route.method);
        let wrong = if route.operator { owned.tenant.token.clone() } else { app.operator.clone() };
        let res = app.call(route.method, &path, Some(&wrong), route.body.clone()).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{} {path} with the other role", route.method);
        assert_eq!(res.code(), "forbidden");
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn another_tenants_ids_answer_404(pool: PgPool) {
    let app = TestApp::new(pool);
    let owned = owned_resources(&app).await;
    let intruder = app.tenant("pro").await;
    for route in routes().into_iter().filter(|r| !r.operator && r.template.contains('{')) {
        let path = fill(route.template, &owned.ids);
        let res = app.call(route.method, &path, Some(&intruder.token), route.body.clone()).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{} {path}: {:?}", route.method, res.body);
        assert!(res.code().ends_with("not_found"), "{} {path}: {}", route.method, res.code());
    }
    // Nothing of the owner's changed: the sources and destinations are still there, unrenamed.
    let src = fill("/v1/sources/{src}", &owned.ids);
    let res = app.get(&src, &owned.tenant.token).await;
    assert_eq!((res.status, res.body["name"].as_str()), (StatusCode::OK, Some("wa")));
    let dst = fill("/v1/destinations/{dst}", &owned.ids);
    let res = app.get(&dst, &owned.tenant.token).await;
    assert_eq!((res.status, res.body["enabled"].as_bool()), (StatusCode::OK, Some(true)));
    let dlv = fill("/v1/deliveries/{dlv}", &owned.ids);
    assert_eq!(app.get(&dlv, &owned.tenant.token).await.body["next_trigger"], "auto");
    // Malformed ids and ids of another kind are just as unknown.
    let src_as_dst = fill("/v1/destinations/{src}", &owned.ids);
    assert_eq!(app.get(&src_as_dst, &owned.tenant.token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/events/evt_nope", &owned.tenant.token).await.status, StatusCode::NOT_FOUND);
    // Operators address tenants directly: an unknown one is a 404 too.
    let unknown = format!("/v1/tenants/{}", relay_core::TenantId::new());
    assert_eq!(app.get(&unknown, &app.operator).await.code(), "tenant_not_found");
}
