//! Redis is only an accelerator: stopping it mid-run must not stop ingest, dedupe or delivery.
//! The test runs its own redis-server so it can kill it without touching anyone else's.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

async fn ingest_range(client: &reqwest::Client, url: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let mut answers = Vec::new();
    for i in range {
        let body = wap_event(&format!("r{i}"));
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-wap-signature", format!("sha256={}", sign_hex(WAP_SECRET, body.as_bytes())))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        answers.push(response.text().await.unwrap());
    }
    answers
}

#[tokio::test]
async fn stopping_redis_mid_run_keeps_ingest_dedupe_and_delivery_going() {
    let port = free_port();
    let mut redis = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed");
    let redis_url = format!("redis://127.0.0.1:{port}");
    eventually(Duration::from_secs(10), "the private redis to answer", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;

    let (db, prefix) = fresh_names().await;
    let relay = Binary::start(&db, &prefix, &[("REDIS_URL", &redis_url)]).await;
    let client = reqwest::Client::new();
    let operator = token(json!({"role": "operator", "sub": "e2e"}));
    let t = tenant_with_source(&client, &relay.base, &operator, "growth").await;
    let receiver = Receiver::start().await;
    destination(&client, &relay.base, &t.token, json!({"url": receiver.url})).await;

    ingest_range(&client, &t.ingest_url, 0..50).await;
    receiver.wait_for(50, Duration::from_secs(30)).await;
    redis.kill().await.unwrap();

    let after = ingest_range(&client, &t.ingest_url, 50..100).await;
    assert!(after.iter().all(|a| a == r#"{"received":true}"#));
    let again = ingest_range(&client, &t.ingest_url, 0..10).await;
    assert!(again.iter().all(|a| a == r#"{"received":true,"duplicate":true}"#), "dedupe stays exact");
    let received = receiver.wait_for(100, Duration::from_secs(30)).await;
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *per_event.entry(r.headers["x-wap-event-id"].to_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(per_event.len(), 100);
    assert!(per_event.values().all(|n| *n == 1), "duplicates were not delivered again");
    assert!(relay.terminate().await.success());
}
