//! Plan count limits on creation (CONTRACT §6): past the plan's number of sources or
//! destinations, creation answers 403 `plan_limit`, before any other check of the request (a
//! tenant without room learns that first, not a validation error caused by its plan's zero
//! limits, and not after a DNS lookup of its URL).
//!
//! Two checks: [`precheck_count_limit`] is a cheap unlocked read that runs first, and
//! [`check_count_limit`] repeats it inside the creating transaction after locking the tenant's
//! row, so concurrent creations are serialised and cannot both slip under the limit.

use axum::http::StatusCode;
use relay_core::TenantId;
use relay_core::plan::Limits;
use relay_http::ApiError;
use relay_store::tenants::Tenant;
use relay_store::{PgPool, Postgres, Transaction};

use crate::extract::or_not_found;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Counted {
    Sources,
    Destinations,
}

/// Checks, without locking, that there is room for one more; returns the effective limits.
pub(crate) async fn precheck_count_limit(
    pool: &PgPool,
    tenant: TenantId,
    what: Counted,
) -> Result<Limits, ApiError> {
    let tenant =
        relay_store::tenants::get_tenant(pool, tenant).await.map_err(or_not_found("tenant_not_found"))?;
    let count = match what {
        Counted::Sources => relay_store::sources::count_sources(pool, tenant.id).await?,
        Counted::Destinations => relay_store::destinations::count_destinations(pool, tenant.id).await?,
    };
    room_for_one_more(&tenant, what, count)
}

/// Locks the tenant and checks there is room for one more; returns the effective limits.
pub(crate) async fn check_count_limit(
    tx: &mut Transaction<'static, Postgres>,
    tenant: TenantId,
    what: Counted,
) -> Result<Limits, ApiError> {
    let tenant = relay_store::tenants::lock_tenant(&mut **tx, tenant)
        .await
        .map_err(or_not_found("tenant_not_found"))?;
    let count = match what {
        Counted::Sources => relay_store::sources::count_sources(&mut **tx, tenant.id).await?,
        Counted::Destinations => relay_store::destinations::count_destinations(&mut **tx, tenant.id).await?,
    };
    room_for_one_more(&tenant, what, count)
}

/// The tenant's limits when `count` leaves room for one more; 403 `plan_limit` otherwise.
fn room_for_one_more(tenant: &Tenant, what: Counted, count: i64) -> Result<Limits, ApiError> {
    let limits = tenant.limits();
    let (allowed, noun) = match what {
        Counted::Sources => (limits.sources, "sources"),
        Counted::Destinations => (limits.destinations, "destinations"),
    };
    if count >= i64::from(allowed) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "plan_limit",
            format!("the {} plan allows {allowed} {noun}; this tenant has {count}", tenant.plan),
        ));
    }
    Ok(limits)
}
