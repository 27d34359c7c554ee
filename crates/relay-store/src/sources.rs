//! The `sources` table: one WAPing account's ingest endpoint. Secrets arrive here already sealed
//! by the caller's master key; this module never sees them in clear.

use relay_core::verify::Verification;
use relay_core::{SourceId, TenantId};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Result, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct SourceRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub verification: Json<Verification>,
    pub secret: Option<Vec<u8>>,
    pub secret_hint: Option<String>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub verify_token: Option<Vec<u8>>,
    /// JSON pointers whose values identify an event instead of its eventId (none: the eventId).
    pub dedupe_key: Option<Vec<String>>,
    /// Seconds without events after which the source, and each device seen on it, is reported
    /// silent (none: no silence alerts).
    pub silence_alert_seconds: Option<i32>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
}

impl SourceRow {
    pub fn source_id(&self) -> SourceId {
        SourceId::from_uuid(self.id)
    }

    pub fn tenant(&self) -> TenantId {
        TenantId::from_uuid(self.tenant_id)
    }

    /// The sealed previous secret, while its grace period lasts.
    pub fn previous_secret_at(&self, now: OffsetDateTime) -> Option<&[u8]> {
        match (&self.previous_secret, self.previous_secret_expires_at) {
            (Some(sealed), Some(expires)) if expires > now => Some(sealed),
            _ => None,
        }
    }
}

pub const SOURCE_COLUMNS: &str = "id, tenant_id, name, verification, secret, secret_hint, previous_secret, \
     previous_secret_expires_at, verify_token, dedupe_key, silence_alert_seconds, created_at, updated_at, deleted_at";

#[derive(Debug, Clone)]
pub struct NewSource {
    pub tenant_id: TenantId,
    pub name: String,
    pub verification: Verification,
    pub secret: Option<Vec<u8>>,
    pub secret_hint: Option<String>,
    pub verify_token: Option<Vec<u8>>,
    pub dedupe_key: Option<Vec<String>>,
    pub silence_alert_seconds: Option<i32>,
}

pub async fn insert_source(db: impl PgExecutor<'_>, new: &NewSource) -> Result<SourceRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO sources (id, tenant_id, name, verification, secret, secret_hint, verify_token, dedupe_key, \
         silence_alert_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {SOURCE_COLUMNS}"
    ));
    let row = sqlx::query_as(sql)
        .bind(SourceId::new().uuid())
        .bind(new.tenant_id.uuid())
        .bind(&new.name)
        .bind(Json(&new.verification))
        .bind(new.secret.as_deref())
        .bind(new.secret_hint.as_deref())
        .bind(new.verify_token.as_deref())
        .bind(new.dedupe_key.as_ref())
        .bind(new.silence_alert_seconds)
        .fetch_one(db)
        .await?;
    Ok(row)
}

/// A source and the tenant that owns it, for the ingest path: one round trip. Deleted sources are
/// returned too (with `deleted_at` set) so a refusal can still be recorded for the tenant.
#[derive(Debug, Clone, FromRow)]
pub struct IngestSource {
    #[sqlx(flatten)]
    pub source: SourceRow,
    #[sqlx(try_from = "String")]
    pub tenant_status: relay_core::vocab::TenantStatus,
    pub tenant_plan: String,
    pub tenant_limits: Json<relay_core::plan::LimitOverrides>,
}

pub async fn find_ingest_source(db: impl PgExecutor<'_>, id: SourceId) -> Result<Option<IngestSource>> {
    let row = sqlx::query_as(
        "SELECT s.id, s.tenant_id, s.name, s.verification, s.secret, s.secret_hint, s.previous_secret, \
                s.previous_secret_expires_at, s.verify_token, s.dedupe_key, s.silence_alert_seconds, s.created_at, s.updated_at, s.deleted_at, \
                t.status AS tenant_status, t.plan AS tenant_plan, t.limits AS tenant_limits \
         FROM sources s JOIN tenants t ON t.id = s.tenant_id WHERE s.id = $1",
    )
    .bind(id.uuid())
    .fetch_optional(db)
    .await?;
    Ok(row)
}

/// A live source of this tenant.
pub async fn find_source(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: SourceId,
) -> Result<Option<SourceRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {SOURCE_COLUMNS} FROM sources WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?)
}

pub async fn get_source(db: impl PgExecutor<'_>, tenant: TenantId, id: SourceId) -> Result<SourceRow> {
    find_source(db, tenant, id).await?.ok_or(StoreError::NotFound)
}

/// Soft delete: ingest answers 404 from now on; the events stay until retention purges them. Its
/// silence watch is forgotten.
pub async fn delete_source(db: impl PgExecutor<'_>, tenant: TenantId, id: SourceId) -> Result<()> {
    let done = sqlx::query(
        "WITH w AS (DELETE FROM silence_watch WHERE tenant_id = $1 AND source_id = $2) \
         UPDATE sources SET deleted_at = now(), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(tenant.uuid())
    .bind(id.uuid())
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Replaces the secret; the old one stays valid until `previous_expires_at`.
pub async fn rotate_source_secret(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: SourceId,
    sealed: &[u8],
    hint: &str,
    previous_expires_at: OffsetDateTime,
) -> Result<SourceRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE sources SET previous_secret = secret, previous_secret_expires_at = $5, \
         secret = $3, secret_hint = $4, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {SOURCE_COLUMNS}"
    ));
    let row: Option<SourceRow> = sqlx::query_as(sql)
        .bind(tenant.uuid())
        .bind(id.uuid())
        .bind(sealed)
        .bind(hint)
        .bind(previous_expires_at)
        .fetch_optional(db)
        .await?;
    row.ok_or(StoreError::NotFound)
}

/// The tenant's live sources, newest first, after `before` (a keyset cursor) when given.
pub async fn list_sources(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    before: Option<SourceId>,
    limit: i64,
) -> Result<Vec<SourceRow>> {
    crate::live::list_live(db, "sources", SOURCE_COLUMNS, tenant.uuid(), before.map(SourceId::uuid), limit)
        .await
}

/// How many live sources the tenant has (for plan limits and usage).
pub async fn count_sources(db: impl PgExecutor<'_>, tenant: TenantId) -> Result<i64> {
    crate::live::count_live(db, "sources", tenant.uuid()).await
}

/// The ids among `ids` that are not live sources of the tenant.
pub async fn missing_sources(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    ids: &[SourceId],
) -> Result<Vec<SourceId>> {
    let ids = ids.iter().map(|id| id.uuid()).collect();
    let missing = crate::live::missing_live(db, "sources", tenant.uuid(), ids).await?;
    Ok(missing.into_iter().map(SourceId::from_uuid).collect())
}

/// A live source of this tenant, its row locked until the transaction ends (read-merge-write
/// updates take it so concurrent edits do not overwrite each other).
pub async fn lock_source(db: impl PgExecutor<'_>, tenant: TenantId, id: SourceId) -> Result<SourceRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {SOURCE_COLUMNS} FROM sources \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE"
    ));
    let row: Option<SourceRow> =
        sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?;
    row.ok_or(StoreError::NotFound)
}

/// The editable state of a source, written whole (the caller merges a patch into the locked row).
#[derive(Debug, Clone)]
pub struct SourceUpdate {
    pub name: String,
    pub verification: Verification,
    pub secret: Option<Vec<u8>>,
    pub secret_hint: Option<String>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub verify_token: Option<Vec<u8>>,
    /// Applies to the events received after the change.
    pub dedupe_key: Option<Vec<String>>,
    /// A change applies to the keys watched at once (their deadlines follow, their rows locked in
    /// key order as ingest locks them); none forgets them.
    pub silence_alert_seconds: Option<i32>,
}

pub async fn update_source(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: SourceId,
    update: &SourceUpdate,
) -> Result<SourceRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH changed AS (SELECT 1 FROM sources WHERE tenant_id = $1 AND id = $2 \
             AND silence_alert_seconds IS DISTINCT FROM $11::int), \
         watched AS (SELECT device_id FROM silence_watch WHERE tenant_id = $1 AND source_id = $2 \
             AND EXISTS (SELECT 1 FROM changed) ORDER BY device_id FOR UPDATE), \
         retuned AS (UPDATE silence_watch SET deadline = last_seen + $11 * interval '1 second' \
             WHERE source_id = $2 AND device_id IN (SELECT device_id FROM watched) AND $11::int IS NOT NULL), \
         forgotten AS (DELETE FROM silence_watch \
             WHERE source_id = $2 AND device_id IN (SELECT device_id FROM watched) AND $11::int IS NULL) \
         UPDATE sources SET name = $3, verification = $4, secret = $5, secret_hint = $6, \
         previous_secret = $7, previous_secret_expires_at = $8, verify_token = $9, dedupe_key = $10, \
         silence_alert_seconds = $11, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {SOURCE_COLUMNS}"
    ));
    let row: Option<SourceRow> = sqlx::query_as(sql)
        .bind(tenant.uuid())
        .bind(id.uuid())
        .bind(&update.name)
        .bind(Json(&update.verification))
        .bind(update.secret.as_deref())
        .bind(update.secret_hint.as_deref())
        .bind(update.previous_secret.as_deref())
        .bind(update.previous_secret_expires_at)
        .bind(update.verify_token.as_deref())
        .bind(update.dedupe_key.as_ref())
        .bind(update.silence_alert_seconds)
        .fetch_optional(db)
        .await?;
    row.ok_or(StoreError::NotFound)
}
