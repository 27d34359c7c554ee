//! The `destinations` table: where a tenant's events fan out to, with filters, custom headers
//! (credential-like ones sealed, see [`headers`]), a sealed signing secret, a retry policy and
//! per-destination limits.

pub mod headers;

use relay_core::filter::Filter;
use relay_core::secret::{MasterKey, SecretError};
use relay_core::vocab::DeliveryOrdering;
use relay_core::{DestinationId, SourceId, TenantId};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, FromRow)]
pub struct DestinationRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub source_ids: Option<Vec<Uuid>>,
    pub event_types: Vec<String>,
    pub device_ids: Option<Vec<String>>,
    /// The ordinary custom headers (and, in rows written before sealing, credential-like ones).
    pub headers: Json<BTreeMap<String, String>>,
    /// The credential-like custom headers, sealed (see [`headers`]).
    pub sealed_headers: Option<Vec<u8>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<OffsetDateTime>,
    /// Deliveries collect and none is attempted until it is resumed.
    pub paused: bool,
    pub paused_at: Option<OffsetDateTime>,
    /// When it answers again after a failing streak, the streak's failed deliveries are replayed.
    pub replay_on_recovery: bool,
    /// `waping` or `meta_cloud_api`.
    pub format: String,
    pub meta_context: Option<Json<relay_core::meta::MetaContext>>,
    /// One delivery at a time per deviceId, in acceptance order, or no order.
    #[sqlx(try_from = "String")]
    pub ordering: DeliveryOrdering,
    pub timeout_ms: i32,
    pub rate_limit_per_second: Option<i32>,
    pub max_in_flight: i32,
    pub initial_delay_ms: i64,
    pub max_delay_ms: i64,
    pub window_seconds: i32,
    pub signing_secret: Vec<u8>,
    pub previous_signing_secret: Option<Vec<u8>>,
    pub previous_signing_secret_expires_at: Option<OffsetDateTime>,
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

pub const DESTINATION_COLUMNS: &str = "id, tenant_id, url, description, source_ids, event_types, device_ids, \
     headers, sealed_headers, enabled, disabled_reason, disabled_at, paused, paused_at, replay_on_recovery, format, meta_context, ordering, \
     timeout_ms, rate_limit_per_second, max_in_flight, initial_delay_ms, max_delay_ms, window_seconds, signing_secret, previous_signing_secret, \
     previous_signing_secret_expires_at, failing_since, created_at, updated_at";

impl DestinationRow {
    /// Every custom header, with the sealed ones opened: what deliveries carry.
    pub fn custom_headers(
        &self,
        key: &MasterKey,
    ) -> std::result::Result<BTreeMap<String, String>, SecretError> {
        headers::open(key, &self.headers.0, self.sealed_headers.as_deref())
    }
}

/// A new destination, validated by the caller. `headers` are stored in clear: a caller with
/// credential-like headers splits them with [`headers::seal`] and passes the sealed part to
/// [`insert_destination_with_sealed_headers`].
#[derive(Debug, Clone)]
pub struct NewDestination {
    pub tenant_id: TenantId,
    pub url: String,
    pub description: Option<String>,
    pub source_ids: Option<Vec<SourceId>>,
    pub event_types: Vec<String>,
    pub device_ids: Option<Vec<String>>,
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    /// Created paused: its deliveries wait until it is resumed.
    pub paused: bool,
    pub replay_on_recovery: bool,
    pub format: String,
    pub meta_context: Option<relay_core::meta::MetaContext>,
    pub ordering: DeliveryOrdering,
    pub timeout_ms: i32,
    pub rate_limit_per_second: Option<i32>,
    pub max_in_flight: i32,
    pub initial_delay_ms: i64,
    pub max_delay_ms: i64,
    pub window_seconds: i32,
    pub signing_secret: Vec<u8>,
}

/// Inserts a destination without sealed headers.
pub async fn insert_destination(db: impl PgExecutor<'_>, new: &NewDestination) -> Result<DestinationRow> {
    insert_destination_with_sealed_headers(db, new, None).await
}

/// Inserts a destination whose credential-like headers are `sealed_headers` (from
/// [`headers::seal`]); `new.headers` holds the ordinary ones.
pub async fn insert_destination_with_sealed_headers(
    db: impl PgExecutor<'_>,
    new: &NewDestination,
    sealed_headers: Option<&[u8]>,
) -> Result<DestinationRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO destinations (id, tenant_id, url, description, source_ids, event_types, device_ids, \
         headers, enabled, timeout_ms, rate_limit_per_second, max_in_flight, initial_delay_ms, max_delay_ms, \
         window_seconds, signing_secret, sealed_headers, replay_on_recovery, format, meta_context, ordering, \
         paused, paused_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
           $21, $22, CASE WHEN $22 THEN now() END) \
         RETURNING {DESTINATION_COLUMNS}"
    ));
    let source_ids: Option<Vec<Uuid>> =
        new.source_ids.as_ref().map(|ids| ids.iter().map(|s| s.uuid()).collect());
    let row = sqlx::query_as(sql)
        .bind(DestinationId::new().uuid())
        .bind(new.tenant_id.uuid())
        .bind(&new.url)
        .bind(new.description.as_deref())
        .bind(source_ids)
        .bind(&new.event_types)
        .bind(new.device_ids.as_ref())
        .bind(Json(&new.headers))
        .bind(new.enabled)
        .bind(new.timeout_ms)
        .bind(new.rate_limit_per_second)
        .bind(new.max_in_flight)
        .bind(new.initial_delay_ms)
        .bind(new.max_delay_ms)
        .bind(new.window_seconds)
        .bind(&new.signing_secret)
        .bind(sealed_headers)
        .bind(new.replay_on_recovery)
        .bind(&new.format)
        .bind(new.meta_context.as_ref().map(Json))
        .bind(new.ordering.as_str())
        .bind(new.paused)
        .fetch_one(db)
        .await?;
    Ok(row)
}

/// The `format` of a destination that receives Meta's WhatsApp Cloud API webhooks.
pub const META_CLOUD_API: &str = "meta_cloud_api";

/// An enabled destination's filter, for fan-out at ingest.
#[derive(Debug, Clone)]
pub struct FanoutDestination {
    pub id: DestinationId,
    pub tenant_id: TenantId,
    pub filter: Filter,
    /// What a process that takes the first attempt itself needs to size its lease and its share.
    pub max_in_flight: u32,
    pub timeout_ms: u32,
    /// Its deliveries are stored, not attempted: no process takes them in its lane.
    pub paused: bool,
    /// Set for the `meta_cloud_api` format: only events with a Meta equivalent fan out to it.
    pub meta: Option<relay_core::meta::MetaContext>,
    /// With `per_device`, deliveries of events with a deviceId are queued with a device key
    /// (held in order by the claim) and never taken in a lane.
    pub ordering: DeliveryOrdering,
}

#[derive(FromRow)]
struct FanoutRow {
    id: Uuid,
    tenant_id: Uuid,
    source_ids: Option<Vec<Uuid>>,
    event_types: Vec<String>,
    device_ids: Option<Vec<String>>,
    max_in_flight: i32,
    timeout_ms: i32,
    paused: bool,
    format: String,
    meta_context: Option<Json<relay_core::meta::MetaContext>>,
    #[sqlx(try_from = "String")]
    ordering: DeliveryOrdering,
}

/// The enabled, live destinations of the given tenants, for fan-out at ingest.
pub async fn list_fanout_destinations(
    db: impl PgExecutor<'_>,
    tenants: &[Uuid],
) -> Result<Vec<FanoutDestination>> {
    let rows: Vec<FanoutRow> = sqlx::query_as(
        "SELECT id, tenant_id, source_ids, event_types, device_ids, max_in_flight, timeout_ms, paused, \
         format, meta_context, ordering \
         FROM destinations \
         WHERE tenant_id = ANY($1) AND enabled AND deleted_at IS NULL",
    )
    .bind(tenants)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| FanoutDestination {
            id: DestinationId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            filter: Filter {
                source_ids: r.source_ids.map(|ids| ids.into_iter().map(SourceId::from_uuid).collect()),
                event_types: r.event_types,
                device_ids: r.device_ids,
            },
            max_in_flight: u32::try_from(r.max_in_flight).unwrap_or(1).max(1),
            timeout_ms: u32::try_from(r.timeout_ms).unwrap_or(relay_core::destination::TIMEOUT_MS),
            paused: r.paused,
            meta: (r.format == META_CLOUD_API).then(|| r.meta_context.map(|c| c.0).unwrap_or_default()),
            ordering: r.ordering,
        })
        .collect())
}

/// The tenant's live destinations, newest first, after `before` (a keyset cursor) when given.
pub async fn list_destinations(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    before: Option<DestinationId>,
    limit: i64,
) -> Result<Vec<DestinationRow>> {
    crate::live::list_live(
        db,
        "destinations",
        DESTINATION_COLUMNS,
        tenant.uuid(),
        before.map(DestinationId::uuid),
        limit,
    )
    .await
}

/// How many live destinations the tenant has (for plan limits and usage).
pub async fn count_destinations(db: impl PgExecutor<'_>, tenant: TenantId) -> Result<i64> {
    crate::live::count_live(db, "destinations", tenant.uuid()).await
}

/// A live destination of this tenant.
pub async fn find_destination(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DestinationId,
) -> Result<Option<DestinationRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DESTINATION_COLUMNS} FROM destinations \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    ));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?)
}

pub async fn get_destination(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DestinationId,
) -> Result<DestinationRow> {
    find_destination(db, tenant, id).await?.ok_or(crate::StoreError::NotFound)
}

/// A live destination, its row locked until the transaction ends (for read-merge-write updates).
pub async fn lock_destination(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DestinationId,
) -> Result<DestinationRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DESTINATION_COLUMNS} FROM destinations \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE"
    ));
    let row: Option<DestinationRow> =
        sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?;
    row.ok_or(crate::StoreError::NotFound)
}

/// The editable state of a destination, written whole (the caller merges a patch into the
/// locked row). Turning `enabled` on clears the disabled reason and the failing streak; turning
/// it off records `disabled_reason`.
#[derive(Debug, Clone)]
pub struct DestinationUpdate {
    pub url: String,
    pub description: Option<String>,
    pub source_ids: Option<Vec<SourceId>>,
    pub event_types: Vec<String>,
    pub device_ids: Option<Vec<String>>,
    /// The custom headers as stored (split by [`headers::seal`]).
    pub headers: headers::StoredHeaders,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Turning it off (resuming) restarts the retry windows of the queued deliveries.
    pub paused: bool,
    pub replay_on_recovery: bool,
    pub format: String,
    pub meta_context: Option<relay_core::meta::MetaContext>,
    /// A change applies to the queued deliveries too (the caller runs [`rekey_queued`]).
    pub ordering: DeliveryOrdering,
    pub timeout_ms: i32,
    pub rate_limit_per_second: Option<i32>,
    pub max_in_flight: i32,
    pub initial_delay_ms: i64,
    pub max_delay_ms: i64,
    pub window_seconds: i32,
}

pub async fn update_destination(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DestinationId,
    u: &DestinationUpdate,
) -> Result<DestinationRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE destinations SET url = $3, description = $4, source_ids = $5, event_types = $6, \
         device_ids = $7, headers = $8, sealed_headers = $17, timeout_ms = $10, rate_limit_per_second = $11, \
         max_in_flight = $12, initial_delay_ms = $13, max_delay_ms = $14, window_seconds = $15, \
         disabled_at = CASE WHEN $9 THEN NULL WHEN enabled THEN now() ELSE disabled_at END, \
         disabled_reason = CASE WHEN $9 THEN NULL WHEN enabled THEN $16 ELSE disabled_reason END, \
         failing_since = CASE WHEN $9 AND NOT enabled THEN NULL ELSE failing_since END, \
         enabled = $9, paused_at = CASE WHEN NOT $18 THEN NULL WHEN paused THEN paused_at ELSE now() END, \
         paused = $18, replay_on_recovery = $19, format = $20, meta_context = $21, ordering = $22, \
         updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {DESTINATION_COLUMNS}"
    ));
    let source_ids: Option<Vec<Uuid>> =
        u.source_ids.as_ref().map(|ids| ids.iter().map(|s| s.uuid()).collect());
    let row: Option<DestinationRow> = sqlx::query_as(sql)
        .bind(tenant.uuid())
        .bind(id.uuid())
        .bind(&u.url)
        .bind(u.description.as_deref())
        .bind(source_ids)
        .bind(&u.event_types)
        .bind(u.device_ids.as_ref())
        .bind(Json(&u.headers.plain))
        .bind(u.enabled)
        .bind(u.timeout_ms)
        .bind(u.rate_limit_per_second)
        .bind(u.max_in_flight)
        .bind(u.initial_delay_ms)
        .bind(u.max_delay_ms)
        .bind(u.window_seconds)
        .bind(u.disabled_reason.as_deref())
        .bind(u.headers.sealed.as_deref())
        .bind(u.paused)
        .bind(u.replay_on_recovery)
        .bind(&u.format)
        .bind(u.meta_context.as_ref().map(Json))
        .bind(u.ordering.as_str())
        .fetch_optional(db)
        .await?;
    row.ok_or(crate::StoreError::NotFound)
}

/// On resume: the queued deliveries of `destination` get a fresh retry window (the time they
/// waited while paused does not count against it), and the dispatchers a wake-up at commit.
pub async fn restart_windows(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    destination: DestinationId,
) -> Result<u64> {
    let done = sqlx::query(
        "WITH q AS ( \
           UPDATE delivery_queue SET window_started_at = now(), attempts_before_window = started \
           WHERE tenant_id = $1 AND destination_id = $2 AND lease_token IS NULL RETURNING 1) \
         SELECT pg_notify($3, '') FROM (SELECT 1 FROM q LIMIT 1) one",
    )
    .bind(tenant.uuid())
    .bind(destination.uuid())
    .bind(crate::deliveries::WAKE_CHANNEL)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// After `destination`'s ordering changed to `ordering`: its queued deliveries get the device key
/// that rule gives them (set from their events' deviceId for `per_device`, cleared for `none`), so
/// a change holds or frees what is already queued, not only what comes next. Deliveries in flight
/// at that moment finish as they started.
pub async fn rekey_queued(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    destination: DestinationId,
    ordering: DeliveryOrdering,
) -> Result<()> {
    let key = crate::ordering::device_key_sql("$3", "e.device_id");
    let parked = crate::ordering::PARKED;
    // The new key of every queued row, and its rank in its device: rows behind their device's
    // first are parked (unless in flight), rows that no longer wait are due now.
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH k AS ( \
           SELECT q.tenant_id, q.delivery_id, {key} AS device_key, \
             row_number() OVER (PARTITION BY {key} ORDER BY q.delivery_id) AS rn \
           FROM delivery_queue q JOIN events e ON e.tenant_id = q.tenant_id AND e.id = q.event_id \
           WHERE q.tenant_id = $1 AND q.destination_id = $2 \
         ), n AS ( \
           SELECT k.*, CASE WHEN q.lease_token IS NOT NULL THEN q.due_at \
             WHEN k.device_key IS NOT NULL AND k.rn > 1 THEN {parked} \
             WHEN q.due_at = {parked} THEN now() ELSE q.due_at END AS due_at \
           FROM k JOIN delivery_queue q ON q.tenant_id = k.tenant_id AND q.delivery_id = k.delivery_id \
         ), q AS ( \
           UPDATE delivery_queue q SET device_key = n.device_key, due_at = n.due_at FROM n \
           WHERE q.tenant_id = n.tenant_id AND q.delivery_id = n.delivery_id \
             AND (q.device_key IS DISTINCT FROM n.device_key OR q.due_at <> n.due_at) \
           RETURNING 1) \
         SELECT pg_notify($4, '') FROM (SELECT 1 FROM q LIMIT 1) one"
    ));
    sqlx::query(sql)
        .bind(tenant.uuid())
        .bind(destination.uuid())
        .bind(ordering.as_str())
        .bind(crate::deliveries::WAKE_CHANNEL)
        .execute(db)
        .await?;
    Ok(())
}

/// Soft delete: the destination stops receiving new deliveries at once. Its pending deliveries
/// are failed by the caller in the same transaction (see `deliveries::fail_pending_for_destination`).
pub async fn delete_destination(db: impl PgExecutor<'_>, tenant: TenantId, id: DestinationId) -> Result<()> {
    let done = sqlx::query(
        "UPDATE destinations SET deleted_at = now(), enabled = false, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(tenant.uuid())
    .bind(id.uuid())
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}

/// Replaces the sealed signing secret; the old one is kept, and signs alongside the new one,
/// until `previous_expires_at`.
pub async fn rotate_destination_secret(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    id: DestinationId,
    sealed: &[u8],
    previous_expires_at: OffsetDateTime,
) -> Result<DestinationRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE destinations SET previous_signing_secret = signing_secret, \
         previous_signing_secret_expires_at = $4, signing_secret = $3, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {DESTINATION_COLUMNS}"
    ));
    let row: Option<DestinationRow> = sqlx::query_as(sql)
        .bind(tenant.uuid())
        .bind(id.uuid())
        .bind(sealed)
        .bind(previous_expires_at)
        .fetch_optional(db)
        .await?;
    row.ok_or(crate::StoreError::NotFound)
}

/// The enabled, live destinations of one tenant, for re-matching an event at redelivery.
pub async fn list_tenant_fanout_destinations(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
) -> Result<Vec<FanoutDestination>> {
    list_fanout_destinations(db, &[tenant.uuid()]).await
}

/// The ids among `ids` that are not live destinations of the tenant.
pub async fn missing_destinations(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    ids: &[DestinationId],
) -> Result<Vec<DestinationId>> {
    let ids = ids.iter().map(|id| id.uuid()).collect();
    let missing = crate::live::missing_live(db, "destinations", tenant.uuid(), ids).await?;
    Ok(missing.into_iter().map(DestinationId::from_uuid).collect())
}
