//! Manual work (test events, redelivery, replay) is bounded like ingest (CONTRACT §10): each
//! request first passes the tenant's admin rate limit for manual work, a GCRA in Redis shared by
//! the fleet ([`MANUAL_PER_SECOND`], burst [`MANUAL_BURST`]; past it 429 `rate_limited` with
//! `Retry-After`), and what it queues counts against the tenant's backlog cap by ingest's own
//! rule: the deliveries in the queue, counted by `relay_store::deliveries::count_backlogs`.
//!
//! A request does its work in its transaction, under the tenant's backlog lock, then counts the
//! backlog in that transaction (so the count includes what it just queued): past the cap, the
//! transaction is rolled back and the request answers 429 `backlog_full` with `Retry-After`, so
//! nothing of it is queued (a replay that would pass the cap is refused whole: narrow its range
//! or wait for the backlog to drain).

use std::sync::Arc;

use axum::http::StatusCode;
use relay_core::TenantId;
use relay_http::ApiError;
use relay_store::deliveries::{count_backlogs, lock_backlog};
use relay_store::ingest_limit::IngestLimiter;
use relay_store::{Postgres, Redis, Transaction};

use crate::AdminState;

/// Manual requests per second per tenant, across the fleet. A person clicks through redeliveries
/// and test events a few a second at most, and bulk recovery is one replay request; each request
/// counts the tenant's backlog up to its cap (up to millions of index entries on the largest
/// plans), so two a second bounds that work per tenant.
pub const MANUAL_PER_SECOND: u32 = 2;
/// Requests a tenant may make at once before the rate applies: a page of failed deliveries
/// redelivered one by one.
pub const MANUAL_BURST: u32 = 20;

/// The limiter of manual work, shared by the fleet through Redis.
pub fn limiter(redis: Redis) -> Arc<IngestLimiter> {
    Arc::new(IngestLimiter::named(redis, "manual"))
}

/// Counts one manual request of `tenant`: 429 `rate_limited` past its rate.
pub(crate) async fn admit(state: &AdminState, tenant: TenantId) -> Result<(), ApiError> {
    state.manual_limit.admit(tenant, MANUAL_PER_SECOND, MANUAL_BURST).await.map_err(|wait| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "at most {MANUAL_PER_SECOND} test events, redeliveries and replays per second \
                 (burst {MANUAL_BURST}); retry later"
            ),
        )
        .with_retry_after(wait.as_secs_f64().ceil().max(1.0) as u64)
    })
}

/// A transaction for manual work of `tenant`, holding its backlog lock; the work then ends with
/// [`commit_within_cap`].
pub(crate) async fn begin(
    state: &AdminState,
    tenant: TenantId,
) -> Result<Transaction<'static, Postgres>, ApiError> {
    let mut tx = crate::db::begin(&state.pool).await?;
    lock_backlog(&mut *tx, tenant).await?;
    Ok(tx)
}

/// Commits the work when the tenant's backlog, with it, is within the plan's cap; otherwise rolls
/// it back (on drop) and answers 429 `backlog_full`.
pub(crate) async fn commit_within_cap(
    mut tx: Transaction<'static, Postgres>,
    tenant: TenantId,
) -> Result<(), ApiError> {
    let cap = relay_store::tenants::get_tenant(&mut *tx, tenant).await?.limits().backlog;
    let cap = i64::try_from(cap).unwrap_or(i64::MAX - 1);
    let (counts, _) = count_backlogs(&mut *tx, &[(tenant, cap + 1)]).await?;
    if counts.first().copied().unwrap_or(0) > cap {
        return Err(ApiError::backlog_full());
    }
    crate::db::commit(tx).await
}
