//! A per-process cache of each tenant's backlog (pending deliveries), counted only up to the
//! plan's cap. The cap is a protection limit, so a slightly stale count is fine: it holds to
//! within about one refresh interval of ingest.
//!
//! Invariant: at most one count per tenant is in flight in this process; concurrent requests
//! use the last known count meanwhile. A count that takes long (a backlog of millions) is
//! repeated less often: never more than a tenth of the time is spent counting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use relay_core::TenantId;
use relay_store::{PgPool, StoreError, deliveries};

struct Entry {
    count: i64,
    counted_at: Option<Instant>,
    cost: Duration,
    refreshing: bool,
}

pub struct BacklogCache {
    refresh: Duration,
    entries: Mutex<HashMap<TenantId, Entry>>,
}

enum Step {
    Known(i64),
    Count,
}

impl BacklogCache {
    pub fn new(refresh: Duration) -> Self {
        Self { refresh, entries: Mutex::new(HashMap::new()) }
    }

    /// Whether the tenant's backlog has reached `cap`.
    pub async fn is_full(&self, pool: &PgPool, tenant: TenantId, cap: u64) -> Result<bool, StoreError> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let count = match self.next_step(tenant) {
            Step::Known(count) => count,
            Step::Count => {
                let started = Instant::now();
                let counted = deliveries::count_backlog(pool, tenant, cap).await;
                self.finish(tenant, counted.as_ref().ok().copied(), started.elapsed());
                counted?
            }
        };
        Ok(count >= cap)
    }

    fn next_step(&self, tenant: TenantId) -> Step {
        let mut entries = self.entries.lock().expect("backlog cache lock");
        if entries.len() > 100_000 {
            entries.retain(|_, e| e.refreshing);
        }
        let entry = entries.entry(tenant).or_insert(Entry {
            count: 0,
            counted_at: None,
            cost: Duration::ZERO,
            refreshing: false,
        });
        // Only a slow count (a huge backlog) stretches the interval.
        let max_age = if entry.cost > Duration::from_millis(50) {
            self.refresh.max(entry.cost * 10)
        } else {
            self.refresh
        };
        let fresh = entry.counted_at.is_some_and(|at| at.elapsed() < max_age);
        if fresh || (entry.refreshing && entry.counted_at.is_some()) {
            return Step::Known(entry.count);
        }
        entry.refreshing = true;
        Step::Count
    }

    fn finish(&self, tenant: TenantId, count: Option<i64>, cost: Duration) {
        let mut entries = self.entries.lock().expect("backlog cache lock");
        if let Some(entry) = entries.get_mut(&tenant) {
            entry.refreshing = false;
            if let Some(count) = count {
                entry.count = count;
                entry.counted_at = Some(Instant::now());
                entry.cost = cost;
            }
        }
    }
}
