//! The aggressor's receiver: one axum server on loopback whose path picks the behaviour —
//! `/ok/{i}` answers 204 at once, `/fail/{i}` answers 500, `/slow/{i}` answers 204 after 30 s.
//! It only counts requests (the victim's deliveries go to the exact receiver of `receiver.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};

/// How long a `/slow/` request is held: the longest `timeout_ms` a destination may have.
pub const SLOW: Duration = Duration::from_secs(30);

/// Requests seen, by behaviour.
#[derive(Default)]
pub struct Hits {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub slow_started: AtomicU64,
    pub slow_answered: AtomicU64,
}

impl Hits {
    pub fn get(counter: &AtomicU64) -> f64 {
        counter.load(Ordering::Relaxed) as f64
    }
}

async fn hook(State(hits): State<Arc<Hits>>, uri: Uri, _body: Bytes) -> StatusCode {
    let path = uri.path();
    if path.starts_with("/fail/") {
        hits.failed.fetch_add(1, Ordering::Relaxed);
        StatusCode::INTERNAL_SERVER_ERROR
    } else if path.starts_with("/slow/") {
        hits.slow_started.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(SLOW).await;
        hits.slow_answered.fetch_add(1, Ordering::Relaxed);
        StatusCode::NO_CONTENT
    } else {
        hits.ok.fetch_add(1, Ordering::Relaxed);
        StatusCode::NO_CONTENT
    }
}

/// Starts the sink; returns its counters and base URL (`http://127.0.0.1:PORT`).
pub async fn start() -> anyhow::Result<(Arc<Hits>, String)> {
    let hits = Arc::new(Hits::default());
    let app = axum::Router::new().fallback(hook).with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((hits, base))
}
