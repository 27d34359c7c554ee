//! The `deliveries` table: one event's delivery to one destination, its state and schedule.

use relay_core::{DeliveryId, DestinationId, EventId, TenantId};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

/// The Postgres channel notified when new deliveries are due now; dispatchers LISTEN on it.
pub const WAKE_CHANNEL: &str = "wap_relay_deliveries";

#[derive(Debug, Clone, Copy)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub destination_id: DestinationId,
}

/// Inserts pending deliveries, due now.
pub async fn insert_deliveries(db: impl PgExecutor<'_>, deliveries: &[NewDelivery]) -> Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id.uuid()).collect();
    let tenants: Vec<Uuid> = deliveries.iter().map(|d| d.tenant_id.uuid()).collect();
    let events: Vec<Uuid> = deliveries.iter().map(|d| d.event_id.uuid()).collect();
    let destinations: Vec<Uuid> = deliveries.iter().map(|d| d.destination_id.uuid()).collect();
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, event_id, destination_id, next_attempt_at) \
         SELECT d.id, d.tenant_id, d.event_id, d.destination_id, now() \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[]) AS d(id, tenant_id, event_id, destination_id)",
    )
    .bind(ids)
    .bind(tenants)
    .bind(events)
    .bind(destinations)
    .execute(db)
    .await?;
    Ok(())
}

/// Wakes the dispatchers when the surrounding transaction commits.
pub async fn notify_due(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(WAKE_CHANNEL).execute(db).await?;
    Ok(())
}

/// The tenant's pending deliveries, counted up to `cap` (enough to know the cap is reached without
/// counting a huge backlog in full).
pub async fn count_backlog(db: impl PgExecutor<'_>, tenant: TenantId, cap: i64) -> Result<i64> {
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE tenant_id = $1 AND status = 'pending' LIMIT $2) s",
    )
    .bind(tenant.uuid())
    .bind(cap)
    .fetch_one(db)
    .await?;
    Ok(n)
}
