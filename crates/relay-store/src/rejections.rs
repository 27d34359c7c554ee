//! The `rejections` table: every refused ingest request with a known source, so a tenant can see
//! why WAPing's deliveries fail. Headers arrive already stripped of credentials; bodies are cut
//! to their first 4 KiB.

use relay_core::{RejectionId, SourceId, TenantId};
use sqlx::PgExecutor;
use sqlx::types::Json;
use std::collections::BTreeMap;

use crate::error::Result;

pub const BODY_PREFIX_BYTES: usize = 4096;

#[derive(Debug, Clone)]
pub struct NewRejection<'a> {
    pub tenant_id: TenantId,
    pub source_id: SourceId,
    pub reason: &'a str,
    pub status: u16,
    pub detail: Option<&'a str>,
    pub headers: BTreeMap<String, String>,
    /// The body, or its first bytes (at most the first 4 KiB are stored).
    pub body: &'a [u8],
    /// The body's full length, when more than `body` (declared by `Content-Length`).
    pub body_bytes: usize,
}

/// Records `r` under `id`.
pub async fn insert_rejection(db: impl PgExecutor<'_>, id: RejectionId, r: &NewRejection<'_>) -> Result<()> {
    let prefix = &r.body[..r.body.len().min(BODY_PREFIX_BYTES)];
    sqlx::query(
        "INSERT INTO rejections (id, tenant_id, source_id, reason, status, detail, headers, body, body_bytes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.uuid())
    .bind(r.tenant_id.uuid())
    .bind(r.source_id.uuid())
    .bind(r.reason)
    .bind(i32::from(r.status))
    .bind(r.detail)
    .bind(Json(&r.headers))
    .bind(prefix)
    .bind(i32::try_from(r.body_bytes.max(r.body.len())).unwrap_or(i32::MAX))
    .execute(db)
    .await?;
    Ok(())
}

/// Adds refusals counted but not recorded in full to the rejections they followed.
pub async fn add_repeats(db: impl PgExecutor<'_>, repeats: &[(RejectionId, i64)]) -> Result<()> {
    let ids: Vec<uuid::Uuid> = repeats.iter().map(|(id, _)| id.uuid()).collect();
    let counts: Vec<i64> = repeats.iter().map(|(_, n)| *n).collect();
    sqlx::query(
        "UPDATE rejections r SET repeats = r.repeats + t.n \
         FROM unnest($1::uuid[], $2::bigint[]) AS t(id, n) WHERE r.id = t.id",
    )
    .bind(&ids)
    .bind(&counts)
    .execute(db)
    .await?;
    Ok(())
}

/// A refused ingest request, as the admin API lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RejectionRow {
    pub id: uuid::Uuid,
    pub tenant_id: uuid::Uuid,
    pub source_id: uuid::Uuid,
    pub received_at: time::OffsetDateTime,
    pub reason: String,
    pub status: i32,
    pub detail: Option<String>,
    pub headers: Json<BTreeMap<String, String>>,
    pub body: Vec<u8>,
    pub body_bytes: i32,
    pub repeats: i64,
}

/// Filters of the rejection log; `range` applies to `received_at`.
#[derive(Debug, Clone, Default)]
pub struct RejectionFilter {
    pub source_id: Option<SourceId>,
    pub reason: Option<String>,
    pub range: crate::keyset::TimeRange,
}

/// The tenant's rejections, newest first, after `before` (a keyset cursor) when given.
pub async fn list_rejections(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    filter: &RejectionFilter,
    before: Option<RejectionId>,
    limit: i64,
) -> Result<Vec<RejectionRow>> {
    let mut q = sqlx::QueryBuilder::new(
        "SELECT id, tenant_id, source_id, received_at, reason, status, detail, headers, body, body_bytes, \
         repeats FROM rejections WHERE ",
    );
    let scan = crate::keyset::Scan::ByTenant;
    crate::keyset::push_tenant(&mut q, tenant.uuid(), scan);
    if let Some(source) = filter.source_id {
        q.push(" AND source_id = ").push_bind(source.uuid());
    }
    if let Some(reason) = &filter.reason {
        q.push(" AND reason = ").push_bind(reason.clone());
    }
    crate::keyset::push_range(&mut q, before.map(RejectionId::uuid), "received_at", filter.range);
    crate::keyset::push_page_end(&mut q, limit, scan);
    Ok(q.build_query_as().fetch_all(db).await?)
}
