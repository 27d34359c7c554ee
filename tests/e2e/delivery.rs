//! Ingest to destination through the whole service: the request a destination gets, and
//! recovery (redelivery, replay), pause/resume and the Meta Cloud API format through the admin
//! API.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::json;
use sha2::Sha256;

use crate::support::*;

#[tokio::test]
async fn an_ingested_event_reaches_its_destination_byte_for_byte_and_signed() {
    let app = App::start().await;
    let receiver = Receiver::start().await;
    let t = app.tenant_with_source("starter").await;
    let (dest_id, secret) = destination(&app.client, &app.base, &t.token, json!({"url": receiver.url})).await;
    let body = wap_event("evt_e2e_1");
    assert_eq!(ingest(&app.client, &t.ingest_url, &body).await, 200);

    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    let request = &got[0];
    assert_eq!(request.body.as_ref(), body.as_bytes());
    let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert!(header("user-agent").starts_with("wap-relay/"));
    assert_eq!(header("x-wap-event-id"), "evt_e2e_1");
    assert_eq!(header("x-wap-event-type"), "message.received");
    assert_eq!(header("x-relay-attempt"), "1");
    let (id, ts) = (header("webhook-id"), header("webhook-timestamp"));
    assert!(standard_webhooks_valid(&secret, &id, &ts, &request.body, &header("webhook-signature")));

    let (_, events) = app.api(Method::GET, "/v1/events", &t.token, None).await;
    assert_eq!(events["data"][0]["id"].as_str(), Some(id.as_str()), "webhook-id is the relay's event id");
    let (_, deliveries) =
        app.api(Method::GET, &format!("/v1/deliveries?destination_id={dest_id}"), &t.token, None).await;
    let delivery = &deliveries["data"][0];
    eventually(Duration::from_secs(5), "the delivery to be recorded as succeeded", || async {
        let (_, d) = app
            .api(Method::GET, &format!("/v1/deliveries/{}", delivery["id"].as_str().unwrap()), &t.token, None)
            .await;
        (d["status"] == "succeeded").then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn redelivery_and_replay_send_new_attempts_with_their_trigger() {
    let app = App::start().await;
    let receiver = Receiver::start().await;
    let t = app.tenant_with_source("starter").await;
    let (dest_id, _) = destination(&app.client, &app.base, &t.token, json!({"url": receiver.url})).await;
    let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    assert_eq!(ingest(&app.client, &t.ingest_url, &wap_event("evt_r1")).await, 200);
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let (_, deliveries) = app.api(Method::GET, "/v1/deliveries", &t.token, None).await;
    let delivery_id = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(5), "the first attempt to be recorded", || async {
        let (_, d) = app.api(Method::GET, &format!("/v1/deliveries/{delivery_id}"), &t.token, None).await;
        (d["status"] == "succeeded").then_some(())
    })
    .await;

    let (status, _) =
        app.api(Method::POST, &format!("/v1/deliveries/{delivery_id}/redeliver"), &t.token, None).await;
    assert_eq!(status, 202);
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].headers["x-relay-attempt"], "2");
    assert_eq!(
        got[1].headers["webhook-id"], got[0].headers["webhook-id"],
        "same webhook-id on every redelivery"
    );
    // Replay takes finished deliveries: wait until the manual attempt is recorded.
    eventually(Duration::from_secs(5), "the manual attempt to be recorded", || async {
        let (_, d) = app.api(Method::GET, &format!("/v1/deliveries/{delivery_id}"), &t.token, None).await;
        (d["status"] == "succeeded" && d["attempts"] == 2).then_some(())
    })
    .await;

    let since = since.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, queued) = app
        .api(
            Method::POST,
            &format!("/v1/destinations/{dest_id}/replay"),
            &t.token,
            Some(json!({"since": since, "status": "all"})),
        )
        .await;
    assert_eq!((status, queued["queued"].as_i64()), (202, Some(1)), "{queued}");
    receiver.wait_for(3, Duration::from_secs(10)).await;

    let triggers = eventually(Duration::from_secs(5), "three recorded attempts", || async {
        let (_, a) =
            app.api(Method::GET, &format!("/v1/deliveries/{delivery_id}/attempts"), &t.token, None).await;
        let list: Vec<String> =
            a["data"].as_array()?.iter().map(|x| x["trigger"].as_str().unwrap().to_owned()).collect();
        (list.len() == 3).then_some(list)
    })
    .await;
    assert_eq!(triggers, ["replay", "manual", "auto"], "newest first");
    app.stop().await;
}

#[tokio::test]
async fn redelivering_an_attempt_in_flight_sends_the_next_attempt_number() {
    let app = App::start().await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(1500));
    let t = app.tenant_with_source("starter").await;
    destination(&app.client, &app.base, &t.token, json!({"url": receiver.url})).await;
    assert_eq!(ingest(&app.client, &t.ingest_url, &wap_event("evt_inflight")).await, 200);
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // The first attempt is still waiting for its answer: redeliver now.
    let (_, deliveries) = app.api(Method::GET, "/v1/deliveries", &t.token, None).await;
    let delivery_id = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) =
        app.api(Method::POST, &format!("/v1/deliveries/{delivery_id}/redeliver"), &t.token, None).await;
    assert_eq!(status, 202);
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let numbers: Vec<&str> = got.iter().map(|r| r.headers["x-relay-attempt"].to_str().unwrap()).collect();
    assert_eq!(numbers, ["1", "2"], "each attempt has its own number");
    app.stop().await;
}

#[tokio::test]
async fn a_paused_destination_collects_its_deliveries_and_resume_sends_them_in_order() {
    let app = App::start().await;
    let (paused, witness) = (Receiver::start().await, Receiver::start().await);
    let t = app.tenant_with_source("starter").await;
    let (dest_id, _) = destination(&app.client, &app.base, &t.token, json!({"url": paused.url})).await;
    destination(&app.client, &app.base, &t.token, json!({"url": witness.url})).await;
    let path = format!("/v1/destinations/{dest_id}");
    let (status, d) = app.api(Method::PATCH, &path, &t.token, Some(json!({"paused": true}))).await;
    assert_eq!((status, d["paused"].as_bool()), (200, Some(true)), "{d}");
    assert!(d["paused_at"].is_string() && d["enabled"] == true, "{d}");
    let ids = ["evt_p1", "evt_p2", "evt_p3"];
    for id in ids {
        assert_eq!(ingest(&app.client, &t.ingest_url, &wap_event(id)).await, 200);
    }
    // The other destination got all three: the dispatchers ran, and skipped the paused one.
    witness.wait_for(3, Duration::from_secs(10)).await;
    let query = format!("/v1/deliveries?destination_id={dest_id}");
    eventually(Duration::from_secs(5), "the paused deliveries to be listed as pending", || async {
        let (_, list) = app.api(Method::GET, &query, &t.token, None).await;
        let rows = list["data"].as_array()?.clone();
        (rows.len() == 3 && rows.iter().all(|r| r["status"] == "pending" && r["attempts"] == 0)).then_some(())
    })
    .await;
    assert_eq!(paused.count(), 0, "nothing is attempted while paused");

    let (status, d) = app.api(Method::PATCH, &path, &t.token, Some(json!({"paused": false}))).await;
    assert_eq!((status, d["paused"].as_bool(), d["paused_at"].is_null()), (200, Some(false), true), "{d}");
    let got = paused.wait_for(3, Duration::from_secs(10)).await;
    let order: Vec<&str> = got.iter().map(|r| r.headers["x-wap-event-id"].to_str().unwrap()).collect();
    assert_eq!(order, ids, "resumed in acceptance order");
    app.stop().await;
}

#[tokio::test]
async fn a_meta_format_destination_gets_meta_webhooks_signed_with_x_hub_signature_256() {
    let app = App::start().await;
    let (meta, witness) = (Receiver::start().await, Receiver::start().await);
    let t = app.tenant_with_source("starter").await;
    let body = json!({"url": meta.url, "format": "meta_cloud_api",
                      "meta": {"phone_number_id": "106540352242922", "display_phone_number": "15550001111"}});
    let (meta_id, secret) = destination(&app.client, &app.base, &t.token, body).await;
    destination(&app.client, &app.base, &t.token, json!({"url": witness.url})).await;
    let message = wap_event("evt_meta_1");
    let session = json!({"eventId": "evt_meta_2", "type": "session.disconnected",
                         "timestamp": "2026-04-03T12:10:00Z", "deviceId": "dev_123"})
    .to_string();
    for event in [&message, &session] {
        assert_eq!(ingest(&app.client, &t.ingest_url, event).await, 200);
    }
    witness.wait_for(2, Duration::from_secs(10)).await;
    let got = meta.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "the session event has no Meta equivalent and is not sent there");
    let request = &got[0];
    let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sent["object"], "whatsapp_business_account");
    let value = &sent["entry"][0]["changes"][0]["value"];
    assert_eq!(value["metadata"]["phone_number_id"], "106540352242922");
    assert_eq!(value["messages"][0]["text"]["body"], "Hi");
    assert_eq!(value["messages"][0]["from"], "15559876543");
    // X-Hub-Signature-256 as Meta's receivers check it: HMAC-SHA256 of the raw body, keyed with
    // the app secret string's bytes (here the whole whsec_ string, as the API shows it).
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(request.headers["x-hub-signature-256"].to_str().unwrap(), expected);
    let h = |n: &str| request.headers[n].to_str().unwrap().to_owned();
    assert!(standard_webhooks_valid(
        &secret,
        &h("webhook-id"),
        &h("webhook-timestamp"),
        &request.body,
        &h("webhook-signature")
    ));

    // The preview says the same without sending anything.
    let preview = format!("/v1/destinations/{meta_id}/preview");
    let res = app
        .client
        .post(format!("{}{preview}", app.base))
        .bearer_auth(&t.token)
        .body(message.clone())
        .send()
        .await
        .unwrap();
    let shown: serde_json::Value = res.json().await.unwrap();
    assert_eq!(shown["fanned_out"], true);
    assert_eq!(shown["body"], sent);
    assert_eq!(shown["x_hub_signature_256"].as_str(), Some(expected.as_str()));
    // The contract's shape, {"payload": <event>}, previews the same.
    let wrapped = format!(r#"{{"payload":{message}}}"#);
    let res = app.client.post(format!("{}{preview}", app.base)).bearer_auth(&t.token).body(wrapped);
    let shown_wrapped: serde_json::Value = res.send().await.unwrap().json().await.unwrap();
    assert_eq!(shown_wrapped, shown);
    let res = app
        .client
        .post(format!("{}{preview}", app.base))
        .bearer_auth(&t.token)
        .body(session)
        .send()
        .await
        .unwrap();
    let shown: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (shown["fanned_out"].as_bool(), shown["reason"].as_str()),
        (Some(false), Some("no_meta_equivalent"))
    );
    assert_eq!(meta.count(), 1, "a preview sends nothing");
    app.stop().await;
}
