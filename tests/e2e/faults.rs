//! Faults at the edges, through the whole service: a destination that takes the request and
//! never answers, one that answers with a body that never ends, and a Postgres pool far smaller
//! than the load. In each, nothing acknowledged is lost and the rest of the relay keeps going.

use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// The attempts of `destination`, newest first.
async fn attempts(app: &App, token: &str, destination: &str) -> Vec<Value> {
    let (_, page) =
        app.api(Method::GET, &format!("/v1/attempts?destination_id={destination}"), token, None).await;
    page["data"].as_array().cloned().unwrap_or_default()
}

async fn succeeded(app: &App, token: &str, destination: &str) -> usize {
    let path = format!("/v1/deliveries?destination_id={destination}&status=succeeded&limit=100");
    let (_, page) = app.api(Method::GET, &path, token, None).await;
    page["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_destination_that_never_answers_times_out_while_others_flow_and_loses_nothing() {
    let app = App::start().await;
    let silent = Receiver::start().await;
    silent.delay(Duration::from_secs(3600));
    let healthy = Receiver::start().await;
    let t = app.tenant_with_source("starter").await;
    let body = json!({"url": silent.url, "timeout_ms": 500, "retry_policy": {"initial_delay_ms": 200, "max_delay_ms": 500}});
    let (silent_id, _) = destination(&app.client, &app.base, &t.token, body).await;
    destination(&app.client, &app.base, &t.token, json!({"url": healthy.url})).await;
    for i in 0..5 {
        assert_eq!(ingest(&app.client, &t.ingest_url, &wap_event(&format!("evt_silent_{i}"))).await, 200);
    }
    // The healthy destination is not held up by the silent one.
    healthy.wait_for(5, Duration::from_secs(10)).await;
    eventually(Duration::from_secs(15), "attempts to time out", || async {
        let seen = attempts(&app, &t.token, &silent_id).await;
        (seen.len() >= 5 && seen.iter().all(|a| a["outcome"] == "timeout")).then_some(())
    })
    .await;
    // Once it answers again, every acknowledged delivery arrives.
    silent.delay(Duration::ZERO);
    eventually(Duration::from_secs(20), "every delivery to the silent destination to succeed", || async {
        (succeeded(&app, &t.token, &silent_id).await == 5).then_some(())
    })
    .await;
    app.stop().await;
}

/// A destination answering 200 with a body that never ends.
async fn endless_destination() -> String {
    let endless = || async {
        let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
        let stream = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        axum::response::Response::new(Body::from_stream(stream))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(endless)).await });
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn an_endless_response_body_is_cut_and_the_attempt_counts() {
    let app = App::start().await;
    let url = endless_destination().await;
    let t = app.tenant_with_source("starter").await;
    let (dest_id, _) =
        destination(&app.client, &app.base, &t.token, json!({"url": url, "timeout_ms": 5000})).await;
    for i in 0..3 {
        assert_eq!(ingest(&app.client, &t.ingest_url, &wap_event(&format!("evt_endless_{i}"))).await, 200);
    }
    eventually(Duration::from_secs(20), "the deliveries to succeed", || async {
        (succeeded(&app, &t.token, &dest_id).await == 3).then_some(())
    })
    .await;
    let seen = attempts(&app, &t.token, &dest_id).await;
    assert_eq!(seen.len(), 3, "one attempt each, none retried");
    for attempt in &seen {
        assert_eq!(
            (attempt["outcome"].as_str(), attempt["status_code"].as_u64()),
            (Some("success"), Some(200))
        );
        let kept = attempt["response_body"].as_str().unwrap_or_default();
        assert!(kept.len() <= 4096, "{} bytes of body kept", kept.len());
    }
    app.stop().await;
}

#[tokio::test]
async fn a_pool_far_smaller_than_the_load_answers_503_never_500_and_loses_nothing() {
    let (db, prefix) = fresh_names().await;
    let mut args = settings_args(&db, &prefix);
    args.db_pool_size = Some(2);
    let app = App::start_with(args, None).await;
    let receiver = Receiver::start().await;
    let t = app.tenant_with_source("enterprise").await;
    destination(&app.client, &app.base, &t.token, json!({"url": receiver.url})).await;
    let sent = 200;
    let senders = (0..sent).map(|i| {
        let (client, url) = (app.client.clone(), t.ingest_url.clone());
        async move {
            let body = wap_event(&format!("evt_pool_{i}"));
            // As WAPing does: a 503 is retried, anything else is final.
            loop {
                let status = ingest_once(&client, &url, &body).await;
                match status {
                    200 => return,
                    503 | 0 => tokio::time::sleep(Duration::from_millis(100)).await,
                    other => panic!("answered {other}"),
                }
            }
        }
    });
    futures::future::join_all(senders).await;
    let got = receiver.wait_for(sent, Duration::from_secs(60)).await;
    let mut ids: Vec<String> =
        got.iter().map(|r| r.headers["x-wap-event-id"].to_str().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sent, "every acknowledged event arrived");
    app.stop().await;
}

#[tokio::test]
async fn a_destination_answering_huge_headers_costs_at_most_8_kib_per_attempt() {
    let app = App::start().await;
    let receiver = Receiver::start().await;
    for i in 0..30 {
        receiver.respond_header(&format!("x-big-{i}"), &"v".repeat(3000));
    }
    let t = app.tenant_with_source("starter").await;
    let (dest_id, _) = destination(&app.client, &app.base, &t.token, json!({"url": receiver.url})).await;
    assert_eq!(ingest(&app.client, &t.ingest_url, &wap_event("evt_headers")).await, 200);
    let attempt = eventually(Duration::from_secs(10), "the attempt to be recorded", || async {
        attempts(&app, &t.token, &dest_id).await.into_iter().next()
    })
    .await;
    let headers = attempt["response_headers"].as_object().expect("response headers are kept");
    let bytes: usize = headers.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
    assert!(bytes <= 8 * 1024 + 200, "{bytes} bytes of headers kept");
    let note = headers["x-relay-headers-truncated"].as_str().expect("the cut is noted");
    assert!(note.contains("cut"), "{note}");
    assert_eq!(attempt["outcome"], "success");
    app.stop().await;
}
