//! A per-process cache of ingest sources (each with its tenant's plan, limits and status), so an
//! accepted event costs no lookup query. Entries are dropped as soon as the source or its tenant
//! changes anywhere in the fleet: triggers announce every change on
//! `relay_store::sources::CONFIG_CHANNEL`, and this process LISTENs.
//!
//! Invariants: nothing is cached while the LISTEN is not in place (changes could be missed), and
//! everything is dropped when it is lost. A lookup that raced with a change is not cached (a
//! generation counter moves on every change), so a stale row never outlives its notification.
//! Unknown sources are never cached. Entries also expire after `ttl`, as a last resort.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_core::SourceId;
use relay_store::PgListener;
use relay_store::sources::{self, CONFIG_CHANNEL, IngestSource};
use relay_store::{PgPool, StoreError};
use uuid::Uuid;

const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 100_000;

pub struct SourceCache {
    ttl: Duration,
    entries: Mutex<HashMap<SourceId, (Instant, Arc<IngestSource>)>>,
    generation: AtomicU64,
    listening: AtomicBool,
}

impl SourceCache {
    /// A cache that stays empty until [`SourceCache::watch`] has its LISTEN in place.
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        })
    }

    pub async fn get(&self, pool: &PgPool, id: SourceId) -> Result<Option<Arc<IngestSource>>, StoreError> {
        if self.listening.load(Ordering::Acquire) {
            let entries = self.entries.lock().expect("source cache lock");
            if let Some((at, found)) = entries.get(&id)
                && at.elapsed() < self.ttl
            {
                return Ok(Some(found.clone()));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(found) = sources::find_ingest_source(pool, id).await?.map(Arc::new) else {
            return Ok(None);
        };
        let mut entries = self.entries.lock().expect("source cache lock");
        if self.listening.load(Ordering::Acquire) && self.generation.load(Ordering::Acquire) == generation {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(id, (Instant::now(), found.clone()));
        }
        Ok(Some(found))
    }

    fn forget(&self, announcement: &str) {
        let mut entries = self.entries.lock().expect("source cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        let parsed =
            announcement.split_once(':').and_then(|(kind, id)| Some((kind, id.parse::<Uuid>().ok()?)));
        match parsed {
            Some(("source", id)) => {
                entries.remove(&SourceId::from_uuid(id));
            }
            Some(("tenant", id)) => entries.retain(|_, (_, found)| found.source.tenant_id != id),
            _ => entries.clear(),
        }
    }

    fn set_listening(&self, on: bool) {
        let mut entries = self.entries.lock().expect("source cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.listening.store(on, Ordering::Release);
    }

    /// Keeps the LISTEN in place for as long as the process runs, reconnecting as needed.
    pub async fn watch(self: Arc<Self>, pool: PgPool) {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener.listen(CONFIG_CHANNEL).await {
                    Ok(()) => {
                        self.set_listening(true);
                        // try_recv, not recv: recv would reconnect silently and hide the
                        // notifications missed meanwhile.
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(n)) => self.forget(n.payload()),
                                Ok(None) => {
                                    tracing::warn!("source cache lost its LISTEN; not caching meanwhile");
                                    break;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "source cache lost its LISTEN; not caching meanwhile");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "source cache cannot LISTEN; not caching meanwhile"),
                },
                Err(e) => tracing::debug!(error = %e, "source cache cannot connect; not caching meanwhile"),
            }
            self.set_listening(false);
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
}
