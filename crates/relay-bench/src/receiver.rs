//! The built-in fast receiver: one axum server on loopback standing in for every destination of
//! a run. A destination's URL names its tenant and index (`/r/{tenant}/{index}`, `/p/0` for the
//! prefilled backlog); `X-Wap-Event-Id` names the event. Each (event, destination) pair has one
//! slot holding its first arrival time, so lost and duplicate deliveries are exact and recording
//! an arrival is one atomic operation (the receiver must stay cheap: it shares the machine).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

/// Arrival slots and counters of one run.
pub struct Arrivals {
    pub epoch: Instant,
    /// Destinations per tenant.
    pub per_event: usize,
    pub tenants: usize,
    /// `slot(g, d)` = nanoseconds after `epoch` + 1 of the first arrival; 0 = not yet.
    fresh: Vec<AtomicU64>,
    prefill: Vec<AtomicU64>,
    pub arrived: AtomicU64,
    pub duplicates: AtomicU64,
    /// Requests the receiver could not place (unknown path or event id, out of range).
    pub strays: AtomicU64,
}

fn slots(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Arrivals {
    pub fn new(epoch: Instant, events: usize, tenants: usize, per_event: usize, prefill: usize) -> Self {
        Self {
            epoch,
            per_event,
            tenants,
            fresh: slots(events * per_event),
            prefill: slots(prefill),
            arrived: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            strays: AtomicU64::new(0),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// First arrival of event `g` at destination `d`, in ns after the epoch.
    pub fn fresh_at(&self, g: usize, d: usize) -> Option<u64> {
        let v = self.fresh[g * self.per_event + d].load(Ordering::Relaxed);
        (v > 0).then(|| v - 1)
    }

    pub fn prefill_times(&self) -> impl Iterator<Item = Option<u64>> + '_ {
        self.prefill.iter().map(|s| {
            let v = s.load(Ordering::Relaxed);
            (v > 0).then(|| v - 1)
        })
    }

    fn record(&self, slot: Option<&AtomicU64>) {
        let Some(slot) = slot else {
            self.strays.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match slot.compare_exchange(0, self.now_ns(), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                self.arrived.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn place(&self, path: &str, event_id: &str) -> Option<&AtomicU64> {
        let mut parts = path.trim_start_matches('/').split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("r"), Some(t), Some(d)) => {
                let (t, d): (usize, usize) = (t.parse().ok()?, d.parse().ok()?);
                let g: usize = event_id.strip_prefix('e')?.parse().ok()?;
                if d >= self.per_event || g % self.tenants.max(1) != t {
                    return None;
                }
                self.fresh.get(g * self.per_event + d)
            }
            (Some("p"), Some(_), None) => {
                self.prefill.get(event_id.strip_prefix('p')?.parse::<usize>().ok()?)
            }
            _ => None,
        }
    }
}

async fn hook(State(a): State<Arc<Arrivals>>, uri: Uri, headers: HeaderMap, _body: Bytes) -> StatusCode {
    let id = headers.get("x-wap-event-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    a.record(a.place(uri.path(), id));
    StatusCode::NO_CONTENT
}

/// Starts the receiver; returns its base URL (`http://127.0.0.1:PORT`).
pub async fn start(arrivals: Arc<Arrivals>) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(hook).with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}
