//! The backlog cap (CONTRACT §3: 429 `backlog_full` once a tenant's undelivered deliveries reach
//! its plan's cap), held exactly within a process and to within one refresh across a fleet.
//!
//! Each tenant's backlog is counted in Postgres (up to the cap), then kept current in memory:
//! what this process stores is added as soon as it is stored, and what requests in progress
//! would add is reserved before they are let through, so concurrent requests cannot all pass on
//! the same count. One background task counts every recently active tenant in one statement
//! each refresh interval (stretched when counting is slow, a backlog of millions), which brings
//! in what other processes stored and what was delivered. A count comes with its Postgres
//! snapshot, and each addition with the transaction that stored it: an addition the count saw
//! is dropped, one it did not see is kept, whichever finishes first, so a commit racing a count
//! is counted exactly once.
//!
//! Invariant: no state a request leaves behind depends on it finishing: a request dropped half
//! way (client gone, timeout) releases its reservation on drop, and nothing it started can keep
//! the counts from being refreshed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_core::TenantId;
use relay_store::deliveries::{self, Snapshot};
use relay_store::{PgPool, StoreError};

/// A tenant not seen for this long is no longer counted.
const FORGET_AFTER: Duration = Duration::from_secs(60);

struct Entry {
    cap: i64,
    /// The last count from Postgres and its snapshot, and what this process stored that the
    /// count did not see (by storing transaction), so nothing is counted twice or missed.
    counted: i64,
    snapshot: Snapshot,
    added: Vec<(i64, i64)>,
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

impl Entry {
    fn total(&self) -> i64 {
        self.counted + self.added.iter().map(|(_, n)| n).sum::<i64>() + self.reserved
    }

    /// A new count: what it saw of this process's additions leaves `added`.
    fn recount(&mut self, counted: i64, snapshot: Snapshot) {
        self.counted = counted;
        self.added.retain(|(xact, _)| !snapshot.sees(*xact));
        self.snapshot = snapshot;
    }
}

impl Admission {
    /// The request stored `n` deliveries in transaction `xact`: they count from now, unless the
    /// last count already saw them.
    pub fn stored(self, n: usize, xact: Option<i64>) {
        let mut state = self.cache.lock();
        if let (Some(e), Some(xact)) = (state.entries.get_mut(&self.tenant), xact)
            && n > 0
            && !e.snapshot.sees(xact)
        {
            e.added.push((xact, n as i64));
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
            let (counts, snapshot) = deliveries::count_backlogs(pool, &[(tenant, cap)]).await?;
            let counted = counts.first().copied().unwrap_or(0);
            let mut state = self.lock();
            let entry = state.entries.entry(tenant).or_insert(Entry {
                cap,
                counted,
                snapshot: snapshot.clone(),
                added: Vec::new(),
                reserved: 0,
                seen_at: Instant::now(),
            });
            entry.recount(counted, snapshot);
        }
        let mut state = self.lock();
        let Some(entry) = state.entries.get_mut(&tenant) else { return Ok(None) };
        entry.cap = cap;
        entry.seen_at = Instant::now();
        let n = n as i64;
        if entry.total() + n.max(1) > cap {
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
        let wanted: Vec<(TenantId, i64)> = {
            let mut state = cache.lock();
            state.entries.retain(|_, e| e.seen_at.elapsed() < FORGET_AFTER || e.reserved > 0);
            state.entries.iter().map(|(t, e)| (*t, e.cap)).collect()
        };
        if wanted.is_empty() {
            pause = refresh;
            continue;
        }
        let started = Instant::now();
        match deliveries::count_backlogs(&pool, &wanted).await {
            Ok((counts, snapshot)) => {
                let mut state = cache.lock();
                for ((tenant, _), counted) in wanted.iter().zip(counts) {
                    if let Some(e) = state.entries.get_mut(tenant) {
                        e.recount(counted, snapshot.clone());
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "counting backlogs failed; using the last counts"),
        }
        pause = refresh.max(started.elapsed() * 10);
    }
}
