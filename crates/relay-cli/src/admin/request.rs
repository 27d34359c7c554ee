//! The one home for building requests of the admin API: query strings (form-encoded, only the
//! parameters given) and JSON bodies (only the fields given, so a PATCH changes nothing else).

use serde::Serialize;
use serde_json::{Map, Value};

/// A query string being built: parameters the user left out are not sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(&'static str, String)>);

impl Query {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value` when there is a value.
    pub(crate) fn opt(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.0.push((key, value.to_string()));
        }
        self
    }

    /// `path` with this query, e.g. `/v1/events?type=message.received&limit=10`.
    pub(crate) fn to_path(&self, path: &str) -> String {
        if self.0.is_empty() {
            return path.to_owned();
        }
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&self.0).finish();
        format!("{path}?{query}")
    }
}

/// A JSON object body being built: fields the user left out are not sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Body(Map<String, Value>);

impl Body {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn set(mut self, key: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).expect("argument values serialise to JSON");
        self.0.insert(key.to_owned(), value);
        self
    }

    /// Sets `key` when there is a value.
    pub(crate) fn opt(self, key: &str, value: Option<impl Serialize>) -> Self {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The body, or none at all when no field was given (for routes whose body is optional).
    pub(crate) fn or_none(self) -> Option<Value> {
        (!self.0.is_empty()).then(|| self.into_value())
    }

    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_given_parameters_are_sent_and_they_are_encoded() {
        let query =
            Query::new().opt("type", Some("a b&c")).opt("since", None::<String>).opt("limit", Some(5));
        assert_eq!(query.to_path("/v1/events"), "/v1/events?type=a+b%26c&limit=5");
        assert_eq!(Query::new().to_path("/v1/events"), "/v1/events");
    }

    #[test]
    fn only_given_fields_are_sent() {
        let body = Body::new().set("name", "n").opt("secret", None::<String>).opt("ids", Some(vec!["a"]));
        assert_eq!(body.into_value(), json!({"name": "n", "ids": ["a"]}));
        assert_eq!(Body::new().or_none(), None);
    }
}
