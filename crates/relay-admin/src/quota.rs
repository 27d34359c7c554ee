//! Plan count limits on creation (CONTRACT §6): past the plan's number of sources or
//! destinations, creation answers 403 `plan_limit`. The check locks the tenant's row first, so
//! concurrent creations are serialised and cannot both slip under the limit.

use axum::http::StatusCode;
use relay_core::TenantId;
use relay_http::ApiError;
use relay_store::{Postgres, Transaction};

use crate::extract::or_not_found;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Counted {
    Sources,
    Destinations,
}

/// Locks the tenant and checks there is room for one more; returns the effective limits.
pub(crate) async fn check_count_limit(
    tx: &mut Transaction<'static, Postgres>,
    tenant: TenantId,
    what: Counted,
) -> Result<relay_core::plan::Limits, ApiError> {
    let tenant = relay_store::tenants::lock_tenant(&mut **tx, tenant)
        .await
        .map_err(or_not_found("tenant_not_found"))?;
    let limits = tenant.limits();
    let (count, allowed, noun) = match what {
        Counted::Sources => {
            (relay_store::sources::count_sources(&mut **tx, tenant.id).await?, limits.sources, "sources")
        }
        Counted::Destinations => (
            relay_store::destinations::count_destinations(&mut **tx, tenant.id).await?,
            limits.destinations,
            "destinations",
        ),
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
