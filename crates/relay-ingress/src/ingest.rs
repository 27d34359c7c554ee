//! `POST /v1/ingest/{source_id}`: one WAPing event, checked in the contract's order of work and
//! stored through the group-commit writer. Every refusal with a known source is recorded.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures::StreamExt;
use relay_core::SourceId;
use relay_core::event::{Inbound, SchemaError, parse_inbound};
use relay_core::secret::Secret;
use relay_core::verify;
use relay_http::ApiError;
use relay_store::destinations::FanoutDestination;
use relay_store::events::NewEvent;
use relay_store::rejections::BODY_PREFIX_BYTES;
use relay_store::sources::IngestSource;
use relay_store::{StoreError, tenants::TenantStatus};
use serde_json::json;
use time::OffsetDateTime;

use crate::writer::{Refused, Stored};
use crate::{IngressState, rejection};

/// How long WAPing is asked to wait when the write queue is full.
const OVERLOAD_RETRY_AFTER_SECONDS: u64 = 1;

/// The answer to a store failure; a 500's whole cause chain goes to the log (a constraint, a
/// size limit), never to the client.
pub fn store_error(e: &StoreError) -> ApiError {
    if e.is_unavailable() {
        tracing::warn!(error = %relay_http::cause_chain(e), "database unavailable during ingest");
        ApiError::unavailable()
    } else {
        ApiError::internal(relay_http::cause_chain(e))
    }
}

fn source_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "source_not_found", "no such source")
}

/// The live source named by the path, with its tenant.
pub async fn lookup_source(state: &IngressState, raw_id: &str) -> Result<Arc<IngestSource>, ApiError> {
    let id: SourceId = raw_id.parse().map_err(|_| source_not_found())?;
    match state.inner.cache.source(&state.inner.pool, id).await {
        Ok(Some(found)) if found.source.deleted_at.is_none() => Ok(found),
        Ok(_) => Err(source_not_found()),
        Err(e) => Err(store_error(&e)),
    }
}

/// Why a body could not be read.
enum BodyError {
    /// Larger than the limit: the first bytes read (none when the declared length said so) and
    /// the length declared or read so far, for the rejection record.
    TooLarge(Bytes, usize),
    /// The client's stream broke (reset, bad chunked encoding, timeout).
    Unreadable,
}

/// Reads at most `limit` bytes. When `Content-Length` already says too many, refuses before
/// reading anything: the client waits for no byte it sends, and one that sent
/// `Expect: 100-continue` gets the 413 instead of `100 Continue` (hyper sends that only when the
/// body is first read).
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, BodyError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        return Err(BodyError::TooLarge(Bytes::new(), usize::try_from(n).unwrap_or(usize::MAX)));
    }
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::with_capacity(declared.map_or(8192, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if buffer.len() + chunk.len() > limit {
            let seen = buffer.len() + chunk.len();
            let room = BODY_PREFIX_BYTES.saturating_sub(buffer.len());
            buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            buffer.truncate(BODY_PREFIX_BYTES);
            return Err(BodyError::TooLarge(buffer.freeze(), seen));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// Receives one WAPing event. A 2xx is sent only after the event and its deliveries are durably
/// stored. Refusals with a known source are recorded as rejections.
#[utoipa::path(post, path = "/v1/ingest/{source_id}", tag = "ingress", operation_id = "ingest_event",
    params(
        ("source_id" = String, Path, description = "Source id"),
        ("X-Wap-Signature" = Option<String>, Header,
            description = "`sha256=<hex>` HMAC-SHA256 of the raw body (header name and scheme per source)"),
    ),
    request_body(content = crate::doc::WapEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or a duplicate), or a url_verification answer", body = IngestAck),
        (status = 400, description = "`invalid_json`, `invalid_event` (detail names the field) or \
            `invalid_request` (the body could not be read)",
            body = relay_http::Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_signature`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "`tenant_suspended` or `plan_not_allowed`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`source_not_found`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "`backlog_full` (the tenant's backlog is at its plan's cap) or \
            `rate_limited` (past the plan's ingest rate); retry after `Retry-After`",
            body = relay_http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable` (Postgres) or `overloaded` (the tenant outpaces its \
            deliveries or holds its share of the write queue); retry after `Retry-After`",
            body = relay_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn post_ingest(
    State(state): State<IngressState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = state.inner.config.max_body_bytes;
    let body = match read_body(body, &headers, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::Unreadable) => {
            return Err(ApiError::bad_request("invalid_request", "the request body could not be read"));
        }
        Err(BodyError::TooLarge(prefix, length)) => {
            let error = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {limit} bytes"),
            );
            if let Ok(found) = lookup_source(&state, &raw_id).await {
                rejection::record(&state, &found.source, &headers, (&prefix, length), &error).await;
            }
            metrics::counter!("relay_ingest_requests_total", "outcome" => "payload_too_large").increment(1);
            return Err(error);
        }
    };
    let found = lookup_source(&state, &raw_id).await?;
    match accept(&state, &found, &headers, body.clone()).await {
        Ok(response) => Ok(response),
        Err(error) => {
            if error.status != StatusCode::SERVICE_UNAVAILABLE {
                rejection::record(&state, &found.source, &headers, (&body, body.len()), &error).await;
            }
            metrics::counter!("relay_ingest_requests_total", "outcome" => error.code).increment(1);
            Err(error)
        }
    }
}

/// Everything after the source lookup; an `Err` is recorded as a rejection by the caller.
async fn accept(
    state: &IngressState,
    found: &IngestSource,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let source = &found.source;
    let now = OffsetDateTime::now_utc();
    check_signature(state, found, headers, &body, now)?;
    // Shed before parsing when this tenant already has a standing queue of waiting events.
    if state.inner.waiting.is_full(source.tenant()) {
        return Err(overloaded("deliveries"));
    }
    check_content_type(headers)?;
    let envelope = match parse_inbound(&body) {
        Ok(Inbound::UrlVerification { challenge }) => {
            return Ok(Json(json!({ "challenge": challenge })).into_response());
        }
        Ok(Inbound::Event(envelope)) => envelope,
        Err(SchemaError::InvalidJson(detail)) => return Err(ApiError::bad_request("invalid_json", detail)),
        Err(e @ SchemaError::Invalid { .. }) => {
            return Err(ApiError::bad_request("invalid_event", e.to_string()));
        }
    };

    if found.tenant_status == TenantStatus::Suspended {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "tenant_suspended", "the tenant is suspended"));
    }
    let plan: relay_core::plan::Plan = found.tenant_plan.parse().map_err(ApiError::internal)?;
    let limits = plan.limits().with(&found.tenant_limits.0);
    if !limits.webhooks {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "plan_not_allowed",
            "the tenant's plan does not include webhooks",
        ));
    }
    let tenant = source.tenant();
    if let Err(wait) = state.inner.limiter.admit(tenant, limits.ingest_per_second, limits.ingest_burst).await
    {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("the tenant's plan accepts {} events per second; retry later", limits.ingest_per_second),
        )
        .with_retry_after(wait.as_secs_f64().ceil().max(1.0) as u64));
    }
    let pool = &state.inner.pool;
    let fanout = state.inner.cache.fanout(pool, &[tenant]).await.map_err(|e| store_error(&e))?;
    let key = relay_core::filter::EventKey {
        source_id: source.source_id(),
        event_type: &envelope.event_type,
        device_id: envelope.device_id.as_deref(),
    };
    let matching: Vec<&FanoutDestination> =
        fanout.get(&tenant).into_iter().flat_map(|v| v.iter()).filter(|d| d.filter.matches(&key)).collect();
    let admission = state.inner.backlog.admit(pool, tenant, limits.backlog, matching.len()).await;
    let Some(admission) = admission.map_err(|e| store_error(&e))? else {
        return Err(ApiError::backlog_full());
    };

    let dedupe_id = dedupe_id(source, &body).map_err(|e| ApiError::bad_request("invalid_event", e))?;
    let identity = dedupe_id.as_deref().unwrap_or(&envelope.wap_event_id);
    // Only an accepted event (stored or a duplicate) tells the silence alerts the key is alive.
    let sighting = Sighting { source, device: envelope.device_id.clone(), at: now };
    if state.inner.redis.seen_event(source.source_id(), identity).await == Some(true) {
        sighting.note(state);
        return Ok(answer(Stored::Duplicate));
    }
    crate::backpressure::wait_for_room(state, tenant, &matching)
        .await
        .map_err(|_| overloaded("deliveries"))?;
    let event = NewEvent {
        id: relay_core::EventId::new(),
        tenant_id: tenant,
        source_id: source.source_id(),
        wap_event_id: envelope.wap_event_id,
        event_type: envelope.event_type,
        device_id: envelope.device_id,
        timestamp: envelope.timestamp,
        body,
        dedupe_id,
        keep_days: relay_store::partitions::keep_days(limits.retention_days),
    };
    let ttl = Duration::from_secs(u64::from(limits.retention_days.max(1)) * 86_400);
    // Mapped here, in the request's own task, once: the shared writer only reads the answer.
    let meta_equivalent =
        matching.iter().any(|d| d.meta.is_some()) && relay_core::meta::has_equivalent(&event.body);
    let stored =
        state.inner.writer.store(event, ttl, meta_equivalent).await.map_err(|refused| match refused {
            Refused::Overloaded => overloaded("write"),
            Refused::Store(e) => store_error(&e),
        })?;
    if let Stored::New { deliveries, xact } = stored {
        admission.stored(deliveries, xact);
    }
    sighting.note(state);
    Ok(answer(stored))
}

/// An event's key for the silence alerts, noted once the event is accepted.
struct Sighting<'a> {
    source: &'a relay_store::sources::SourceRow,
    device: Option<String>,
    at: OffsetDateTime,
}

impl Sighting<'_> {
    fn note(self, state: &IngressState) {
        if self.source.silence_alert_seconds.is_some() {
            let (tenant, source) = (self.source.tenant(), self.source.source_id());
            state.inner.activity.saw(tenant, source, self.device.as_deref(), self.at);
        }
    }
}

/// The event's identity under its source's dedupe key, if the source has one and the event holds
/// its values (else it is identified by its eventId); `Err` when the values are too long to be an
/// identity. The body already parsed as an event.
fn dedupe_id(source: &relay_store::sources::SourceRow, body: &[u8]) -> Result<Option<String>, String> {
    let Some(pointers) = source.dedupe_key.as_deref() else { return Ok(None) };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Ok(None) };
    relay_core::dedupe::identity(&value, pointers)
}

/// The answer when the relay sheds load; `what` (the write queue, or deliveries not keeping
/// pace) labels the metric.
fn overloaded(what: &'static str) -> ApiError {
    metrics::counter!("relay_ingest_shed_total", "queue" => what).increment(1);
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "the relay is at capacity; retry shortly")
        .with_retry_after(OVERLOAD_RETRY_AFTER_SECONDS)
}

/// Answer to an accepted event, fields in the contract's order.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct IngestAck {
    /// Always true.
    received: bool,
    /// Present and true when this source already stored this `eventId`; nothing new is delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
}

fn answer(stored: Stored) -> Response {
    let outcome = match stored {
        Stored::New { .. } => {
            metrics::counter!("relay_events_stored_total").increment(1);
            "stored"
        }
        Stored::Duplicate => {
            metrics::counter!("relay_ingest_duplicates_total").increment(1);
            "duplicate"
        }
    };
    metrics::counter!("relay_ingest_requests_total", "outcome" => outcome).increment(1);
    match stored {
        Stored::New { .. } => Json(IngestAck { received: true, duplicate: None }).into_response(),
        Stored::Duplicate => Json(IngestAck { received: true, duplicate: Some(true) }).into_response(),
    }
}

fn check_signature(
    state: &IngressState,
    found: &IngestSource,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let source = &found.source;
    let key = &state.inner.master_key;
    let mut secrets: Vec<Secret> = Vec::with_capacity(2);
    for sealed in [source.secret.as_deref(), source.previous_secret_at(now)].into_iter().flatten() {
        secrets.push(key.open(sealed).map_err(ApiError::internal)?);
    }
    let refs: Vec<&Secret> = secrets.iter().collect();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify::verify(&source.verification.0, &refs, header, body, now.unix_timestamp())
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string()))
}

/// `application/json`, or any `+json` type, with or without parameters.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ))
    }
}
