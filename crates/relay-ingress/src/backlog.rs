//! A per-process cache of each tenant's backlog (pending deliveries), counted at most once per
//! refresh interval and only up to the plan's cap. The cap is a protection limit: it holds
//! within about one refresh interval of ingest, which is what keeps a broken destination from
//! growing a tenant's queue without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use relay_core::TenantId;
use relay_store::{PgPool, StoreError, deliveries};

pub struct BacklogCache {
    refresh: Duration,
    counts: Mutex<HashMap<TenantId, (Instant, i64)>>,
}

impl BacklogCache {
    pub fn new(refresh: Duration) -> Self {
        Self { refresh, counts: Mutex::new(HashMap::new()) }
    }

    /// Whether the tenant's backlog has reached `cap`.
    pub async fn is_full(&self, pool: &PgPool, tenant: TenantId, cap: u64) -> Result<bool, StoreError> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let cached = self.counts.lock().expect("backlog cache lock").get(&tenant).copied();
        let count = match cached {
            Some((at, count)) if at.elapsed() < self.refresh => count,
            _ => {
                let count = deliveries::count_backlog(pool, tenant, cap).await?;
                let mut counts = self.counts.lock().expect("backlog cache lock");
                if counts.len() > 100_000 {
                    counts.clear();
                }
                counts.insert(tenant, (Instant::now(), count));
                count
            }
        };
        Ok(count >= cap)
    }
}
