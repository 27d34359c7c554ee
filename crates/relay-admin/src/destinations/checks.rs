//! Validation of a destination's settings: the URL against the SSRF address policy (resolving a
//! host name and judging every address it resolves to), filters, custom headers, limits and the
//! retry policy. Every refusal is a 422 whose `detail` starts with the field's name.

use std::collections::BTreeMap;
use std::time::Duration;

use relay_core::SourceId;
use relay_core::address::{self, AddressError, DestinationHost};
use relay_core::destination as defaults;
use relay_core::filter::validate_pattern;
use relay_http::ApiError;
use relay_store::destinations::DestinationUpdate;

use crate::AdminState;

const MAX_DESCRIPTION: usize = 1000;
const MAX_SOURCE_IDS: usize = 100;
const MAX_EVENT_TYPES: usize = 100;
const MAX_DEVICE_IDS: usize = 1000;
const MAX_HEADERS: usize = 20;
const MAX_DELAY_MS: i64 = 86_400_000;
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

fn refused(e: AddressError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "destination_not_allowed",
        format!("url: {e}"),
    )
}

/// Parses and judges a destination URL; returns it normalised. An IP-literal host is judged as
/// is; a host name is resolved now and refused if any of its addresses is not allowed, without
/// saying which (that would map internal DNS for whoever asks). A name that does not resolve
/// (yet) is accepted: every attempt judges the address it connects to, and fails with
/// `connect_error` until the name resolves.
pub(crate) async fn check_url(state: &AdminState, raw: &str) -> Result<String, ApiError> {
    if raw.len() > 2048 {
        return Err(ApiError::validation("url: must be at most 2048 characters"));
    }
    let allow_private = state.allow_private_destinations;
    let dest = address::parse_destination_url(raw, state.require_https_destinations).map_err(refused)?;
    address::check_destination(&dest, allow_private).map_err(refused)?;
    if let DestinationHost::Name(name) = &dest.host {
        let port = dest.url.port_or_known_default().unwrap_or(443);
        let resolved =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name.as_str(), port))).await;
        if let Ok(Ok(addrs)) = resolved {
            for addr in addrs {
                if address::check_ip(addr.ip(), allow_private).is_err() {
                    return Err(ApiError::new(
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "destination_not_allowed",
                        format!(
                            "url: the host name `{name}` resolves to an address destinations may not use"
                        ),
                    ));
                }
            }
        }
    }
    Ok(dest.url.to_string())
}

/// Parses `source_ids` (existence is checked against the store by the caller).
pub(crate) fn parse_source_ids(ids: &[String]) -> Result<Vec<SourceId>, ApiError> {
    if ids.len() > MAX_SOURCE_IDS {
        return Err(ApiError::validation(format!("source_ids: at most {MAX_SOURCE_IDS} entries")));
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            id.parse().map_err(|_| ApiError::validation(format!("source_ids[{i}]: not a source id")))
        })
        .collect()
}

/// Checks a custom header map as given by the tenant (before credential-like values are sealed).
pub(crate) fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::validation(format!("headers: at most {MAX_HEADERS} headers")));
    }
    for (name, value) in headers {
        if let Some(reason) = relay_core::headers::custom_header_refusal(name) {
            return Err(ApiError::validation(format!("headers.{name}: {reason}")));
        }
        if value.starts_with('…') {
            return Err(ApiError::validation(format!(
                "headers.{name}: `…` marks a masked value; send the full value (headers are replaced whole)"
            )));
        }
        if value.len() > 1024 || !value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
            return Err(ApiError::validation(format!(
                "headers.{name}: value must be at most 1024 visible ASCII characters"
            )));
        }
    }
    Ok(())
}

fn in_range<T: PartialOrd + std::fmt::Display>(field: &str, v: T, min: T, max: T) -> Result<(), ApiError> {
    if v < min || v > max {
        return Err(ApiError::validation(format!("{field}: must be between {min} and {max}")));
    }
    Ok(())
}

/// Checks the settings a destination would have after a create or a patch (its headers are
/// checked by [`check_headers`] before they are sealed). `max_window` is the
/// plan's retry window; it is enforced only when `window_changed` (a plan downgrade does not make
/// unrelated edits fail).
pub(crate) fn check_settings(
    u: &DestinationUpdate,
    max_window: u32,
    window_changed: bool,
) -> Result<(), ApiError> {
    if u.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(ApiError::validation(format!("description: at most {MAX_DESCRIPTION} characters")));
    }
    if u.event_types.is_empty() || u.event_types.len() > MAX_EVENT_TYPES {
        return Err(ApiError::validation(format!("event_types: 1 to {MAX_EVENT_TYPES} patterns")));
    }
    for (i, p) in u.event_types.iter().enumerate() {
        validate_pattern(p).map_err(|e| ApiError::validation(format!("event_types[{i}]: {e}")))?;
    }
    if let Some(devices) = &u.device_ids {
        if devices.len() > MAX_DEVICE_IDS {
            return Err(ApiError::validation(format!("device_ids: at most {MAX_DEVICE_IDS} entries")));
        }
        if let Some(i) = devices.iter().position(|d| d.is_empty() || d.chars().count() > 256) {
            return Err(ApiError::validation(format!("device_ids[{i}]: must be 1 to 256 characters")));
        }
    }
    in_range("timeout_ms", u.timeout_ms, 1, defaults::MAX_TIMEOUT_MS as i32)?;
    if let Some(rate) = u.rate_limit_per_second {
        in_range("rate_limit_per_second", rate, 1, 100_000)?;
    }
    in_range("max_in_flight", u.max_in_flight, 1, defaults::MAX_IN_FLIGHT_LIMIT as i32)?;
    in_range("retry_policy.initial_delay_ms", u.initial_delay_ms, 1, MAX_DELAY_MS)?;
    in_range("retry_policy.max_delay_ms", u.max_delay_ms, u.initial_delay_ms, MAX_DELAY_MS)?;
    let max_window = if window_changed { i32::try_from(max_window).unwrap_or(i32::MAX) } else { i32::MAX };
    if max_window < 1 {
        return Err(ApiError::validation("retry_policy.window_seconds: the plan allows no retry window"));
    }
    in_range("retry_policy.window_seconds", u.window_seconds, 1, max_window)?;
    Ok(())
}

/// A Meta context as stored: `display_phone_number` digits only (Meta's form); empty values
/// count as unset, and an all-empty context as none.
pub(crate) fn check_meta(
    meta: Option<relay_core::meta::MetaContext>,
) -> Result<Option<relay_core::meta::MetaContext>, ApiError> {
    let Some(mut meta) = meta else { return Ok(None) };
    for value in [&mut meta.waba_id, &mut meta.phone_number_id, &mut meta.display_phone_number] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *value = None;
        }
        if let Some(v) = value.as_deref()
            && (!relay_core::text::is_storable(v) || v.chars().count() > 64)
        {
            return Err(ApiError::validation("meta: values are at most 64 characters, without U+0000"));
        }
    }
    if meta.display_phone_number.as_deref().is_some_and(|v| !v.chars().all(|c| c.is_ascii_digit())) {
        return Err(ApiError::validation("meta.display_phone_number: digits only, as Meta writes it"));
    }
    Ok((meta != relay_core::meta::MetaContext::default()).then_some(meta))
}
