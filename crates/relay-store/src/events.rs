//! The `events` table: each accepted WAPing event with its raw body. Inserted in batches by the
//! ingest group commit; the unique constraint on (source_id, wap_event_id) is the dedupe.

use relay_core::{EventId, SourceId, TenantId};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub tenant_id: TenantId,
    pub source_id: SourceId,
    pub wap_event_id: String,
    pub event_type: String,
    pub device_id: Option<String>,
    pub timestamp: OffsetDateTime,
    pub body: bytes::Bytes,
}

/// Inserts the events that are not duplicates and returns the ids of those inserted. A batch may
/// hold the same (source, eventId) twice: the first one wins, like two separate requests.
pub async fn insert_events(db: impl PgExecutor<'_>, events: &[NewEvent]) -> Result<Vec<EventId>> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id.uuid()).collect();
    let tenants: Vec<Uuid> = events.iter().map(|e| e.tenant_id.uuid()).collect();
    let sources: Vec<Uuid> = events.iter().map(|e| e.source_id.uuid()).collect();
    let wap_ids: Vec<&str> = events.iter().map(|e| e.wap_event_id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let devices: Vec<Option<&str>> = events.iter().map(|e| e.device_id.as_deref()).collect();
    let stamps: Vec<OffsetDateTime> = events.iter().map(|e| e.timestamp).collect();
    let bodies: Vec<&[u8]> = events.iter().map(|e| e.body.as_ref()).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO events (id, tenant_id, source_id, wap_event_id, type, device_id, \"timestamp\", body) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
                              $7::timestamptz[], $8::bytea[]) \
         ON CONFLICT (source_id, wap_event_id) DO NOTHING RETURNING id",
    )
    .bind(ids)
    .bind(tenants)
    .bind(sources)
    .bind(wap_ids)
    .bind(types)
    .bind(devices)
    .bind(stamps)
    .bind(bodies)
    .fetch_all(db)
    .await?;
    Ok(inserted.into_iter().map(EventId::from_uuid).collect())
}

/// Whether this source already stored this eventId (the slow path of dedupe).
pub async fn event_exists(db: impl PgExecutor<'_>, source: SourceId, wap_event_id: &str) -> Result<bool> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM events WHERE source_id = $1 AND wap_event_id = $2")
            .bind(source.uuid())
            .bind(wap_event_id)
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}

/// A stored event, as the admin API lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub source_id: Uuid,
    pub wap_event_id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub device_id: Option<String>,
    pub timestamp: OffsetDateTime,
    pub received_at: OffsetDateTime,
    pub body: Vec<u8>,
}

const EVENT_COLUMNS: &str =
    "id, tenant_id, source_id, wap_event_id, type, device_id, \"timestamp\", received_at, body";

/// Filters of the event log; `range` applies to `received_at`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub source_id: Option<SourceId>,
    pub event_type: Option<String>,
    pub device_id: Option<String>,
    pub wap_event_id: Option<String>,
    pub range: crate::keyset::TimeRange,
}

/// The tenant's events, newest first, after `before` (a keyset cursor) when given.
pub async fn list_events(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    filter: &EventFilter,
    before: Option<EventId>,
    limit: i64,
) -> Result<Vec<EventRow>> {
    // Source filters still scan `events_tenant`: the dedupe index is not ordered by id.
    let scan = crate::keyset::Scan::ByTenant;
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE "));
    crate::keyset::push_tenant(&mut q, tenant.uuid(), scan);
    if let Some(source) = filter.source_id {
        q.push(" AND source_id = ").push_bind(source.uuid());
    }
    if let Some(t) = &filter.event_type {
        q.push(" AND type = ").push_bind(t.clone());
    }
    if let Some(d) = &filter.device_id {
        q.push(" AND device_id = ").push_bind(d.clone());
    }
    if let Some(w) = &filter.wap_event_id {
        q.push(" AND wap_event_id = ").push_bind(w.clone());
    }
    crate::keyset::push_range(&mut q, before.map(EventId::uuid), "received_at", filter.range);
    crate::keyset::push_page_end(&mut q, limit, scan);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// One event of this tenant.
pub async fn find_event(db: impl PgExecutor<'_>, tenant: TenantId, id: EventId) -> Result<Option<EventRow>> {
    let sql =
        sqlx::AssertSqlSafe(format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?)
}

/// Locks one event of this tenant until the transaction ends (serialises redeliveries of it).
pub async fn lock_event(db: impl PgExecutor<'_>, tenant: TenantId, id: EventId) -> Result<Option<EventRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?)
}
