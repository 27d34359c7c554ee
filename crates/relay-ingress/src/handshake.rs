//! The subscription handshake: `GET /v1/ingest/{source_id}?hub.mode=subscribe&hub.verify_token=T
//! &hub.challenge=C` (or `?verify_token=T&challenge=C`) echoes `C` as text when `T` is the
//! source's verify token, compared in constant time.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_http::ApiError;
use subtle::ConstantTimeEq;

use crate::IngressState;
use crate::ingest::lookup_source;
use crate::rejection;

/// Answers the subscription handshake with the challenge when the verify token matches.
#[utoipa::path(get, path = "/v1/ingest/{source_id}", tag = "ingress", operation_id = "ingest_handshake",
    params(("source_id" = String, Path, description = "Source id"), crate::doc::HandshakeQuery),
    responses(
        (status = 200, description = "The challenge, exactly", body = String, content_type = "text/plain"),
        (status = 403, description = "The verify token does not match", body = relay_http::Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`source_not_found`", body = relay_http::Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get_handshake(
    State(state): State<IngressState>,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let found = lookup_source(&state, &raw_id).await?;
    let source = &found.source;
    let param = |a: &str, b: &str| params.get(a).or_else(|| params.get(b)).map(String::as_str);
    let refused = |detail: &str| ApiError::new(StatusCode::FORBIDDEN, "invalid_verify_token", detail);
    let outcome = (|| {
        if params.get("hub.mode").is_some_and(|mode| mode != "subscribe") {
            return Err(refused("hub.mode must be subscribe"));
        }
        let challenge = param("hub.challenge", "challenge")
            .ok_or_else(|| refused("hub.challenge (or challenge) is required"))?;
        let token =
            param("hub.verify_token", "verify_token").ok_or_else(|| refused("verify token missing"))?;
        let stored =
            source.verify_token.as_deref().ok_or_else(|| refused("this source has no verify token"))?;
        let stored = state.inner.master_key.open(stored).map_err(ApiError::internal)?;
        if bool::from(stored.expose().as_bytes().ct_eq(token.as_bytes())) {
            Ok(challenge.to_owned())
        } else {
            Err(refused("verify token does not match"))
        }
    })();
    match outcome {
        Ok(challenge) => Ok((
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            challenge,
        )
            .into_response()),
        Err(error) => {
            rejection::record(&state, source, &headers, (b"", 0), &error).await;
            Err(error)
        }
    }
}
