//! Operational events and silence alerts (CONTRACT §7) through the real binary, in two
//! processes sharing one Postgres and one Redis: a source and a device that go quiet are each
//! reported silent once, and resumed once when traffic returns, to the destination that
//! subscribes to `relay.*` (signed), never to the one with `*`. The shortest silence is a minute,
//! so this test takes a little over one.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

fn typed(receiver: &Receiver, kind: &str) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|v| v["type"] == kind)
        .collect()
}

fn event_of(device: &str, id: &str) -> String {
    json!({"eventId": id, "type": "message.received", "timestamp": "2026-04-03T12:00:00Z",
           "deviceId": device, "message": {"id": id, "from": "+15559876543", "body": "Hi"}})
    .to_string()
}

/// The relay's events of `kind` listed by `GET /v1/events`.
async fn listed(client: &reqwest::Client, base: &str, token: &str, kind: &str) -> Vec<Value> {
    let (status, page) =
        api(client, base, Method::GET, &format!("/v1/events?type={kind}"), token, None).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn silence_and_its_end_are_reported_once_across_two_processes() {
    let (a, b, client, t) = two_processes(&[]).await;
    let path = format!("/v1/sources/{}", t.source_id);
    let (status, source) =
        api(&client, &a.base, Method::PATCH, &path, &t.token, Some(json!({"silence_alert_seconds": 30})))
            .await;
    assert_eq!((status, source["code"].as_str()), (422, Some("validation_error")), "{source}");
    let (status, source) =
        api(&client, &a.base, Method::PATCH, &path, &t.token, Some(json!({"silence_alert_seconds": 60})))
            .await;
    assert_eq!((status, &source["silence_alert_seconds"]), (200, &json!(60)), "{source}");

    let ops = Receiver::start().await;
    let all = Receiver::start().await;
    let (_, ops_secret) =
        destination(&client, &a.base, &t.token, json!({"url": ops.url, "event_types": ["relay.*"]})).await;
    destination(&client, &a.base, &t.token, json!({"url": all.url})).await;

    // Traffic through both processes, then quiet.
    let urls = [t.ingest_url.clone(), t.ingest_url.replace(&a.base, &b.base)];
    for (i, url) in urls.iter().cycle().take(4).enumerate() {
        assert_eq!(ingest(&client, url, &event_of("dev_q", &format!("evt_q{i}"))).await, 200);
    }
    all.wait_for(4, Duration::from_secs(20)).await;
    eventually(Duration::from_secs(120), "the source and the device reported silent", || async {
        (typed(&ops, "relay.source.silent").len() == 1 && typed(&ops, "relay.device.silent").len() == 1)
            .then_some(())
    })
    .await;
    let silent = &typed(&ops, "relay.device.silent")[0];
    assert_eq!(
        (&silent["data"]["sourceId"], &silent["data"]["deviceId"]),
        (&json!(t.source_id), &json!("dev_q"))
    );
    assert_eq!(silent["data"]["silenceAlertSeconds"], 60);
    assert!(typed(&ops, "relay.source.silent")[0]["data"].get("deviceId").is_none());

    // Traffic returns, through the other process.
    assert_eq!(ingest(&client, &urls[1], &event_of("dev_q", "evt_back")).await, 200);
    eventually(Duration::from_secs(30), "both reported resumed", || async {
        (typed(&ops, "relay.source.resumed").len() == 1 && typed(&ops, "relay.device.resumed").len() == 1)
            .then_some(())
    })
    .await;
    all.wait_for(5, Duration::from_secs(20)).await;

    // Signed like every delivery; none reached the `*` destination.
    for r in ops.received() {
        let h = |n: &str| r.headers[n].to_str().unwrap().to_owned();
        let ok = standard_webhooks_valid(
            &ops_secret,
            &h("webhook-id"),
            &h("webhook-timestamp"),
            &r.body,
            &h("webhook-signature"),
        );
        assert!(ok, "a relay event is signed with the destination's secret");
    }
    assert!(all.received().iter().all(|r| !String::from_utf8_lossy(&r.body).contains("\"relay.")));
    // Listed like any event, with source_id null, once each across both processes.
    for kind in ["relay.source.silent", "relay.device.silent", "relay.source.resumed", "relay.device.resumed"]
    {
        let events = listed(&client, &a.base, &t.token, kind).await;
        assert_eq!(events.len(), 1, "{kind}: {events:?}");
        assert!(events[0]["source_id"].is_null(), "{kind}: {events:?}");
    }
    assert_eq!(ops.received().len(), 4, "nothing else reached the relay.* destination");
    a.terminate().await;
    b.terminate().await;
}
