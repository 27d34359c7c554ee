//! A destination made ready for attempts: its URL parsed and judged, its secrets opened, its
//! custom headers (the plain ones and the sealed credential-like ones) opened and filtered, its
//! retry policy capped by the tenant's plan.
//!
//! Invariant: custom headers can never set or override the relay's own headers, nor hop-by-hop
//! or framing headers (`relay_core::headers`, the rule the admin API applies when they are saved); a URL whose host the policy refuses is kept, but every attempt to it is
//! `blocked` without a request being sent.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use relay_core::address::{AddressError, check_destination, parse_destination_url};
use relay_core::destination as defaults;
use relay_core::plan::Limits;
use relay_core::retry::RetryPolicy;
use relay_core::secret::{MasterKey, WebhookSecret};
use relay_core::{DestinationId, TenantId};
use relay_store::destinations::DestinationRow;
use time::OffsetDateTime;

pub(crate) struct Prepared {
    pub id: DestinationId,
    pub tenant_id: TenantId,
    pub url: url::Url,
    /// Why every attempt is blocked, when the URL's own host is refused.
    pub blocked: Option<AddressError>,
    pub custom_headers: HeaderMap,
    /// The current secret first, then the previous one while its grace period lasts.
    pub secrets: Vec<WebhookSecret>,
    pub timeout: Duration,
    pub policy: RetryPolicy,
    pub max_in_flight: u32,
    pub rate_per_second: Option<u32>,
    pub tenant_rate: u32,
    pub tenant_burst: u32,
    /// The failure streak as read (the recorder looks at the destination only if it may change).
    pub failing_since: Option<OffsetDateTime>,
    /// Set for the `meta_cloud_api` format: bodies are rewritten for Meta and signed with
    /// `X-Hub-Signature-256` as well.
    pub meta: Option<relay_core::meta::MetaContext>,
}

/// Prepares a destination row; `Err` (with a reason safe to log) when it cannot be used at all.
pub(crate) fn prepare(
    row: &DestinationRow,
    limits: &Limits,
    key: &MasterKey,
    allow_private: bool,
    now: OffsetDateTime,
) -> Result<Prepared, String> {
    let dest = parse_destination_url(&row.url, false).map_err(|e| format!("stored URL unusable: {e}"))?;
    let blocked = check_destination(&dest, allow_private).err();
    let mut secrets = vec![open_secret(key, &row.signing_secret)?];
    if let (Some(previous), Some(expires)) =
        (&row.previous_signing_secret, row.previous_signing_secret_expires_at)
        && expires > now
    {
        secrets.push(open_secret(key, previous)?);
    }
    let headers = row.custom_headers(key).map_err(|e| format!("custom headers: {e}"))?;
    let window = limits.retry_window(i64::from(row.window_seconds));
    Ok(Prepared {
        id: DestinationId::from_uuid(row.id),
        tenant_id: TenantId::from_uuid(row.tenant_id),
        url: dest.url,
        blocked,
        custom_headers: custom_headers(headers.iter()),
        secrets,
        timeout: Duration::from_millis(
            u64::try_from(row.timeout_ms)
                .unwrap_or(defaults::TIMEOUT_MS.into())
                .clamp(1, defaults::MAX_TIMEOUT_MS.into()),
        ),
        policy: RetryPolicy {
            initial_delay_ms: u64::try_from(row.initial_delay_ms).unwrap_or(5_000).max(1),
            max_delay_ms: u64::try_from(row.max_delay_ms).unwrap_or(3_600_000).max(1),
            window_seconds: window,
        },
        max_in_flight: u32::try_from(row.max_in_flight).unwrap_or(defaults::MAX_IN_FLIGHT).max(1),
        rate_per_second: row.rate_limit_per_second.and_then(|r| u32::try_from(r).ok()).filter(|&r| r > 0),
        tenant_rate: limits.deliveries_per_second,
        tenant_burst: limits.burst.max(1),
        failing_since: row.failing_since,
        meta: (row.format == relay_store::destinations::META_CLOUD_API)
            .then(|| row.meta_context.as_ref().map(|c| c.0.clone()).unwrap_or_default()),
    })
}

fn open_secret(key: &MasterKey, sealed: &[u8]) -> Result<WebhookSecret, String> {
    let secret = key.open(sealed).map_err(|e| format!("signing secret: {e}"))?;
    WebhookSecret::parse(secret.expose()).map_err(|e| format!("signing secret: {e}"))
}

/// The custom headers that are valid and not reserved.
pub(crate) fn custom_headers<'a>(headers: impl Iterator<Item = (&'a String, &'a String)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        // Refused when the destination is saved; rows from before a rule changed are filtered here.
        if relay_core::headers::custom_header_refusal(name).is_some() {
            continue;
        }
        let Ok(name) = HeaderName::try_from(name.as_str()) else { continue };
        if let Ok(value) = HeaderValue::try_from(value.as_str()) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn custom_headers_cannot_override_the_relays_own() {
        let given: Vec<(String, String)> = [
            ("X-Team", "payments"),
            ("Authorization", "Bearer abc"),
            ("webhook-signature", "v1,forged"),
            ("Content-Type", "text/plain"),
            ("X-Relay-Attempt", "99"),
            ("User-Agent", "evil"),
            ("Host", "internal"),
            ("Bad Header", "x"),
            ("X-Newline", "a\r\nb"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let map = custom_headers(given.iter().map(|(a, b)| (a, b)));
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-team", "authorization"]);
    }

    /// A prepared destination for other modules' tests.
    pub(crate) fn prepared() -> std::sync::Arc<Prepared> {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let row = row(&key, &std::collections::BTreeMap::new());
        let limits = relay_core::plan::Plan::Pro.limits();
        std::sync::Arc::new(prepare(&row, &limits, &key, false, OffsetDateTime::now_utc()).unwrap())
    }

    fn row(key: &MasterKey, headers: &std::collections::BTreeMap<String, String>) -> DestinationRow {
        let stored = relay_store::destinations::headers::seal(key, headers);
        let now = OffsetDateTime::now_utc();
        DestinationRow {
            id: uuid::Uuid::now_v7(),
            tenant_id: uuid::Uuid::now_v7(),
            url: "https://8.8.8.8/hook".to_owned(),
            description: None,
            source_ids: None,
            event_types: vec!["*".to_owned()],
            device_ids: None,
            headers: sqlx::types::Json(stored.plain),
            sealed_headers: stored.sealed,
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            paused: false,
            paused_at: None,
            replay_on_recovery: false,
            format: "waping".into(),
            meta_context: None,
            ordering: Default::default(),
            timeout_ms: 10_000,
            rate_limit_per_second: None,
            max_in_flight: 16,
            initial_delay_ms: 5_000,
            max_delay_ms: 3_600_000,
            window_seconds: 86_400,
            signing_secret: key.seal(WebhookSecret::generate().as_secret()),
            previous_signing_secret: None,
            previous_signing_secret_expires_at: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn sealed_credential_headers_are_sent_in_full() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let headers = [("Authorization", "Bearer sk_live_abcdefgh1234"), ("X-Team", "payments")]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let row = row(&key, &headers);
        assert!(row.sealed_headers.is_some() && !row.headers.0.contains_key("Authorization"));
        let limits = relay_core::plan::Plan::Pro.limits();
        let prepared = prepare(&row, &limits, &key, false, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(prepared.custom_headers["authorization"], "Bearer sk_live_abcdefgh1234");
        assert_eq!(prepared.custom_headers["x-team"], "payments");

        // Headers sealed under another key make the destination unusable, like its secret would.
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let mut row = row;
        row.sealed_headers = relay_store::destinations::headers::seal(&other, &headers).sealed;
        let refused = prepare(&row, &limits, &key, false, OffsetDateTime::now_utc()).err().unwrap();
        assert!(refused.starts_with("custom headers"), "{refused}");
    }
}
