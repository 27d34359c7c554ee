//! HTTP pieces shared by the ingress and admin routers: the RFC 9457 problem+json error with a
//! stable `code`, a JSON extractor whose rejections are problems too, and the mapping of store
//! errors to HTTP. A 500 tells the client only "internal error"; its cause chain is logged once,
//! here, when the response is built.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_store::StoreError;
use serde::Serialize;

/// The problem+json body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:wap-relay:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable, machine-readable error code.
    pub code: String,
}

/// An error answered as problem+json.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: Option<String>,
    pub retry_after: Option<u64>,
    /// The cause of a 500, logged and never sent.
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// How long a client is asked to wait when the tenant's backlog is full.
pub const BACKLOG_RETRY_AFTER_SECONDS: u64 = 30;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: Some(detail.into()), retry_after: None, cause: None }
    }

    pub fn bare(status: StatusCode, code: &'static str) -> Self {
        Self { status, code, detail: None, retry_after: None, cause: None }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", detail)
    }

    pub fn not_found(code: &'static str) -> Self {
        Self::bare(StatusCode::NOT_FOUND, code)
    }

    /// 429 `backlog_full`: the tenant's undelivered deliveries are at its plan's cap (ingest, and
    /// the admin API's manual work); retry after the backlog had time to drain.
    pub fn backlog_full() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "backlog_full",
            "the tenant's backlog of undelivered deliveries is at its plan's cap; retry later",
        )
        .with_retry_after(BACKLOG_RETRY_AFTER_SECONDS)
    }

    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is unavailable; retry later")
            .with_retry_after(5)
    }

    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            detail: Some("internal error".into()),
            retry_after: None,
            cause: Some(cause.into()),
        }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:wap-relay:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)
    }
}

/// An error and its sources, `: `-separated: what a log line needs to say why.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(error = %cause_chain(cause.as_ref()), "request failed with an internal error");
        }
        let mut response = (self.status, Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("not_found"),
            StoreError::Conflict { constraint } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("conflicts with an existing resource ({constraint})"),
            ),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause_chain(&cause), "database unavailable");
                ApiError::unavailable()
            }
            StoreError::TimedOut(cause) => {
                tracing::warn!(error = %cause_chain(&cause), "a read ran past its statement timeout");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "query_timeout",
                    "the query took too long; narrow it (a shorter window, more filters) or retry later",
                )
                .with_retry_after(5)
            }
            other => ApiError::internal(other),
        }
    }
}

/// A JSON body whose rejections are problems: 415 without a JSON content type, 400
/// `invalid_json` for bad syntax, 422 `validation_error` for text that cannot be stored (naming
/// its JSON pointer, see `relay_core::text`), 400 `invalid_request` (naming the field) for the
/// wrong shape or an unknown field.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if let Some(at) = relay_core::text::first_unstorable(&value) {
            return Err(ApiError::validation(format!("{at} must not contain U+0000")));
        }
        serde_path_to_error::deserialize(value).map(ApiJson).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let detail = if path == "." { inner.to_string() } else { format!("{path}: {inner}") };
            ApiError::bad_request("invalid_request", detail)
        })
    }
}

/// Refuses a query string that carries text which cannot be stored (U+0000), naming the
/// parameter: 400 `invalid_query`. Query extractors call it before parsing.
pub fn check_query(query: Option<&str>) -> Result<(), ApiError> {
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !relay_core::text::is_storable(&name) || !relay_core::text::is_storable(&value) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("query parameter `{}` must not contain U+0000", name.replace('\0', "\\u0000")),
            ));
        }
    }
    Ok(())
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Type must be application/json",
            ),
            JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("invalid_json", e.body_text()),
            JsonRejection::JsonDataError(e) => ApiError::bad_request("invalid_request", e.body_text()),
            JsonRejection::BytesRejection(e) => ApiError::new(e.status(), "invalid_request", e.body_text()),
            other => ApiError::new(other.status(), "invalid_request", other.body_text()),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// The problem code for an error status that no handler described (a framework rejection, an
/// unmatched route, a timeout).
fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_error",
        429 => "too_many_requests",
        503 => "unavailable",
        500..=599 => "internal",
        _ => "error",
    }
}

/// Response middleware (the outermost layer of the server): every error the relay answers is
/// problem+json with a `code`, including those no handler wrote (an unmatched route, a method the
/// route does not take, a path that is not valid UTF-8, a request timeout, a panic). A plain-text
/// body becomes the `detail` (5xx bodies are never passed on); `Retry-After` and `Allow` stay.
pub async fn problem_responses(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = if status.is_client_error() {
        axum::body::to_bytes(body, 4096).await.ok().and_then(|b| String::from_utf8(b.to_vec()).ok())
    } else {
        None
    };
    let detail =
        text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).or_else(|| match status.as_u16() {
            404 => Some("no such route".to_owned()),
            405 => Some("this route does not take that method".to_owned()),
            408 => Some("the request took too long".to_owned()),
            _ => None,
        });
    let error = ApiError { status, code: code_for(status), detail, retry_after: None, cause: None };
    let mut out = error.into_response();
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}
