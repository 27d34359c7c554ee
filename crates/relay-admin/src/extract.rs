//! Request plumbing shared by every resource: a query-string extractor and an optional JSON body
//! extractor whose rejections are problem+json, path id parsing (an id of the wrong kind is as
//! unknown as a missing one: 404), and keyset pagination (`?limit=&cursor=` in,
//! `{"data":[…],"next_cursor":…}` out, newest first).

use std::str::FromStr;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use relay_http::{ApiError, ApiJson};
use relay_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 250;

/// `axum::extract::Query` whose rejection is a 400 `invalid_query` problem naming the parameter.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        relay_http::check_query(parts.uri.query())?;
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// A JSON body that may be left out entirely: an empty body is `None`; anything else is parsed
/// exactly like [`ApiJson`] (JSON content type, unknown fields refused).
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid_request", e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        let ApiJson(value) =
            ApiJson::<T>::from_request(Request::from_parts(parts, Body::from(bytes)), state).await?;
        Ok(Self(Some(value)))
    }
}

/// Parses an id from the path. A malformed id, or one of another kind, names nothing: 404.
pub fn path_id<I: FromStr>(raw: &str, not_found: &'static str) -> Result<I, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(not_found))
}

/// Maps a store error, turning `NotFound` into a 404 with `code`.
pub fn or_not_found(code: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(code),
        other => other.into(),
    }
}

/// The validated `limit` and `cursor` of a list request.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<I> {
    pub before: Option<I>,
    pub limit: u32,
}

impl<I: FromStr + Copy> PageRequest<I> {
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::validation(format!("limit: must be between 1 and {MAX_LIMIT}")));
        }
        let before = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(c.parse().map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", "cursor: not a cursor of this list")
            })?),
        };
        Ok(Self { before, limit })
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// One page of a list, newest first. `next_cursor` is null on the last page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `?cursor=` to get the next (older) page; null when there is none.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows.
    pub fn from_rows<R, C: ToString>(
        mut rows: Vec<R>,
        limit: u32,
        cursor_of: impl Fn(&R) -> C,
        map: impl FnMut(R) -> T,
    ) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| cursor_of(r).to_string())
        } else {
            None
        };
        Self { data: rows.into_iter().map(map).collect(), next_cursor }
    }

    /// A complete, short list on one page.
    pub fn all(data: Vec<T>) -> Self {
        Self { data, next_cursor: None }
    }
}

/// Deserialises a field that distinguishes "absent" (outer `None`, through `#[serde(default)]`)
/// from `null` (`Some(None)`), for PATCH bodies.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// RFC 3339 times read from requests, normalised to UTC. A time whose offset moves it outside
/// the years 0000 to 9999 in UTC (`9999-12-31T23:59:59-23:59`) is refused like a malformed one:
/// the database, the id ranges and the responses work in UTC, where it has no RFC 3339 form.
pub mod utc_time {
    use time::{OffsetDateTime, UtcOffset};

    fn to_utc<E: serde::de::Error>(t: OffsetDateTime) -> Result<OffsetDateTime, E> {
        t.checked_to_offset(UtcOffset::UTC)
            .filter(|t| (0..=9999).contains(&t.year()))
            .ok_or_else(|| E::custom("a time out of range in UTC (years 0000 to 9999)"))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        to_utc(time::serde::rfc3339::deserialize(d)?)
    }

    pub mod option {
        use time::OffsetDateTime;

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            time::serde::rfc3339::option::deserialize(d)?.map(super::to_utc).transpose()
        }
    }
}
