//! Key rotation through the real binary, with the relay running: the master key (`keys
//! rotate-master` re-encrypts every stored secret while processes open both keys), and the JWT
//! secret (tokens of the previous secret verify while `RELAY_JWT_SECRET_PREVIOUS` is set).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::*;

const NEW_KEY: &str = "bmV3LW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZy0wMDA=";

/// Runs `wap-relay keys rotate-master --new-key new_key` with `env`; (success, stderr).
fn rotate(db: &str, env: &[(&str, &str)], new_key: &str) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"));
    command.args(["keys", "rotate-master", "--new-key", new_key, "--batch", "1"]).env("DATABASE_URL", db);
    command.env("RELAY_JWT_SECRET", JWT_SECRET).env("RUST_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn the_master_key_rotates_while_the_relay_runs_and_nothing_stops_working() {
    assert_ne!(NEW_KEY, MASTER_KEY);
    let (db, prefix) = fresh_names().await;
    let client = reqwest::Client::new();
    let operator = token(json!({"sub": "op", "role": "operator"}));
    let receiver = Receiver::start().await;
    // Under the old key: a source (its secret), a destination (its signing secret and a
    // credential header), and more of them than a batch.
    let port = free_port();
    let start = |env: &'static [(&'static str, &'static str)]| {
        let (db, prefix) = (db.clone(), prefix.clone());
        async move { Binary::start_on(port, &db, &prefix, env, std::process::Stdio::inherit()).await }
    };
    let relay = start(&[]).await;
    let t = tenant_with_source(&client, &relay.base, &operator, "growth").await;
    let body = json!({"url": receiver.url, "headers": {"Authorization": "Bearer downstream-credential"}});
    let (_, signing_secret) = destination(&client, &relay.base, &t.token, body).await;
    let body = json!({"name": "b", "secret": "another-secret-123"});
    let (status, _) = api(&client, &relay.base, Method::POST, "/v1/sources", &t.token, Some(body)).await;
    assert_eq!(status, 201);
    relay.terminate().await;

    // 1. The fleet opens both keys and seals with the new one; 2. the rotation runs meanwhile.
    const BOTH: &[(&str, &str)] = &[("RELAY_MASTER_KEY", NEW_KEY), ("RELAY_MASTER_KEY_PREVIOUS", MASTER_KEY)];
    let relay = start(BOTH).await;
    assert_eq!(
        ingest(&client, &t.ingest_url, &wap_event("evt_k1")).await,
        200,
        "the old-key source secret opens"
    );
    let (ok, report) = rotate(&db, BOTH, NEW_KEY);
    assert!(ok, "{report}");
    assert!(report.contains("sources.secret: 2 re-encrypted"), "{report}");
    assert!(report.contains("destinations.signing_secret: 1 re-encrypted"), "{report}");
    assert!(report.contains("destinations.sealed_headers: 1 re-encrypted"), "{report}");
    relay.terminate().await;

    // 3. The old key is gone: everything opens with the new one alone.
    let relay = start(&[("RELAY_MASTER_KEY", NEW_KEY)]).await;
    assert_eq!(ingest(&client, &t.ingest_url, &wap_event("evt_k2")).await, 200);
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    for request in &got {
        let h = |n: &str| request.headers[n].to_str().unwrap().to_owned();
        assert_eq!(h("authorization"), "Bearer downstream-credential", "the sealed header opens");
        let ts = h("webhook-timestamp").parse().unwrap();
        let secret = relay_core::secret::WebhookSecret::parse(&signing_secret).unwrap();
        assert!(relay_core::sign::verify_header(
            &[&secret],
            &h("webhook-id"),
            ts,
            &request.body,
            &h("webhook-signature")
        ));
    }
    let (ok, report) = rotate(&db, &[("RELAY_MASTER_KEY", NEW_KEY)], NEW_KEY);
    assert!(ok && report.contains("done: 0 re-encrypted"), "a second run changes nothing: {report}");
    // Run with a key that sealed none of them: it says so, fails, and rewrites nothing.
    let third = relay_core::secret::MasterKey::generate_base64();
    let (ok, report) = rotate(&db, &[("RELAY_MASTER_KEY", MASTER_KEY)], &third);
    assert!(!ok && report.contains("open with neither key"), "{report}");
    assert_eq!(ingest(&client, &t.ingest_url, &wap_event("evt_k3")).await, 200, "still under the new key");
    relay.terminate().await;
}

#[tokio::test]
async fn tokens_of_the_previous_jwt_secret_verify_during_a_rotation() {
    let (db, prefix) = fresh_names().await;
    let client = reqwest::Client::new();
    let old_token = token(json!({"sub": "op", "role": "operator"}));
    let new_secret = "the-new-jwt-secret-that-is-long-enough-0123456789";
    let rotating = [("RELAY_JWT_SECRET", new_secret), ("RELAY_JWT_SECRET_PREVIOUS", JWT_SECRET)];
    let relay = Binary::start(&db, &prefix, &rotating).await;
    let (status, _) = api(&client, &relay.base, Method::GET, "/v1/tenants", &old_token, None).await;
    assert_eq!(status, 200, "a token of the previous secret");
    relay.terminate().await;
    let relay = Binary::start(&db, &prefix, &[("RELAY_JWT_SECRET", new_secret)]).await;
    let (status, body) = api(&client, &relay.base, Method::GET, "/v1/tenants", &old_token, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "once the rotation is over");
    relay.terminate().await;
}
