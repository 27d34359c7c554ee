//! The `destinations` table: where a tenant's events fan out to, with filters, custom headers,
//! a sealed signing secret, a retry policy and per-destination limits.

use relay_core::filter::Filter;
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
    pub headers: Json<BTreeMap<String, String>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<OffsetDateTime>,
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
     headers, enabled, disabled_reason, disabled_at, timeout_ms, rate_limit_per_second, max_in_flight, \
     initial_delay_ms, max_delay_ms, window_seconds, signing_secret, previous_signing_secret, \
     previous_signing_secret_expires_at, failing_since, created_at, updated_at";

/// A new destination, validated by the caller.
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
    pub timeout_ms: i32,
    pub rate_limit_per_second: Option<i32>,
    pub max_in_flight: i32,
    pub initial_delay_ms: i64,
    pub max_delay_ms: i64,
    pub window_seconds: i32,
    pub signing_secret: Vec<u8>,
}

pub async fn insert_destination(db: impl PgExecutor<'_>, new: &NewDestination) -> Result<DestinationRow> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO destinations (id, tenant_id, url, description, source_ids, event_types, device_ids, \
         headers, enabled, timeout_ms, rate_limit_per_second, max_in_flight, initial_delay_ms, max_delay_ms, \
         window_seconds, signing_secret) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
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
        .fetch_one(db)
        .await?;
    Ok(row)
}

/// An enabled destination's filter, for fan-out at ingest.
#[derive(Debug, Clone)]
pub struct FanoutDestination {
    pub id: DestinationId,
    pub tenant_id: TenantId,
    pub filter: Filter,
}

#[derive(FromRow)]
struct FanoutRow {
    id: Uuid,
    tenant_id: Uuid,
    source_ids: Option<Vec<Uuid>>,
    event_types: Vec<String>,
    device_ids: Option<Vec<String>>,
}

/// The enabled, live destinations of the given tenants. Read inside the ingest transaction so an
/// event fans out to exactly the destinations that existed when it was stored.
pub async fn list_fanout_destinations(
    db: impl PgExecutor<'_>,
    tenants: &[Uuid],
) -> Result<Vec<FanoutDestination>> {
    let rows: Vec<FanoutRow> = sqlx::query_as(
        "SELECT id, tenant_id, source_ids, event_types, device_ids FROM destinations \
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
        })
        .collect())
}
