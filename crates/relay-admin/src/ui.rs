//! The tenant dashboard (CONTRACT §8) at `/ui/`: static files (HTML, CSS, JavaScript modules
//! and the vendored chart library) from `crates/relay-admin/ui/`, built into the binary by
//! rust-embed (debug builds read them from disk, so the pages can be edited without a rebuild).
//! The pages talk to the admin API like any client: there is no second data path.
//!
//! Invariant: every answer carries a Content-Security-Policy that allows this origin only, so
//! the dashboard can make no request to any other host, and no page may be framed.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

#[derive(rust_embed::Embed)]
#[folder = "ui/"]
struct Assets;

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(|headers: HeaderMap| async move { asset("index.html", headers.get(header::IF_NONE_MATCH)) }),
        )
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                asset(&path, headers.get(header::IF_NONE_MATCH))
            }),
        )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

fn asset(path: &str, if_none_match: Option<&HeaderValue>) -> Response {
    let Some(file) = Assets::get(path) else {
        return relay_http::ApiError::not_found("not_found").into_response();
    };
    // The file's hash: a browser revalidates every file (the names carry no version) and gets a
    // 304 while it has not changed, so an upgrade never mixes old and new modules.
    let etag = format!("\"{}\"", hex_prefix(&file.metadata.sha256_hash()));
    let fresh = if_none_match.and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, file.data.into_owned()).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn hex_prefix(hash: &[u8]) -> String {
    hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
}
