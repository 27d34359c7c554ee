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
    pub body: &'a [u8],
}

pub async fn insert_rejection(db: impl PgExecutor<'_>, r: &NewRejection<'_>) -> Result<RejectionId> {
    let id = RejectionId::new();
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
    .bind(i32::try_from(r.body.len()).unwrap_or(i32::MAX))
    .execute(db)
    .await?;
    Ok(id)
}
