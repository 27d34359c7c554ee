//! Signed WAPing events as WAPing sends them (`X-Wap-Signature: sha256=<hex>`), and one POST of
//! such an event with what the relay answered.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::relay::WAP_SECRET;

/// A `message.received` event with `eventId` = `id` and the given device; body and signature.
pub fn event(id: &str, device: &str) -> (String, String) {
    let body = json!({"eventId": id, "type": "message.received", "timestamp": "2026-04-03T12:00:00Z",
                      "deviceId": device, "message": {"id": format!("m-{id}"), "from": "+15559876543", "body": "Hello from the bench"}})
    .to_string();
    let signature = sign(&body);
    (body, signature)
}

pub fn sign(body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(WAP_SECRET.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How the relay answered one ingest request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200, stored now.
    Stored,
    /// 200 with `duplicate: true`.
    Duplicate,
    /// 503 (shed or unavailable); whether it carried `Retry-After`.
    Unavailable { retry_after: bool },
    /// Any other status.
    Other(u16),
    /// No HTTP answer (connection error, client timeout).
    Silent,
}

/// The signed POST of `body` (its signature given), as WAPing sends it.
pub fn request(
    client: &reqwest::Client,
    url: &str,
    body: String,
    signature: String,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-wap-signature", signature)
        .timeout(Duration::from_secs(30))
        .body(body)
}

pub async fn post(client: &reqwest::Client, url: &str, id: &str, device: &str) -> Answer {
    let (body, signature) = event(id, device);
    let sent = request(client, url, body, signature).send().await;
    let Ok(response) = sent else { return Answer::Silent };
    match response.status().as_u16() {
        200 => match response.bytes().await {
            Ok(b) if b.windows(9).any(|w| w == b"duplicate") => Answer::Duplicate,
            Ok(_) => Answer::Stored,
            Err(_) => Answer::Silent,
        },
        503 => Answer::Unavailable { retry_after: response.headers().contains_key("retry-after") },
        other => Answer::Other(other),
    }
}
