//! Fleet behaviour with the real binary: processes sharing one database, and a process killed
//! with SIGKILL mid-delivery losing nothing that was acknowledged.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::*;

const EVENTS: usize = 2_000;

/// Ingests `n` events at concurrency 32, asserting every one is acknowledged.
async fn ingest_many(client: &reqwest::Client, ingest_url: &str, prefix: &str, n: usize) {
    use futures::StreamExt;
    let statuses: Vec<u16> = futures::stream::iter(0..n)
        .map(|i| async move { ingest(client, ingest_url, &wap_event(&format!("{prefix}{i}"))).await })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "every event acknowledged");
}

/// Lifts the tenant's plan rate so the scenario measures the fleet, not the plan.
async fn unthrottle(client: &reqwest::Client, base: &str, tenant: &str) {
    let operator = token(json!({"role": "operator", "sub": "e2e"}));
    let limits = json!({"limits": {"deliveries_per_second": 100_000, "burst": 100_000}});
    let (status, body) =
        api(client, base, Method::PATCH, &format!("/v1/tenants/{tenant}"), &operator, Some(limits)).await;
    assert_eq!(status, 200, "{body}");
}

fn per_event_counts(receiver: &Receiver) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in receiver.received() {
        *counts.entry(r.headers["x-wap-event-id"].to_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn two_processes_deliver_everything_once() {
    let (a, b, client, t) = two_processes(&[]).await;
    unthrottle(&client, &a.base, &t.id).await;
    let (r1, r2) = (Receiver::start().await, Receiver::start().await);
    destination(&client, &a.base, &t.token, json!({"url": r1.url})).await;
    destination(&client, &a.base, &t.token, json!({"url": r2.url})).await;
    // Half the events enter through each process.
    let url_b = t.ingest_url.replace(&a.base, &b.base);
    tokio::join!(
        ingest_many(&client, &t.ingest_url, "a", EVENTS / 2),
        ingest_many(&client, &url_b, "b", EVENTS / 2)
    );
    r1.wait_for(EVENTS, Duration::from_secs(120)).await;
    r2.wait_for(EVENTS, Duration::from_secs(120)).await;
    for r in [&r1, &r2] {
        let counts = per_event_counts(r);
        assert_eq!(counts.len(), EVENTS);
        assert!(counts.values().all(|n| *n == 1), "no delivery sent twice");
    }
    assert!(a.terminate().await.success());
    assert!(b.terminate().await.success());
}

#[tokio::test]
async fn sigkill_mid_delivery_loses_nothing_acknowledged() {
    use futures::StreamExt;
    let (db, prefix) = fresh_names().await;
    let lease = [("RELAY_DISPATCH_LEASE_SECONDS", "3")];
    let first = Binary::start(&db, &prefix, &lease).await;
    let client = reqwest::Client::new();
    let operator = token(json!({"role": "operator", "sub": "e2e"}));
    let t = tenant_with_source(&client, &first.base, &operator, "enterprise").await;
    unthrottle(&client, &first.base, &t.id).await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(50));
    destination(&client, &first.base, &t.token, json!({"url": receiver.url, "timeout_ms": 1000})).await;

    // Ingest goes on while the process is killed: only the events answered 200 were promised.
    let ingest = {
        let (client, url) = (client.clone(), t.ingest_url.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..EVENTS)
                .map(|i| {
                    let (client, url) = (client.clone(), url.clone());
                    async move { (ingest(&client, &url, &wap_event(&format!("k{i}"))).await == 200).then_some(i) }
                })
                .buffer_unordered(32)
                .filter_map(std::future::ready)
                .collect::<Vec<usize>>()
                .await
        })
    };
    receiver.wait_for(200, Duration::from_secs(60)).await;
    first.kill().await;
    let acknowledged = ingest.await.unwrap();
    assert!(acknowledged.len() >= 200);
    assert!(per_event_counts(&receiver).len() < acknowledged.len(), "the kill came mid-delivery");

    let second = Binary::start(&db, &prefix, &lease).await;
    eventually(Duration::from_secs(120), "every acknowledged event at the destination", || async {
        let counts = per_event_counts(&receiver);
        acknowledged.iter().all(|i| counts.contains_key(&format!("k{i}"))).then_some(())
    })
    .await;
    // At least once: a delivery repeated after the crash carries the same webhook-id.
    let mut ids: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    for r in receiver.received() {
        let event = r.headers["x-wap-event-id"].to_str().unwrap().to_owned();
        ids.entry(event).or_default().insert(r.headers["webhook-id"].to_str().unwrap().to_owned());
    }
    assert!(ids.values().all(|set| set.len() == 1), "one webhook-id per event, however often it is sent");
    assert!(second.terminate().await.success());
}
