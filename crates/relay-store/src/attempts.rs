//! The `attempts` table: one HTTP attempt of a delivery, with its outcome and the first bytes of
//! the response. The dispatcher writes it; this module also holds the admin API's reads, always
//! filtered by tenant and paged newest first on an index.

use relay_core::{AttemptId, DeliveryId, DestinationId, TenantId};
use sqlx::PgExecutor;
use sqlx::types::Json;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;

/// An attempt as the admin API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub delivery_id: Uuid,
    pub destination_id: Uuid,
    pub number: i32,
    #[sqlx(try_from = "String")]
    pub trigger: relay_core::vocab::Trigger,
    pub started_at: OffsetDateTime,
    pub duration_ms: i32,
    pub url: String,
    #[sqlx(try_from = "String")]
    pub outcome: relay_core::vocab::AttemptOutcome,
    pub status_code: Option<i32>,
    pub response_headers: Option<Json<BTreeMap<String, String>>>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
}

const ATTEMPT_COLUMNS: &str = "id, tenant_id, delivery_id, destination_id, number, trigger, started_at, \
     duration_ms, url, outcome, status_code, response_headers, response_body, error, next_attempt_at";

/// Filters of the attempt log.
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    pub delivery_id: Option<DeliveryId>,
    pub destination_id: Option<DestinationId>,
    pub outcome: Option<String>,
}

/// The tenant's attempts, newest first, after `before` (a keyset cursor) when given. Served by
/// `attempts_tenant`, `attempts_destination` or `attempts_delivery`, whichever the filter fits.
pub async fn list_attempts(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    filter: &AttemptFilter,
    before: Option<AttemptId>,
    limit: i64,
) -> Result<Vec<AttemptRow>> {
    // `attempts_tenant` and `attempts_destination` both lead with the tenant; a delivery has
    // `attempts_delivery`.
    let scan = if filter.delivery_id.is_some() {
        crate::keyset::Scan::ByFilter
    } else {
        crate::keyset::Scan::ByTenant
    };
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE "));
    crate::keyset::push_tenant(&mut q, tenant.uuid(), scan);
    if let Some(d) = filter.delivery_id {
        q.push(" AND delivery_id = ").push_bind(d.uuid());
    }
    if let Some(d) = filter.destination_id {
        q.push(" AND destination_id = ").push_bind(d.uuid());
    }
    if let Some(o) = &filter.outcome {
        q.push(" AND outcome = ").push_bind(o.clone());
    }
    crate::keyset::push_range(&mut q, before.map(AttemptId::uuid), "started_at", Default::default());
    crate::keyset::push_page_end(&mut q, limit, scan);
    Ok(q.build_query_as().fetch_all(db).await?)
}
