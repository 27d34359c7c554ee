//! The ingest write: a batch of events and the deliveries they fan out to, stored by one
//! statement (so one implicit transaction and one round trip). Only events that are new get
//! their deliveries; duplicates (same source and `eventId`, in the table or earlier in the
//! batch) are skipped by the dedupe constraint. The dispatchers are woken by a NOTIFY that
//! Postgres delivers when the statement commits.

use relay_core::EventId;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::deliveries::{NewDelivery, WAKE_CHANNEL};
use crate::error::Result;
use crate::events::NewEvent;

/// Stores `events` and, for those that are new, their `candidates` (deliveries whose `event_id`
/// is one of the events). Returns the ids of the events that were new.
pub async fn store_events(
    db: impl PgExecutor<'_>,
    events: &[NewEvent],
    candidates: &[NewDelivery],
) -> Result<Vec<EventId>> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id.uuid()).collect();
    let tenants: Vec<Uuid> = events.iter().map(|e| e.tenant_id.uuid()).collect();
    let sources: Vec<Uuid> = events.iter().map(|e| e.source_id.uuid()).collect();
    let wap_ids: Vec<&str> = events.iter().map(|e| e.wap_event_id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let devices: Vec<Option<&str>> = events.iter().map(|e| e.device_id.as_deref()).collect();
    let stamps: Vec<OffsetDateTime> = events.iter().map(|e| e.timestamp).collect();
    let bodies: Vec<&[u8]> = events.iter().map(|e| e.body.as_ref()).collect();
    let d_ids: Vec<Uuid> = candidates.iter().map(|d| d.id.uuid()).collect();
    let d_tenants: Vec<Uuid> = candidates.iter().map(|d| d.tenant_id.uuid()).collect();
    let d_events: Vec<Uuid> = candidates.iter().map(|d| d.event_id.uuid()).collect();
    let d_destinations: Vec<Uuid> = candidates.iter().map(|d| d.destination_id.uuid()).collect();
    // `wake` is evaluated once, and notifies only when deliveries were inserted.
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "WITH ins AS ( \
           INSERT INTO events (id, tenant_id, source_id, wap_event_id, type, device_id, \"timestamp\", body) \
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
                                $7::timestamptz[], $8::bytea[]) \
           ON CONFLICT (source_id, wap_event_id) DO NOTHING RETURNING id \
         ), dl AS ( \
           INSERT INTO deliveries (id, tenant_id, event_id, destination_id, next_attempt_at) \
           SELECT d.id, d.tenant_id, d.event_id, d.destination_id, now() \
           FROM UNNEST($9::uuid[], $10::uuid[], $11::uuid[], $12::uuid[]) AS d(id, tenant_id, event_id, destination_id) \
           WHERE d.event_id IN (SELECT id FROM ins) \
           RETURNING 1 \
         ) \
         SELECT ins.id FROM ins, \
           (SELECT count(pg_notify($13, '')) FROM (SELECT 1 FROM dl LIMIT 1) one) wake",
    )
    .bind(ids)
    .bind(tenants)
    .bind(sources)
    .bind(wap_ids)
    .bind(types)
    .bind(devices)
    .bind(stamps)
    .bind(bodies)
    .bind(d_ids)
    .bind(d_tenants)
    .bind(d_events)
    .bind(d_destinations)
    .bind(WAKE_CHANNEL)
    .fetch_all(db)
    .await?;
    Ok(inserted.into_iter().map(EventId::from_uuid).collect())
}
