//! Recording refused requests for the tenant to list. Only safe headers are kept: anything that
//! can carry a credential (authorization, cookies, tokens, keys, secrets) is dropped, and so is
//! the query string (a handshake's verify token travels there). What a flood costs is bounded
//! by [`tally`].

pub mod tally;

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use relay_http::ApiError;
use relay_store::rejections::{self, NewRejection};
use relay_store::sources::SourceRow;

use crate::IngressState;

const MAX_HEADER_VALUE: usize = 512;

/// Most bytes of header names and values kept per rejection.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// The headers worth keeping: never a credential (`relay_core::headers::is_credential`, the rule
/// destinations use too), each value cut at 512 characters, at most 8 KiB in all.
pub fn safe_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut kept = BTreeMap::new();
    let mut bytes = 0;
    for (name, value) in headers.iter().filter(|(name, _)| !relay_core::headers::is_credential(name.as_str()))
    {
        let text = String::from_utf8_lossy(value.as_bytes()).replace('\0', "\u{fffd}");
        let text: String = text.chars().take(MAX_HEADER_VALUE).collect();
        bytes += name.as_str().len() + text.len();
        if bytes > MAX_HEADER_BYTES {
            break;
        }
        kept.insert(name.as_str().to_owned(), text);
    }
    kept
}

/// Records a refusal for `source` (`body` the whole body or its first bytes, `body_bytes` its
/// length), best effort: a failure to record is logged, and the client still gets the answer the
/// refusal deserves. Past the minute's allowance of its source and reason it is only counted.
pub async fn record(
    state: &IngressState,
    source: &SourceRow,
    headers: &HeaderMap,
    (body, body_bytes): (&[u8], usize),
    error: &ApiError,
) {
    metrics::counter!("relay_ingest_rejections_total", "reason" => error.code).increment(1);
    let tally = &state.inner.rejections;
    let Some(id) = tally.admit(source.source_id(), error.code) else { return };
    let rejection = NewRejection {
        tenant_id: source.tenant(),
        source_id: source.source_id(),
        reason: error.code,
        status: error.status.as_u16(),
        detail: error.detail.as_deref(),
        headers: safe_headers(headers),
        body,
        body_bytes,
    };
    let _writer = tally.writer().await;
    match rejections::insert_rejection(&state.inner.pool, id, &rejection).await {
        Ok(()) => tally.stored(source.source_id(), error.code, id),
        Err(e) => tracing::warn!(error = %e, source.id = %source.source_id(), "could not record a rejection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_kept() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("cookie", "a=b".parse().unwrap());
        h.insert("x-api-key", "k".parse().unwrap());
        h.insert("x-auth-token", "t".parse().unwrap());
        h.insert("x-webhook-key", "k".parse().unwrap());
        h.insert("x-auth", "a".parse().unwrap());
        h.insert("set-cookie", "a=b".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert("x-wap-signature", "sha256=00".parse().unwrap());
        let kept = safe_headers(&h);
        // X-Wap-Signature has "signature" in its name: as for destinations, it is not kept.
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["content-type"]);
    }
}
