//! The tenant dashboard (CONTRACT §8) at `/ui/`: static files (HTML, CSS, JavaScript modules
//! and the vendored chart library) from `crates/relay-admin/ui/`, built into the binary by
//! rust-embed (debug builds read them from disk, so the pages can be edited without a rebuild).
//! The pages talk to the admin API like any client: there is no second data path.
//!
//! Invariant: every answer carries a Content-Security-Policy that allows this origin only, so
//! the dashboard can make no request to any other host, and no page may be framed.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
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
        .route("/ui/", get(|| async { asset("index.html") }))
        .route("/ui/{*path}", get(|Path(path): Path<String>| async move { asset(&path) }))
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

fn asset(path: &str) -> Response {
    let Some(file) = Assets::get(path) else {
        return relay_http::ApiError::not_found("not_found").into_response();
    };
    let mut response = (StatusCode::OK, file.data.into_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The page itself is always fresh; assets may be cached briefly (they change with releases).
    let cache = if path.ends_with(".html") { "no-cache" } else { "public, max-age=300" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
