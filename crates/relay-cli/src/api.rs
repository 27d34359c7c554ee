//! The admin API client: one reqwest client, the bearer token, JSON in and out, and the API's
//! problem+json errors turned into [`ApiError`] (its `code` and `detail`, printed as such).

use std::fmt;

use reqwest::Method;
use serde_json::Value;

use crate::target::Target;

/// An error answer of the API (or of reaching it).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status, 0 when the relay could not be reached.
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == 0 {
            write!(f, "{}: {}", self.code, self.detail)
        } else {
            write!(f, "{} ({}): {}", self.code, self.status, self.detail)
        }
    }
}

impl std::error::Error for ApiError {}

pub struct Api {
    client: reqwest::Client,
    target: Target,
}

impl Api {
    pub fn new(target: Target) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("wap-relay-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self { client, target })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The absolute URL of `path_and_query` (which starts with `/`, e.g. `/v1/sources?limit=5`).
    pub fn url(&self, path_and_query: &str) -> String {
        let base = self.target.url.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }

    /// A request with the token, ready to send.
    pub fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path_and_query)).bearer_auth(&self.target.token)
    }

    /// Sends a JSON request and returns the JSON answer (`Value::Null` for an empty one).
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut request = self.request(method, path_and_query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| unreachable_error(&self.target, &e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| unreachable_error(&self.target, &e))?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(ApiError::from_problem(status, &value))
    }
}

impl ApiError {
    /// The error of a non-success answer, from its problem+json body (`code`, `detail`, else
    /// `title`), whatever the body is.
    pub fn from_problem(status: reqwest::StatusCode, body: &Value) -> Self {
        ApiError {
            status: status.as_u16(),
            code: body["code"].as_str().unwrap_or("http_error").to_owned(),
            detail: body["detail"]
                .as_str()
                .or_else(|| body["title"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the relay answered {status}")),
        }
    }
}

/// The error for a relay that could not be reached (or whose answer broke off).
pub fn unreachable_error(target: &Target, e: &reqwest::Error) -> ApiError {
    ApiError {
        status: 0,
        code: "unreachable".into(),
        detail: format!("could not reach the relay at {}: {}", target.url, error_chain(e)),
    }
}

/// An error and its causes, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
