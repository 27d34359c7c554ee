//! Per-device ordering (CONTRACT §7) through the whole service: real ingest (whose local
//! dispatcher must not take ordered deliveries from memory), real dispatchers, receivers that fail
//! some attempts; in one process, and in two processes of the real binary with one killed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const DEVICES: usize = 5;
const PER_DEVICE: usize = 20;

/// A WAPing event of `device` (none: no deviceId) with eventId `id`.
fn event(device: Option<&str>, id: &str) -> String {
    let mut e = json!({"eventId": id, "type": "message.received", "timestamp": "2026-04-03T12:00:00Z",
                       "message": {"id": id, "from": "+15559876543", "body": "Hi"}});
    if let Some(device) = device {
        e["deviceId"] = json!(device);
    }
    e.to_string()
}

fn fields(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap();
    (v["deviceId"].as_str().unwrap_or("-").to_owned(), v["eventId"].as_str().unwrap().to_owned())
}

fn first_attempt(headers: &HeaderMap) -> bool {
    headers["x-relay-attempt"] == "1"
}

/// Fails the first attempt of every third request (500); `hold` answers 503 with a Retry-After of
/// an hour to the first attempt of the events it names.
fn every_third_fails(hold: &'static [&'static str]) -> Answer {
    Arc::new(move |index, headers, body| {
        let (_, id) = fields(body);
        if hold.contains(&id.as_str()) && first_attempt(headers) {
            (503, vec![("retry-after".into(), "3600".into())])
        } else if index % 3 == 2 && first_attempt(headers) {
            (500, Vec::new())
        } else {
            (200, Vec::new())
        }
    })
}

/// Per device, the eventIds answered 2xx, in the order they arrived.
fn successes(receiver: &Receiver) -> HashMap<String, Vec<String>> {
    let mut by_device: HashMap<String, Vec<String>> = HashMap::new();
    for r in receiver.received().iter().filter(|r| (200..300).contains(&r.status)) {
        let (device, id) = fields(&r.body);
        by_device.entry(device).or_default().push(id);
    }
    by_device
}

/// `device`'s successes are `expected` in order; a delivery repeated right after itself (at least
/// once, after a crash) is allowed.
fn assert_in_order(got: &[String], expected: &[String], device: &str) {
    let mut collapsed = got.to_vec();
    collapsed.dedup();
    assert_eq!(collapsed, expected, "device {device}: deliveries out of acceptance order");
}

/// No two requests of one device were ever open at the receiver at once.
fn assert_one_at_a_time(receiver: &Receiver) {
    let mut by_device: HashMap<String, Vec<Received>> = HashMap::new();
    for r in receiver.received() {
        by_device.entry(fields(&r.body).0).or_default().push(r);
    }
    for (device, mut requests) in by_device.into_iter().filter(|(d, _)| d != "-") {
        requests.sort_by_key(|r| r.at);
        for pair in requests.windows(2) {
            let done = pair[0].finished.expect("every request finished");
            assert!(done <= pair[1].at, "device {device}: two requests in flight at once");
        }
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Posts `ids` for `device` one after the other, each once answered 200 (through `urls` in turn;
/// when one does not answer 200, the same event goes to the last one, as WAPing retries).
async fn post_in_turn(client: &reqwest::Client, urls: &[String], device: Option<&str>, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        let body = event(device, id);
        if ingest(client, &urls[i % urls.len()], &body).await != 200 {
            let fallback = urls.last().unwrap();
            assert_eq!(ingest(client, fallback, &body).await, 200, "{id} acknowledged");
        }
    }
}

async fn ordered_destination(app: &App, t: &Tenant, receiver: &Receiver, ordering: &str) -> String {
    let body = json!({"url": receiver.url, "ordering": ordering, "timeout_ms": 2000,
                      "retry_policy": {"initial_delay_ms": 100, "max_delay_ms": 500}});
    destination(&app.client, &app.base, &t.token, body).await.0
}

#[tokio::test]
async fn each_device_is_delivered_in_acceptance_order_and_a_held_one_holds_only_itself() {
    let app = App::start().await;
    let t = app.tenant_with_source("enterprise").await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(5));
    receiver.answer_with(every_third_fails(&["stuck-0"]));
    let dest = ordered_destination(&app, &t, &receiver, "per_device").await;

    let urls = [t.ingest_url.clone()];
    let devices: Vec<String> = (0..DEVICES).map(|d| format!("dev{d}")).collect();
    let all = futures::future::join_all(
        devices
            .iter()
            .map(|d| (d.clone(), ids(d, PER_DEVICE)))
            .chain([("stuck".to_owned(), ids("stuck", 5))])
            .map(|(d, ids)| {
                let (client, urls) = (app.client.clone(), urls.clone());
                async move { post_in_turn(&client, &urls, Some(&d), &ids).await }
            }),
    );
    all.await;

    // Every other device completes while "stuck"'s head waits an hour for its retry.
    eventually(Duration::from_secs(60), "every device but stuck delivered", || async {
        let got = successes(&receiver);
        devices.iter().all(|d| got.get(d).is_some_and(|s| s.len() >= PER_DEVICE)).then_some(())
    })
    .await;
    let got = successes(&receiver);
    for d in &devices {
        assert_in_order(&got[d], &ids(d, PER_DEVICE), d);
    }
    let stuck: Vec<_> = receiver.received().into_iter().filter(|r| fields(&r.body).0 == "stuck").collect();
    assert_eq!(stuck.len(), 1, "only stuck's head was attempted");
    // The other devices' last outcomes may still be on their way to the log: wait for them.
    let pending_attempts = || async {
        let path = format!("/v1/deliveries?status=pending&destination_id={dest}");
        let (status, pending) = app.api(Method::GET, &path, &t.token, None).await;
        assert_eq!(status, 200);
        let mut attempts: Vec<i64> =
            pending["data"].as_array().unwrap().iter().map(|d| d["attempts"].as_i64().unwrap()).collect();
        attempts.sort();
        attempts
    };
    eventually(Duration::from_secs(10), "only stuck's deliveries pending", || async {
        (pending_attempts().await.len() <= 5).then_some(())
    })
    .await;
    assert_eq!(pending_attempts().await, [0, 0, 0, 0, 1], "the head retrying, the rest pending untouched");

    // Redelivering the head now lets the device go on, in order.
    let head = delivery_of(&app, &t, "stuck-0").await;
    let (status, _) =
        app.api(Method::POST, &format!("/v1/deliveries/{head}/redeliver"), &t.token, None).await;
    assert_eq!(status, 202);
    eventually(Duration::from_secs(30), "stuck delivered", || async {
        successes(&receiver).get("stuck").is_some_and(|s| s.len() >= 5).then_some(())
    })
    .await;
    assert_in_order(&successes(&receiver)["stuck"], &ids("stuck", 5), "stuck");
    assert_one_at_a_time(&receiver);
    app.stop().await;
}

/// The id of the (only) delivery of the event with WAPing eventId `wap_id`.
async fn delivery_of(app: &App, t: &Tenant, wap_id: &str) -> String {
    let (_, events) =
        app.api(Method::GET, &format!("/v1/events?wap_event_id={wap_id}"), &t.token, None).await;
    let event = events["data"][0]["id"].as_str().unwrap().to_owned();
    let (_, event) = app.api(Method::GET, &format!("/v1/events/{event}"), &t.token, None).await;
    event["deliveries"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn events_without_a_device_and_unordered_destinations_are_not_held() {
    let app = App::start().await;
    let t = app.tenant_with_source("enterprise").await;
    let (ordered, plain) = (Receiver::start().await, Receiver::start().await);
    const HELD: &[&str] = &["nodev-0", "dev-0"];
    for r in [&ordered, &plain] {
        r.answer_with(Arc::new(|_, headers, body| {
            let held = HELD.contains(&fields(body).1.as_str()) && first_attempt(headers);
            if held { (503, vec![("retry-after".into(), "3600".into())]) } else { (200, Vec::new()) }
        }));
    }
    ordered_destination(&app, &t, &ordered, "per_device").await;
    ordered_destination(&app, &t, &plain, "none").await;
    let urls = [t.ingest_url.clone()];
    post_in_turn(&app.client, &urls, None, &ids("nodev", 5)).await;
    post_in_turn(&app.client, &urls, Some("d"), &ids("dev", 5)).await;

    let delivered = |r: &Receiver, device: &str| successes(r).get(device).map_or(0, Vec::len);
    eventually(Duration::from_secs(30), "the deliveries nothing holds", || async {
        (delivered(&ordered, "-") == 4 && delivered(&plain, "-") == 4 && delivered(&plain, "d") == 4)
            .then_some(())
    })
    .await;
    // Only the ordered destination holds a device behind its retrying head.
    let attempted_d = ordered.received().iter().filter(|r| fields(&r.body).0 == "d").count();
    assert_eq!((delivered(&ordered, "d"), attempted_d), (0, 1));
    app.stop().await;
}

#[tokio::test]
async fn order_holds_across_two_processes_and_a_sigkill() {
    let (a, b, client, t) = two_processes(&[("RELAY_DISPATCH_LEASE_SECONDS", "3")]).await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(20));
    receiver.answer_with(every_third_fails(&[]));
    let body = json!({"url": receiver.url, "ordering": "per_device", "timeout_ms": 1000,
                      "retry_policy": {"initial_delay_ms": 100, "max_delay_ms": 500}});
    destination(&client, &a.base, &t.token, body).await;

    // Each device's events go through both processes in turn (B alone once A is gone).
    let urls = vec![t.ingest_url.clone(), t.ingest_url.replace(&a.base, &b.base)];
    let devices: Vec<String> = (0..DEVICES).map(|d| format!("dev{d}")).collect();
    let posting: Vec<_> = devices
        .iter()
        .map(|d| {
            let (client, urls, d) = (client.clone(), urls.clone(), d.clone());
            tokio::spawn(async move { post_in_turn(&client, &urls, Some(&d), &ids(&d, PER_DEVICE)).await })
        })
        .collect();
    let total = |r: &Receiver| successes(r).values().map(Vec::len).sum::<usize>();
    eventually(Duration::from_secs(60), "a third delivered", || async {
        (total(&receiver) >= DEVICES * PER_DEVICE / 3).then_some(())
    })
    .await;
    a.kill().await;
    for p in posting {
        p.await.unwrap();
    }
    assert!(total(&receiver) < DEVICES * PER_DEVICE, "the kill came mid-run");

    eventually(Duration::from_secs(120), "every event delivered", || async {
        let got = successes(&receiver);
        devices
            .iter()
            .all(|d| got.get(d).is_some_and(|s| ids(d, PER_DEVICE).iter().all(|i| s.contains(i))))
            .then_some(())
    })
    .await;
    let got = successes(&receiver);
    for d in &devices {
        assert_in_order(&got[d], &ids(d, PER_DEVICE), d);
    }
    assert_one_at_a_time(&receiver);
    assert!(b.terminate().await.success());
}
