//! The JWT table: every kind of refused token answers 401 (with `WWW-Authenticate: Bearer`),
//! a token of the wrong role 403, and a token minted by a plain JWT library with the documented
//! claims is accepted.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use relay_store::PgPool;
use serde_json::{Value, json};

use crate::support::{JWT_SECRET, TestApp};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(tenant: &str) -> Value {
    json!({"iss": "wap-relay", "aud": "wap-relay-admin", "sub": tenant, "role": "tenant",
           "tenant_id": tenant, "iat": now(), "exp": now() + 600})
}

fn mint(alg: Algorithm, key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

fn without(mut claims: Value, field: &str) -> Value {
    claims.as_object_mut().unwrap().remove(field);
    claims
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn refused_tokens_answer_401(pool: PgPool) {
    let app = TestApp::new(pool);
    let tenant = app.tenant("starter").await;
    let t = tenant.id.to_string();
    let good = claims(&t);
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("not a JWT", Some("Bearer not-a-jwt".into())),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("HS384 with the right key", Some(format!("Bearer {}", mint(Algorithm::HS384, JWT_SECRET, &good)))),
        ("HS512 with the right key", Some(format!("Bearer {}", mint(Algorithm::HS512, JWT_SECRET, &good)))),
        (
            "wrong key",
            Some(format!(
                "Bearer {}",
                mint(Algorithm::HS256, b"another-secret-of-32-bytes-or-more!!", &good)
            )),
        ),
        (
            "wrong iss",
            Some(format!(
                "Bearer {}",
                mint(Algorithm::HS256, JWT_SECRET, &with(good.clone(), "iss", json!("other")))
            )),
        ),
        (
            "wrong aud",
            Some(format!(
                "Bearer {}",
                mint(Algorithm::HS256, JWT_SECRET, &with(good.clone(), "aud", json!("other")))
            )),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                mint(Algorithm::HS256, JWT_SECRET, &with(good.clone(), "exp", json!(now() - 3600)))
            )),
        ),
        (
            "unknown role",
            Some(format!(
                "Bearer {}",
                mint(Algorithm::HS256, JWT_SECRET, &with(good.clone(), "role", json!("admin")))
            )),
        ),
        (
            "tenant_id not an id",
            Some(format!(
                "Bearer {}",
                mint(Algorithm::HS256, JWT_SECRET, &with(good.clone(), "tenant_id", json!("acme")))
            )),
        ),
        ("Basic scheme", Some(format!("Basic {}", mint(Algorithm::HS256, JWT_SECRET, &good)))),
    ];
    let mut cases = cases;
    let missing: Vec<(&str, Option<String>)> = ["iss", "aud", "sub", "role", "tenant_id", "iat", "exp"]
        .into_iter()
        .map(|field| {
            (
                "missing claim",
                Some(format!("Bearer {}", mint(Algorithm::HS256, JWT_SECRET, &without(good.clone(), field)))),
            )
        })
        .collect();
    cases.extend(missing);
    for (i, (what, authorization)) in cases.into_iter().enumerate() {
        let mut req = axum::http::Request::builder().uri("/v1/tenant");
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        let res = app.raw(req.body(axum::body::Body::empty()).unwrap()).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "case {i}: {what}");
        assert_eq!(res.code(), "unauthorized", "case {i}: {what}");
        assert_eq!(res.headers["www-authenticate"], "Bearer", "case {i}: {what}");
        assert_eq!(res.headers["content-type"], "application/problem+json", "case {i}: {what}");
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn tokens_minted_by_a_plain_jwt_library_are_accepted(pool: PgPool) {
    let app = TestApp::new(pool);
    let tenant = app.tenant("growth").await;
    let t = tenant.id.to_string();
    // `aud` as a string and as an array are both standard.
    for token in [
        mint(Algorithm::HS256, JWT_SECRET, &claims(&t)),
        mint(Algorithm::HS256, JWT_SECRET, &with(claims(&t), "aud", json!(["wap-relay-admin"]))),
    ] {
        let res = app.get("/v1/tenant", &token).await;
        assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
        assert_eq!(res.body["id"], t);
    }
    let operator = json!({"iss": "wap-relay", "aud": "wap-relay-admin", "sub": "ops@example.com",
                          "role": "operator", "iat": now(), "exp": now() + 600});
    let res = app.get("/v1/plans", &mint(Algorithm::HS256, JWT_SECRET, &operator)).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn the_wrong_role_answers_403(pool: PgPool) {
    let app = TestApp::new(pool);
    let tenant = app.tenant("starter").await;
    let res = app.get("/v1/tenants", &tenant.token).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.code(), "forbidden");
    let res = app.get("/v1/sources", &app.operator).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.code(), "forbidden");
}

#[test]
fn short_secrets_are_refused() {
    assert!(relay_admin::JwtKeys::new(b"too short").is_err());
    assert!(relay_admin::JwtKeys::new(&[7u8; 32]).is_ok());
}
