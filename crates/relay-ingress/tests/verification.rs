//! Verification schemes, secret rotation and the handshakes, through the real router.

mod support;

use relay_core::plan::Plan;
use relay_core::secret::{Secret, WebhookSecret};
use relay_core::verify::Verification;
use relay_store::PgPool;
use relay_store::sources;
use serde_json::json;
use support::*;
use time::OffsetDateTime;

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn timestamped_scheme_accepts_fresh_and_refuses_stale(pool: PgPool) {
    let h = Harness::start(pool).await;
    let tenant = h.tenant(Plan::Starter).await;
    let v = Verification::HmacSha256Timestamped { header: "X-Sig".into(), tolerance_seconds: 300 };
    let source = h.source(tenant, v, Some(SECRET)).await;
    let body = event("evt_1");
    let signed = |t: i64| format!("t={t},v1={}", hmac_hex(SECRET, format!("{t}.{body}").as_bytes()));
    assert_eq!(h.post_with(source, &body, &[("x-sig", &signed(now()))]).await.status(), 200);
    let (status, code, detail) =
        problem(h.post_with(source, &event("evt_2"), &[("x-sig", &signed(now() - 600))]).await).await;
    assert_eq!((status, code.as_str()), (401, "invalid_signature"));
    assert!(detail["detail"].as_str().unwrap().contains("tolerance"));
    let wrong_t = format!("t={},v1={}", now(), hmac_hex(SECRET, body.as_bytes()));
    assert_eq!(h.post_with(source, &body, &[("x-sig", &wrong_t)]).await.status(), 401);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn standard_webhooks_scheme(pool: PgPool) {
    use base64::Engine;
    let h = Harness::start(pool).await;
    let tenant = h.tenant(Plan::Starter).await;
    let secret = WebhookSecret::generate();
    let v = Verification::StandardWebhooks { tolerance_seconds: 300 };
    let source = h.source(tenant, v, Some(secret.as_secret().expose())).await;
    let body = event("evt_1");
    // Signed here from the spec: base64(HMAC-SHA256(base64-decoded key, "{id}.{ts}.{body}")).
    let sign = |key: &[u8], ts: i64| {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
        mac.update(format!("msg_1.{ts}.{body}").as_bytes());
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
    };
    let ts = now().to_string();
    let good = sign(secret.key(), now());
    let headers =
        [("webhook-id", "msg_1"), ("webhook-timestamp", ts.as_str()), ("webhook-signature", good.as_str())];
    assert_eq!(h.post_with(source, &body, &headers).await.status(), 200);
    let bad = sign(b"some-other-key-of-enough-length", now());
    let headers =
        [("webhook-id", "msg_1"), ("webhook-timestamp", ts.as_str()), ("webhook-signature", bad.as_str())];
    assert_eq!(h.post_with(source, &body, &headers).await.status(), 401);
    let old_ts = (now() - 3600).to_string();
    let stale = sign(secret.key(), now() - 3600);
    let headers = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", old_ts.as_str()),
        ("webhook-signature", stale.as_str()),
    ];
    assert_eq!(h.post_with(source, &body, &headers).await.status(), 401);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn scheme_none_accepts_unsigned_events(pool: PgPool) {
    let h = Harness::start(pool).await;
    let tenant = h.tenant(Plan::Starter).await;
    let source = h.source(tenant, Verification::None, None).await;
    assert_eq!(h.post_with(source, &event("evt_1"), &[]).await.status(), 200);
    assert_eq!(h.events(tenant).await, 1);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn rotation_accepts_both_secrets_until_the_old_one_expires(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let new_secret = "the-new-secret-456";
    let sealed = h.master_key.seal(&Secret::new(new_secret));
    let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
    sources::rotate_source_secret(&h.pool, tenant, source, &sealed, "…-456", later).await.unwrap();
    let signed = |secret: &str, body: &str| format!("sha256={}", hmac_hex(secret, body.as_bytes()));
    let (b1, b2) = (event("evt_1"), event("evt_2"));
    assert_eq!(h.post_with(source, &b1, &[("x-wap-signature", &signed(SECRET, &b1))]).await.status(), 200);
    assert_eq!(
        h.post_with(source, &b2, &[("x-wap-signature", &signed(new_secret, &b2))]).await.status(),
        200
    );
    // Rotating again with an expiry in the past ends the grace period of the previous secret.
    let newest = "the-newest-secret-789";
    let sealed = h.master_key.seal(&Secret::new(newest));
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    sources::rotate_source_secret(&h.pool, tenant, source, &sealed, "…-789", past).await.unwrap();
    // The change reaches the ingress's source cache through Postgres NOTIFY, within moments.
    let b3 = event("evt_3");
    eventually("the newest secret to be accepted", || async {
        h.post_with(source, &b3, &[("x-wap-signature", &signed(newest, &b3))]).await.status() == 200
    })
    .await;
    let b4 = event("evt_4");
    assert_eq!(
        h.post_with(source, &b4, &[("x-wap-signature", &signed(new_secret, &b4))]).await.status(),
        401
    );
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_cached_source_follows_changes_made_elsewhere(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    // Requests until the source is surely cached (the cache works once its LISTEN is up).
    for i in 0..20 {
        assert_eq!(h.post_signed(source, &event(&format!("warm_{i}"))).await.status(), 200);
    }
    let update = relay_store::tenants::TenantUpdate {
        status: Some(relay_store::tenants::TenantStatus::Suspended),
        ..Default::default()
    };
    relay_store::tenants::update_tenant(&h.pool, tenant, &update).await.unwrap();
    eventually("the suspension to reach ingest", || async {
        h.post_signed(source, &event("after")).await.status() == 403
    })
    .await;
    sources::delete_source(&h.pool, tenant, source).await.unwrap();
    eventually("the deletion to reach ingest", || async {
        h.post_signed(source, &event("after")).await.status() == 404
    })
    .await;
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn get_handshake_echoes_the_challenge_for_the_right_token(pool: PgPool) {
    let h = Harness::start(pool).await;
    let tenant = h.tenant(Plan::Starter).await;
    let source = h.source_with_token(tenant, Verification::default(), Some(SECRET), Some("tok-123")).await;
    let get = |query: &str| h.client.get(format!("{}?{query}", h.url(source))).send();
    let ok = get("hub.mode=subscribe&hub.verify_token=tok-123&hub.challenge=abc%20def").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    assert_eq!(ok.text().await.unwrap(), "abc def");
    let plain = get("verify_token=tok-123&challenge=C42").await.unwrap();
    assert_eq!((plain.status().as_u16(), plain.text().await.unwrap()), (200, "C42".to_string()));
    for bad in [
        "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=x",
        "challenge=x",
        "hub.mode=unsubscribe&hub.verify_token=tok-123&hub.challenge=x",
        "hub.mode=subscribe&hub.verify_token=tok-123",
    ] {
        assert_eq!(get(bad).await.unwrap().status(), 403, "{bad}");
    }
    let no_token_source = h.source(tenant, Verification::default(), Some(SECRET)).await;
    let response =
        h.client.get(format!("{}?verify_token=x&challenge=y", h.url(no_token_source))).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let recorded = h.rejections(tenant).await;
    assert_eq!(recorded.len(), 5);
    assert!(recorded.iter().all(|(reason, status)| reason == "invalid_verify_token" && *status == 403));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn signed_url_verification_post_answers_the_challenge_and_stores_nothing(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let body = json!({"type": "url_verification", "challenge": "ch-77"}).to_string();
    let response = h.post_signed(source, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), json!({"challenge": "ch-77"}));
    assert_eq!(h.events(tenant).await, 0);
    // Unsigned, it is refused like any request.
    assert_eq!(h.post_with(source, &body, &[]).await.status(), 401);
}
