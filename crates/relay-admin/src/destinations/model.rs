//! The shapes of the destinations API: what a request may send (`DestinationIn`,
//! `DestinationPatch`, the retry policy) and what a response shows (`DestinationOut`, with its
//! credential-like custom headers masked to their hint).

use std::collections::BTreeMap;

use relay_core::secret::{MasterKey, Secret};
use relay_core::vocab::DeliveryOrdering;
use relay_core::{DestinationId, SourceId};
use relay_http::ApiError;
use relay_store::destinations::DestinationRow;
use relay_store::destinations::headers as stored_headers;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::extract::double_option;

/// What a destination receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationFormat {
    /// The event's bytes as received (`standard` is accepted as an alias).
    #[default]
    #[serde(alias = "standard")]
    Waping,
    /// Meta's WhatsApp Cloud API `messages` webhook.
    MetaCloudApi,
}

impl DestinationFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waping => "waping",
            Self::MetaCloudApi => relay_store::destinations::META_CLOUD_API,
        }
    }

    pub(super) fn of(stored: &str) -> Self {
        if stored == relay_store::destinations::META_CLOUD_API { Self::MetaCloudApi } else { Self::Waping }
    }
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetryPolicy {
    pub initial_delay_ms: i64,
    pub max_delay_ms: i64,
    pub window_seconds: i32,
}

/// Retry settings; missing fields keep their current (or default) values.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicyIn {
    /// Wait before the second attempt; doubles per attempt (default 5000).
    pub initial_delay_ms: Option<u64>,
    /// Longest wait between attempts (default 3600000).
    pub max_delay_ms: Option<u64>,
    /// How long a delivery is retried, at most the plan's retry window (default 86400, capped).
    pub window_seconds: Option<u32>,
}

/// A new destination.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationIn {
    /// `https://` (or `http://` unless the relay requires https) on a public address.
    pub url: String,
    pub description: Option<String>,
    /// Only events from these sources (default: all).
    pub source_ids: Option<Vec<String>>,
    /// Exact types, `prefix.*` or `*` (default `["*"]`). The relay's own operational events
    /// (`relay.destination.disabled`, `relay.destination.recovered`, `relay.delivery.failed`,
    /// `relay.source.silent`/`resumed`, `relay.device.silent`/`resumed`) match only patterns
    /// starting `relay.` (e.g. `relay.*`), never `*`; those patterns match nothing a source sent.
    pub event_types: Option<Vec<String>>,
    /// Only events from these devices (default: all).
    pub device_ids: Option<Vec<String>>,
    /// Extra request headers; the relay's own headers cannot be overridden. Credential-like ones
    /// (see `DestinationOut.headers`) are stored encrypted and never shown again in full.
    pub headers: Option<BTreeMap<String, String>>,
    /// Default true.
    /// `standard` (default): the event's bytes as received. `meta_cloud_api`: the event rewritten
    /// as Meta's WhatsApp Cloud API `messages` webhook, signed with `X-Hub-Signature-256` (keyed
    /// with this destination's signing secret) besides the Standard Webhooks headers; events
    /// with no Meta equivalent are not sent to it.
    pub format: Option<DestinationFormat>,
    /// For `meta_cloud_api`: what the Meta envelope needs and WAPing does not send.
    pub meta: Option<relay_core::meta::MetaContext>,
    /// When it answers again after a failing streak, queue the deliveries that failed during
    /// the streak once more (trigger `replay`). Default false.
    pub replay_on_recovery: Option<bool>,
    /// Create it paused (default false): fan-out queues its deliveries, which wait until
    /// `PATCH {"paused": false}`.
    pub paused: Option<bool>,
    /// `none` (default): deliveries are attempted in any order, many at once. `per_device`: the
    /// deliveries of events that share a `deviceId` are attempted one at a time, in the order
    /// the relay accepted the events; one being retried holds back that device's later ones
    /// (they stay `pending`) until it succeeds or fails. Events without a `deviceId`, and other
    /// devices, are not held.
    pub ordering: Option<DeliveryOrdering>,
    pub enabled: Option<bool>,
    /// 1 to 30000 (default 10000).
    pub timeout_ms: Option<u32>,
    pub rate_limit_per_second: Option<u32>,
    /// Concurrent attempts at most (default 16).
    pub max_in_flight: Option<u32>,
    pub retry_policy: Option<RetryPolicyIn>,
}

/// Changes to a destination; missing fields stay as they are, `null` clears a nullable one.
/// `enabled: true` re-enables a destination the relay disabled.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    pub url: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub source_ids: Option<Option<Vec<String>>>,
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub device_ids: Option<Option<Vec<String>>>,
    /// Replaces all custom headers. Masked values (`…abcd`) are refused: send every credential
    /// in full again.
    pub headers: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    /// `true` pauses it: deliveries collect and none is attempted; `false` resumes it (they flow
    /// in order, each with a fresh retry window).
    pub paused: Option<bool>,
    pub replay_on_recovery: Option<bool>,
    pub format: Option<DestinationFormat>,
    /// Replaces the Meta context whole (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<relay_core::meta::MetaContext>)]
    pub meta: Option<Option<relay_core::meta::MetaContext>>,
    /// Applies to the deliveries already queued as well as to new ones.
    pub ordering: Option<DeliveryOrdering>,
    pub timeout_ms: Option<u32>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub rate_limit_per_second: Option<Option<u32>>,
    pub max_in_flight: Option<u32>,
    pub retry_policy: Option<RetryPolicyIn>,
}

/// A destination. `signing_secret` appears only in the response to create.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DestinationOut {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub source_ids: Option<Vec<String>>,
    pub event_types: Vec<String>,
    pub device_ids: Option<Vec<String>>,
    /// Custom request headers. The value of a credential-like header (`Authorization`, and any
    /// name containing `token`, `secret`, `key`, `auth`, `password`, `signature`, `session` or
    /// `cookie`, in any case) is masked: `…` followed by its last four characters, or just `…`
    /// when shorter than 12 characters. Such values are stored encrypted with the master key and
    /// sent in full with every delivery. Names the relay sets itself (`Content-Type`,
    /// `User-Agent`, `Host`, `webhook-*`, `X-Wap-*`, `X-Relay-*`) and hop-by-hop or framing
    /// headers the HTTP client manages (`Connection`, `Keep-Alive`, `TE`, `Trailer`,
    /// `Transfer-Encoding`, `Upgrade`, `Expect`, `Content-Encoding`, `Proxy-*`) are refused.
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    /// Why the relay (or the tenant) disabled it.
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// Paused by the tenant: deliveries collect, none is attempted.
    pub paused: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub paused_at: Option<OffsetDateTime>,
    /// Replay the failed deliveries of a failing streak when the destination answers again.
    pub replay_on_recovery: bool,
    pub format: DestinationFormat,
    pub meta: Option<relay_core::meta::MetaContext>,
    /// `per_device`: one delivery at a time per `deviceId`, in acceptance order.
    pub ordering: DeliveryOrdering,
    pub timeout_ms: i32,
    pub rate_limit_per_second: Option<i32>,
    pub max_in_flight: i32,
    pub retry_policy: RetryPolicy,
    /// The first failed attempt since the last success.
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The `whsec_` secret deliveries are signed with (only in the response to create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl DestinationOut {
    /// The destination as shown: credential-like header values masked (opening them needs `key`).
    pub(super) fn new(key: &MasterKey, r: &DestinationRow) -> Result<Self, ApiError> {
        let headers = r.custom_headers(key).map_err(ApiError::internal)?;
        Ok(Self {
            id: DestinationId::from_uuid(r.id).to_string(),
            url: r.url.clone(),
            description: r.description.clone(),
            source_ids: r
                .source_ids
                .as_ref()
                .map(|ids| ids.iter().map(|id| SourceId::from_uuid(*id).to_string()).collect()),
            event_types: r.event_types.clone(),
            device_ids: r.device_ids.clone(),
            headers: masked(headers),
            enabled: r.enabled,
            disabled_reason: r.disabled_reason.clone(),
            disabled_at: r.disabled_at,
            paused: r.paused,
            paused_at: r.paused_at,
            replay_on_recovery: r.replay_on_recovery,
            format: DestinationFormat::of(&r.format),
            meta: r.meta_context.as_ref().map(|c| c.0.clone()),
            ordering: r.ordering,
            timeout_ms: r.timeout_ms,
            rate_limit_per_second: r.rate_limit_per_second,
            max_in_flight: r.max_in_flight,
            retry_policy: RetryPolicy {
                initial_delay_ms: r.initial_delay_ms,
                max_delay_ms: r.max_delay_ms,
                window_seconds: r.window_seconds,
            },
            failing_since: r.failing_since,
            created_at: r.created_at,
            updated_at: r.updated_at,
            signing_secret: None,
        })
    }
}

/// Custom headers with each credential-like value replaced by its hint.
fn masked(headers: BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .map(|(name, value)| match stored_headers::is_credential(&name) {
            true => (name, Secret::new(value).hint()),
            false => (name, value),
        })
        .collect()
}
