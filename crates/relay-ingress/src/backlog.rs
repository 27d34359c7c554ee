//! The backlog cap (CONTRACT §3: 429 `backlog_full` once a tenant's undelivered deliveries reach
//! its plan's cap), held exactly within a process and to within one refresh across a fleet.
//!
//! Each tenant's backlog is counted in Postgres (up to the cap), then kept current in memory:
//! what this process stores is added as soon as it is stored, and what requests in progress
//! would add is reserved before they are let through, so concurrent requests cannot all pass on
//! the same count. One background task counts every recently active tenant in one statement
//! each refresh interval (stretched when counting is slow, a backlog of millions), which brings
//! in what other processes stored and what was delivered.
//!
//! Invariant: no state a request leaves behind depends on it finishing: a request dropped half
//! way (client gone, timeout) releases its reservation on drop, and nothing it started can keep
//! the counts from being refreshed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_core::TenantId;
use relay_store::{PgPool, StoreError, deliveries};

/// A tenant not seen for this long is no longer counted.
const FORGET_AFTER: Duration = Duration::from_secs(60);

struct Entry {
    cap: i64,
    /// The last count from Postgres, and what this process stored since it was taken.
    counted: i64,
    added: i64,
    /// What requests in progress would add.
    reserved: i64,
    seen_at: Instant,
}

#[derive(Default)]
struct State {
    entries: HashMap<TenantId, Entry>,
}

pub struct BacklogCache {
    state: Mutex<State>,
}

/// A request's place under the cap; its reservation ends when it is dropped.
pub struct Admission {
    cache: Arc<BacklogCache>,
    tenant: TenantId,
    reserved: i64,
}

impl Admission {
    /// The request stored `n` deliveries: they count from now until the next refresh sees them.
    pub fn stored(self, n: usize) {
        let mut state = self.cache.lock();
        if let Some(e) = state.entries.get_mut(&self.tenant) {
            e.added += n as i64;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        if let Some(e) = state.entries.get_mut(&self.tenant) {
            e.reserved -= self.reserved;
        }
    }
}

impl BacklogCache {
    /// A cache whose counts are refreshed every `refresh` by a task on the current runtime.
    pub fn start(pool: PgPool, refresh: Duration) -> Arc<Self> {
        let cache = Arc::new(Self { state: Mutex::default() });
        tokio::spawn(refresh_forever(Arc::downgrade(&cache), pool, refresh));
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets a request that would add `n` deliveries through while the tenant's backlog stays
    /// within `cap`; `None` when it is full.
    pub async fn admit(
        self: &Arc<Self>,
        pool: &PgPool,
        tenant: TenantId,
        cap: u64,
        n: usize,
    ) -> Result<Option<Admission>, StoreError> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let known = self.lock().entries.contains_key(&tenant);
        if !known {
            // First sight of the tenant: count now (concurrent first requests each count; the
            // last count wins, and the refresh corrects it within an interval).
            let counted = deliveries::count_backlog(pool, tenant, cap).await?;
            let mut state = self.lock();
            let entry = state.entries.entry(tenant).or_insert(Entry {
                cap,
                counted,
                added: 0,
                reserved: 0,
                seen_at: Instant::now(),
            });
            entry.counted = counted;
        }
        let mut state = self.lock();
        let Some(entry) = state.entries.get_mut(&tenant) else { return Ok(None) };
        entry.cap = cap;
        entry.seen_at = Instant::now();
        let n = n as i64;
        if entry.counted + entry.added + entry.reserved + n.max(1) > cap {
            return Ok(None);
        }
        entry.reserved += n;
        Ok(Some(Admission { cache: self.clone(), tenant, reserved: n }))
    }
}

/// Counts every tenant seen recently, in one statement, every `refresh` (or ten times the cost of
/// the last count, when that is longer), until the cache is gone.
async fn refresh_forever(cache: std::sync::Weak<BacklogCache>, pool: PgPool, refresh: Duration) {
    let mut pause = refresh;
    loop {
        tokio::time::sleep(pause.max(Duration::from_millis(10))).await;
        let Some(cache) = cache.upgrade() else { return };
        let wanted: Vec<(TenantId, i64, i64)> = {
            let mut state = cache.lock();
            state.entries.retain(|_, e| e.seen_at.elapsed() < FORGET_AFTER || e.reserved > 0);
            state.entries.iter().map(|(t, e)| (*t, e.cap, e.added)).collect()
        };
        if wanted.is_empty() {
            pause = refresh;
            continue;
        }
        let started = Instant::now();
        let caps: Vec<(TenantId, i64)> = wanted.iter().map(|(t, cap, _)| (*t, *cap)).collect();
        match deliveries::count_backlogs(&pool, &caps).await {
            Ok(counts) => {
                let mut state = cache.lock();
                for ((tenant, _, added_before), counted) in wanted.iter().zip(counts) {
                    if let Some(e) = state.entries.get_mut(tenant) {
                        // What was added before the count is in it; what came after is not.
                        e.counted = counted;
                        e.added -= added_before;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "counting backlogs failed; using the last counts"),
        }
        pause = refresh.max(started.elapsed() * 10);
    }
}
