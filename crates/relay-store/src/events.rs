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
