//! A prefilled backlog: pending deliveries stored before the measured relay starts, through
//! relay-store's own ingest write (the rows are exactly what ingest would store), in large
//! batches so a million takes seconds rather than minutes of HTTP.

use anyhow::Context;
use relay_core::vocab::DeliveryOrdering;
use relay_core::{DestinationId, EventId, SourceId, TenantId};
use relay_store::deliveries::NewDelivery;
use relay_store::events::NewEvent;

use crate::relay::TenantSetup;

const BATCH: usize = 5_000;
/// The one `deviceId` of every prefilled event.
pub const DEVICE: &str = "dev_backlog";

/// Stores `count` events of the backlog tenant, each with one pending delivery to its single
/// destination; event `k` has `eventId` `p{k}`.
pub async fn store(db: &str, backlog: &TenantSetup, count: usize) -> anyhow::Result<()> {
    store_ordered(db, backlog, count, DeliveryOrdering::None).await
}

/// As [`store`], for a destination with `ordering`: with `per_device`, every delivery is keyed
/// to the one device, so all but its head are held, as ingest would queue them.
pub async fn store_ordered(
    db: &str,
    backlog: &TenantSetup,
    count: usize,
    ordering: DeliveryOrdering,
) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(db).await?;
    let tenant: TenantId = backlog.id.parse()?;
    let source: SourceId = backlog.ingest_url.rsplit('/').next().context("source id")?.parse()?;
    let destination: DestinationId = backlog.destination_ids[0].parse()?;
    let stamp = time::OffsetDateTime::now_utc();
    let mut k = 0;
    while k < count {
        let n = BATCH.min(count - k);
        let events: Vec<NewEvent> = (k..k + n)
            .map(|i| {
                let (body, _) = crate::signed::event(&format!("p{i}"), DEVICE);
                NewEvent {
                    id: EventId::new(),
                    tenant_id: tenant,
                    source_id: source,
                    wap_event_id: format!("p{i}"),
                    event_type: "message.received".to_owned(),
                    device_id: Some(DEVICE.to_owned()),
                    timestamp: stamp,
                    body: body.into(),
                    dedupe_id: None,
                    keep_days: 0,
                }
            })
            .collect();
        let key = ordering.device_key(Some(DEVICE)).map(str::to_owned);
        let deliveries: Vec<NewDelivery> = events
            .iter()
            .map(|e| NewDelivery {
                device_key: key.clone(),
                ..NewDelivery::due_now(tenant, e.id, destination)
            })
            .collect();
        relay_store::ingest::store_events(&pool, &events, &deliveries, uuid::Uuid::nil()).await?;
        k += n;
    }
    pool.close().await;
    Ok(())
}
