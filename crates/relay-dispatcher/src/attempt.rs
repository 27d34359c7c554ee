//! One HTTP attempt: send the event to the destination and report what happened, classified
//! into the contract's outcomes (`success`, `http_error`, `timeout`, `connect_error`,
//! `tls_error`, `blocked`).
//!
//! Invariant: a refused address is never contacted: an IP-literal host the policy refuses is
//! `blocked` before any request (the resolver is not consulted for IP literals), and a name is
//! judged by the client's resolver. At most 4 KiB of the response body is kept, and only a
//! bounded amount more is read so the connection can be reused.

use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_core::retry::parse_retry_after;
use relay_store::outcomes::AttemptOutcome;
use reqwest::header::RETRY_AFTER;
use time::OffsetDateTime;

use crate::client::Blocked;
use crate::prepare::Prepared;
use crate::request::{self, Outbound};

const BODY_KEPT: usize = 4096;
/// Read past the kept part up to this much, so a keep-alive connection stays reusable.
const BODY_DRAINED: usize = 64 * 1024;
/// Most bytes of response header names and values kept per attempt.
const HEADERS_KEPT: usize = 8 * 1024;
/// Notes added to the kept headers when something was cut.
pub(crate) const HEADERS_CUT: &str = "x-relay-headers-truncated";
pub(crate) const BODY_CUT: &str = "x-relay-body-truncated";

/// What one attempt did.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub started_at: OffsetDateTime,
    pub duration: Duration,
    pub outcome: AttemptOutcome,
    pub status: Option<u16>,
    pub headers: Option<serde_json::Value>,
    pub body: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
}

/// The event as one attempt sends it.
pub(crate) struct Payload<'a> {
    pub outbound: Outbound<'a>,
    pub body: Bytes,
}

pub(crate) async fn perform(client: &reqwest::Client, dest: &Prepared, payload: Payload<'_>) -> Report {
    let started_at = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let mut report = Report {
        started_at,
        duration: Duration::ZERO,
        outcome: AttemptOutcome::Blocked,
        status: None,
        headers: None,
        body: None,
        error: None,
        retry_after: None,
    };
    if let Some(refused) = &dest.blocked {
        report.error = Some(refused.to_string());
        return report;
    }
    let (headers, body) = match &dest.meta {
        None => (request::headers(&dest.custom_headers, &payload.outbound), payload.body),
        Some(ctx) => match meta_request(dest, ctx, &payload) {
            Some(meta) => meta,
            None => {
                // The event no longer maps (it did at fan-out): nothing Meta-shaped to send, so
                // the attempt is refused like a blocked one.
                report.error = Some("the event has no Meta Cloud API equivalent".into());
                return report;
            }
        },
    };
    let sent = client.post(dest.url.clone()).headers(headers).timeout(dest.timeout).body(body).send().await;
    match sent {
        Ok(response) => read_response(response, &mut report).await,
        Err(e) => {
            report.outcome = classify(&e);
            // The URL is in the attempt's own `url` field already.
            report.error = Some(error_text(&e.without_url()));
        }
    }
    report.duration = clock.elapsed();
    report
}

async fn read_response(mut response: reqwest::Response, report: &mut Report) {
    let status = response.status();
    report.status = Some(status.as_u16());
    report.outcome = if status.is_success() { AttemptOutcome::Success } else { AttemptOutcome::HttpError };
    report.retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
    let mut headers = kept_headers(response.headers());
    let mut kept = Vec::new();
    let mut read = 0usize;
    let mut complete = false;
    while read < BODY_DRAINED {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                read += chunk.len();
            }
            Ok(None) => {
                complete = true;
                break;
            }
            Err(e) => {
                report.error = Some(format!("reading the response body: {}", error_text(&e)));
                break;
            }
        }
    }
    if read > kept.len() {
        let total = if complete { format!("{read} bytes") } else { format!("more than {read} bytes") };
        headers.insert(BODY_CUT.into(), format!("kept the first {} of {total}", kept.len()).into());
    }
    report.headers = Some(serde_json::Value::Object(headers));
    // Postgres text cannot hold NUL.
    report.body = Some(String::from_utf8_lossy(&kept).replace('\0', "\u{fffd}"));
}

/// The response headers as stored: repeated names joined, NUL replaced (Postgres cannot store
/// it), at most [`HEADERS_KEPT`] bytes; when some were cut, a note says how many were kept.
fn kept_headers(headers: &reqwest::header::HeaderMap) -> serde_json::Map<String, serde_json::Value> {
    let mut kept = serde_json::Map::new();
    let mut bytes = 0;
    let mut dropped = 0;
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).replace('\0', "\u{fffd}");
        if bytes + name.as_str().len() + value.len() > HEADERS_KEPT {
            dropped += 1;
            continue;
        }
        bytes += name.as_str().len() + value.len();
        match kept.get_mut(name.as_str()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                kept.insert(name.as_str().to_owned(), serde_json::Value::String(value));
            }
        }
    }
    if dropped > 0 {
        let note = format!("kept {HEADERS_KEPT} bytes of headers; {dropped} header lines were cut");
        kept.insert(HEADERS_CUT.into(), note.into());
    }
    kept
}

/// The contract's outcome for a failed request.
pub(crate) fn classify(err: &reqwest::Error) -> AttemptOutcome {
    if chain_has(err, |e| e.is::<Blocked>()) {
        AttemptOutcome::Blocked
    } else if err.is_timeout() {
        AttemptOutcome::Timeout
    } else if chain_has(err, |e| e.is::<rustls::Error>()) {
        AttemptOutcome::TlsError
    } else {
        AttemptOutcome::ConnectError
    }
}

/// Walks an error's sources, looking inside `io::Error`s too (their `source()` skips the
/// wrapped error itself).
fn chain_has(
    err: &(dyn std::error::Error + 'static),
    test: fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if test(e) {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && chain_has(inner, test)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The error and its causes on one line, without repeats, bounded.
fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    let mut line = parts.join(": ");
    if line.len() > 1000 {
        let cut = (0..=1000).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
        line.truncate(cut);
    }
    line
}

/// The headers and body of an attempt to a `meta_cloud_api` destination: the event rewritten for
/// Meta, with the relay's headers computed over those bytes, plus `X-Hub-Signature-256` keyed
/// with the current signing secret's string (`WebhookSecret::meta_app_secret`).
fn meta_request(
    dest: &Prepared,
    ctx: &relay_core::meta::MetaContext,
    payload: &Payload<'_>,
) -> Option<(http::HeaderMap, bytes::Bytes)> {
    let body = relay_core::meta::to_meta(&payload.body, ctx).ok()??;
    let outbound = request::Outbound { body: &body, ..payload.outbound.clone() };
    let mut headers = request::headers(&dest.custom_headers, &outbound);
    let signature = relay_core::meta::hub_signature(dest.secrets.first()?.meta_app_secret(), &body);
    headers.insert(relay_core::meta::HUB_SIGNATURE_HEADER, http::HeaderValue::from_str(&signature).ok()?);
    Some((headers, bytes::Bytes::from(body)))
}
