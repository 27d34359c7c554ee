//! The retention sweeper: every `interval`, the history slices past their retention are dropped
//! (`relay_store::partitions`), the slices each retention in use needs next are created, and
//! each tenant's rows that no slice drop takes away, older than its plan's retention (or its
//! override), are purged through `relay_store::retention`. One process of the fleet sweeps at a
//! time (an advisory lock); the others skip that round.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use relay_store::{PgPool, partitions, retention, tenants};
use time::OffsetDateTime;

const TENANTS_PER_PAGE: i64 = 500;
const ROWS_PER_BATCH: i64 = 5_000;
/// The sweeper keeps every class in use covered this far ahead (ingest creates what it lacks).
const AHEAD: time::Duration = time::Duration::days(3);

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

/// One pass, unless another process is sweeping; returns the tables dropped and rows deleted.
/// A retention of 0 days (the `free` plan has none) purges nothing: a downgraded tenant's
/// history is not wiped.
pub async fn sweep(pool: &PgPool) -> Result<u64, relay_store::StoreError> {
    let swept = retention::with_sweep_lock(pool, async |conn| {
        let dropped = partitions::drop_expired(conn).await?;
        if dropped.slices > 0 {
            tracing::info!(
                slices = dropped.slices,
                rescued = dropped.rescued,
                keys = dropped.keys,
                "retention dropped history partitions"
            );
        }
        let now = OffsetDateTime::now_utc();
        let mut total = dropped.slices;
        let mut classes = BTreeSet::new();
        let mut after = None;
        loop {
            let page = tenants::list_tenants(&mut *conn, after, TENANTS_PER_PAGE).await?;
            for tenant in page.iter().filter(|t| t.limits().retention_days > 0) {
                let days = tenant.limits().retention_days;
                classes.insert(partitions::keep_days(days));
                // A retention reaching before the calendar's start keeps everything.
                let Some(cutoff) = now.checked_sub(time::Duration::days(i64::from(days))) else {
                    continue;
                };
                total +=
                    retention::purge_tenant(conn, tenant.id, cutoff, days, ROWS_PER_BATCH).await?.total();
            }
            match page.last() {
                Some(last) if page.len() as i64 == TENANTS_PER_PAGE => after = Some(last.id),
                _ => break,
            }
        }
        for keep in classes {
            partitions::ensure(&mut *conn, keep, now - time::Duration::days(1), now + AHEAD).await?;
        }
        Ok(total)
    })
    .await?;
    Ok(swept.unwrap_or(0))
}
