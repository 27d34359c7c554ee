//! Admin authentication: HS256 JWTs with the claims of CONTRACT §5, checked by two extractors.
//! [`OperatorAuth`] admits operator tokens only and [`TenantAuth`] tenant tokens only; a valid
//! token of the other role is a 403, anything else a 401.
//!
//! Invariants: the algorithm is pinned to HS256 (a token naming `none` or any other algorithm is
//! refused before its signature is looked at); `iss`, `aud`, `sub`, `role`, `iat` and `exp` are
//! all required, and a tenant token must carry `tenant_id`. Tokens and keys never reach a log.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use relay_core::TenantId;
use relay_http::ApiError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::AdminState;

/// The `iss` of every admin token.
pub const ISSUER: &str = "wap-relay";
/// The `aud` of every admin token.
pub const AUDIENCE: &str = "wap-relay-admin";
/// The shortest accepted signing secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Clock skew tolerated on `exp`.
const LEEWAY_SECONDS: u64 = 30;

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Operator,
    Tenant,
}

/// `aud` is a string or an array of strings in JWTs minted by other libraries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of an admin token. Every field except `tenant_id` is required by deserialisation,
/// so a token missing one is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: Audience,
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    pub iat: i64,
    pub exp: i64,
}

/// The JWT secret is shorter than [`MIN_SECRET_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes")]
pub struct WeakJwtSecret;

/// The HS256 keys that sign and check admin tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// During a rotation (`RELAY_JWT_SECRET_PREVIOUS`): tokens signed with the previous secret
    /// still verify until they expire; new tokens are signed with the current one.
    previous: Option<DecodingKey>,
    validation: Validation,
}

impl JwtKeys {
    /// Keys from the secret's bytes (at least 32 of them).
    pub fn new(secret: &[u8]) -> Result<Self, WeakJwtSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakJwtSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            previous: None,
            validation,
        })
    }

    /// These keys, also accepting tokens signed with `previous` (at least 32 bytes too).
    pub fn with_previous(mut self, previous: &[u8]) -> Result<Self, WeakJwtSecret> {
        if previous.len() < MIN_SECRET_BYTES {
            return Err(WeakJwtSecret);
        }
        self.previous = Some(DecodingKey::from_secret(previous));
        Ok(self)
    }

    /// The claims of a token signed with these keys, if it is valid now.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let decode = |key: &DecodingKey| jsonwebtoken::decode::<Claims>(token, key, &self.validation);
        let decoded = match (decode(&self.decoding), &self.previous) {
            (Err(e), Some(previous)) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                decode(previous)
            }
            (result, _) => result,
        };
        let data = decoded.map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid,
        })?;
        let claims = data.claims;
        if claims.role == Role::Tenant && claims.tenant_id.is_none() {
            return Err(AuthError::Invalid);
        }
        Ok(claims)
    }
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

/// Mints a token for `role` (and `tenant` for a tenant token) valid for `ttl`; returns it with
/// its expiry. A tenant token's `sub` is the tenant id; an operator token's is `operator`.
pub fn issue_token(
    keys: &JwtKeys,
    role: Role,
    tenant: Option<TenantId>,
    ttl: Duration,
) -> (String, OffsetDateTime) {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
    let expires_at = now + ttl;
    let sub = match (role, tenant) {
        (Role::Tenant, Some(t)) => t.to_string(),
        (Role::Tenant, None) => panic!("a tenant token needs a tenant id"),
        (Role::Operator, _) => "operator".to_owned(),
    };
    let claims = Claims {
        iss: ISSUER.to_owned(),
        aud: Audience::One(AUDIENCE.to_owned()),
        sub,
        role,
        tenant_id: if role == Role::Tenant { tenant } else { None },
        iat: now.unix_timestamp(),
        exp: expires_at.unix_timestamp(),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
        .expect("HS256 signing of serialisable claims cannot fail");
    (token, expires_at)
}

/// Why a request is not authenticated or not authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
    Expired,
    WrongRole(Role),
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let error = match self {
            AuthError::Missing => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an `Authorization: Bearer <token>` header is required",
            ),
            AuthError::Invalid => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer token is not valid")
            }
            AuthError::Expired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer token has expired")
            }
            AuthError::WrongRole(needed) => {
                let role = match needed {
                    Role::Operator => "an operator",
                    Role::Tenant => "a tenant",
                };
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this route needs {role} token"))
            }
        };
        let unauthenticated = error.status == StatusCode::UNAUTHORIZED;
        let mut response = error.into_response();
        if unauthenticated {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn claims_from(parts: &Parts, keys: &JwtKeys) -> Result<Claims, AuthError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Invalid)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    keys.verify(token.trim())
}

/// A request made with a valid operator token.
#[derive(Debug, Clone)]
pub struct OperatorAuth {
    pub claims: Claims,
}

impl FromRequestParts<AdminState> for OperatorAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Self::Rejection> {
        let claims = claims_from(parts, &state.jwt)?;
        if claims.role != Role::Operator {
            return Err(AuthError::WrongRole(Role::Operator));
        }
        Ok(Self { claims })
    }
}

/// A request made with a valid tenant token; every lookup it makes is filtered by `tenant_id`.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: TenantId,
    pub claims: Claims,
}

impl FromRequestParts<AdminState> for TenantAuth {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Self::Rejection> {
        let claims = claims_from(parts, &state.jwt)?;
        match (claims.role, claims.tenant_id) {
            (Role::Tenant, Some(tenant_id)) => Ok(Self { tenant_id, claims }),
            _ => Err(AuthError::WrongRole(Role::Tenant)),
        }
    }
}
