//! The retention sweeper: every `interval`, each tenant's rows older than its plan's retention
//! (or its override) are purged through `relay_store::retention`. Any number of processes may
//! sweep at once: deletes of the same rows simply find nothing left.

use std::future::Future;
use std::time::Duration;

use relay_store::{PgPool, retention, tenants};
use time::OffsetDateTime;

const TENANTS_PER_PAGE: i64 = 500;
const ROWS_PER_BATCH: i64 = 5_000;

/// Sweeps until `shutdown` completes.
pub async fn run(pool: PgPool, interval: Duration, shutdown: impl Future<Output = ()> + Send) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
        match sweep(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "retention purged old rows"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; it runs again later"),
        }
    }
}

/// One pass over every tenant; returns the rows deleted.
pub async fn sweep(pool: &PgPool) -> Result<u64, relay_store::StoreError> {
    let now = OffsetDateTime::now_utc();
    let mut total = 0;
    let mut after = None;
    loop {
        let page = tenants::list_tenants(pool, after, TENANTS_PER_PAGE).await?;
        for tenant in &page {
            let days = i64::from(tenant.limits().retention_days);
            let cutoff = now - time::Duration::days(days);
            total += retention::purge_tenant(pool, tenant.id, cutoff, ROWS_PER_BATCH).await?.total();
        }
        match page.last() {
            Some(last) if page.len() as i64 == TENANTS_PER_PAGE => after = Some(last.id),
            _ => return Ok(total),
        }
    }
}
