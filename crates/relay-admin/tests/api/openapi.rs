//! The committed OpenAPI document (`api-spec/openapi.json`) must be exactly what the code
//! generates, and the document must describe every route with its security and error responses.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p relay-admin --test api openapi::`.

use std::path::PathBuf;

use serde_json::Value;

fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api-spec/openapi.json")
}

fn generated() -> String {
    serde_json::to_string_pretty(&relay_admin::openapi()).expect("the document serialises") + "\n"
}

#[test]
fn committed_spec_matches_the_generated_one() {
    let generated = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(spec_path(), &generated).expect("write api-spec/openapi.json");
    }
    let committed = std::fs::read_to_string(spec_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "api-spec/openapi.json differs from relay_admin::openapi(); regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p relay-admin --test api openapi::` (or `wap-relay openapi`)"
    );
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.push((method.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

#[test]
fn every_route_of_the_contract_is_documented() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let ops: Vec<String> = operations(&doc).iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    let expected = [
        "post /v1/tenants",
        "get /v1/tenants",
        "get /v1/tenants/{id}",
        "patch /v1/tenants/{id}",
        "post /v1/tenants/{id}/tokens",
        "get /v1/plans",
        "get /v1/tenant",
        "post /v1/sources",
        "get /v1/sources",
        "get /v1/sources/{id}",
        "patch /v1/sources/{id}",
        "delete /v1/sources/{id}",
        "post /v1/sources/{id}/secret/rotate",
        "post /v1/destinations",
        "get /v1/destinations",
        "get /v1/destinations/{id}",
        "patch /v1/destinations/{id}",
        "delete /v1/destinations/{id}",
        "get /v1/destinations/{id}/secret",
        "post /v1/destinations/{id}/secret/rotate",
        "post /v1/destinations/{id}/replay",
        "get /v1/events",
        "get /v1/events/{id}",
        "post /v1/events/{id}/redeliver",
        "get /v1/deliveries",
        "get /v1/deliveries/{id}",
        "get /v1/deliveries/{id}/attempts",
        "post /v1/deliveries/{id}/redeliver",
        "get /v1/attempts",
        "get /v1/rejections",
        "get /v1/stats",
        "get /v1/stats/series",
        "get /v1/stream",
        "post /v1/destinations/{id}/test",
        "post /v1/destinations/{id}/preview",
        "post /v1/ingest/{source_id}",
        "get /v1/ingest/{source_id}",
    ];
    for route in expected {
        assert!(ops.contains(&route.to_owned()), "{route} is not in the document");
    }
    assert_eq!(ops.len(), expected.len(), "unexpected operations: {ops:?}");
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling reference {r}");
    }
}

#[test]
fn admin_operations_are_secured_and_list_their_errors() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        if path.starts_with("/v1/ingest") {
            assert!(op.get("security").is_none(), "{method} {path} must not need a token");
            continue;
        }
        assert_eq!(op["security"][0]["bearer"], Value::Array(vec![]), "{method} {path}");
        for status in ["401", "403", "500", "503"] {
            assert!(responses.contains_key(status), "{method} {path} lacks {status}");
        }
        if op.get("requestBody").is_some() {
            assert!(responses.contains_key("400") && responses.contains_key("415"), "{method} {path}");
        }
        if path.contains("{id}") {
            assert!(responses.contains_key("404"), "{method} {path} lacks 404");
        }
        assert!(op["operationId"].is_string(), "{method} {path}");
    }
}

#[tokio::test]
async fn the_router_serves_the_document_and_the_docs_page() {
    let pool = relay_store::PgPool::connect_lazy("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
    let app = crate::support::TestApp::new(pool);
    let res = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(res.status, axum::http::StatusCode::OK);
    assert_eq!(res.body, serde_json::to_value(relay_admin::openapi()).unwrap());
    let res = app.call("GET", "/docs/", None, None).await;
    assert_eq!(res.status, axum::http::StatusCode::OK);
    assert!(res.body.as_str().unwrap().contains("swagger-ui"), "{:?}", res.body);
}

/// Ingest's refusals are documented with their codes, from the handlers' own annotations
/// (relay-ingress): the 429s of the plan's rate and the backlog cap, and the 503s of an
/// unavailable database and of shedding.
#[test]
fn ingest_documents_every_refusal_code() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    let responses = &doc["paths"]["/v1/ingest/{source_id}"]["post"]["responses"];
    let says = |status: &str, code: &str| {
        responses[status]["description"].as_str().is_some_and(|d| d.contains(&format!("`{code}`")))
    };
    for (status, code) in [
        ("429", "rate_limited"),
        ("429", "backlog_full"),
        ("503", "overloaded"),
        ("503", "unavailable"),
        ("413", "payload_too_large"),
        ("401", "invalid_signature"),
    ] {
        assert!(says(status, code), "{status} {code}: {}", responses[status]);
    }
}
