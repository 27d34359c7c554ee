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

fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
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
            other => ApiError::internal(other),
        }
    }
}

/// `axum::Json` whose rejections are problems: 415 without a JSON content type, 400
/// `invalid_json` for bad syntax, 400 `invalid_request` (naming the field) for the wrong shape or
/// an unknown field.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

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
