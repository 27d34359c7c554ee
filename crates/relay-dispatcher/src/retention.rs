//! The retention sweeper: every `interval`, each tenant's rows older than its plan's retention
//! (or its override) are purged through `relay_store::retention`. One process of the fleet sweeps
//! at a time (an advisory lock); the others skip that round.

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

/// One pass over every tenant, unless another process is sweeping; returns the rows deleted.
/// A retention of 0 days (the `free` plan has none) purges nothing: a downgraded tenant's
/// history is not wiped.
pub async fn sweep(pool: &PgPool) -> Result<u64, relay_store::StoreError> {
    let swept = retention::with_sweep_lock(pool, async |conn| {
        let now = OffsetDateTime::now_utc();
        let mut total = 0;
        let mut after = None;
        loop {
            let page = tenants::list_tenants(&mut *conn, after, TENANTS_PER_PAGE).await?;
            for tenant in page.iter().filter(|t| t.limits().retention_days > 0) {
                // A retention reaching before the calendar's start keeps everything.
                let Some(cutoff) =
                    now.checked_sub(time::Duration::days(i64::from(tenant.limits().retention_days)))
                else {
                    continue;
                };
                total += retention::purge_tenant(conn, tenant.id, cutoff, ROWS_PER_BATCH).await?.total();
            }
            match page.last() {
                Some(last) if page.len() as i64 == TENANTS_PER_PAGE => after = Some(last.id),
                _ => return Ok(total),
            }
        }
    })
    .await?;
    Ok(swept.unwrap_or(0))
}
