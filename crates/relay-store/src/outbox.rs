//! The outbox of operational events (CONTRACT §7, migration 0018). A state change the relay
//! reports writes a row of `relay_outbox` in its own statement or transaction (the destination
//! trigger, [`failed_sql`], [`crate::silence`]), so however many processes race for a change,
//! only the one that made it reports it. [`publish`] turns rows into `relay.*` events of the
//! tenant's stream with their deliveries, deleting each row in the transaction that stores its
//! event: a row is published exactly once, whoever publishes it.

use std::collections::{HashMap, HashSet};

use relay_core::operational::{self, DELIVERY_FAILED, DESTINATION_RECOVERED, RELAY_SOURCE};
use relay_core::{DeliveryId, DestinationId, EventId, SourceId, TenantId};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::deliveries::NewDelivery;
use crate::error::Result;
use crate::events::NewEvent;

/// Notified (at commit) when rows were written, so a publisher runs at once.
pub const OUTBOX_CHANNEL: &str = "wap_relay_outbox";

/// How far before a failing streak's start a delivery that failed during it may have been
/// created (longer than any retry window), for replay on recovery.
const STREAK_LOOKBACK: time::Duration = time::Duration::days(7);

/// For a `WITH` list: one `relay.delivery.failed` row per row of `from`, a relation with the
/// columns `tenant_id, delivery_id, destination_id, event_id, detail` (jsonb), except
/// for deliveries of the relay's own events (a report of a report would go on for ever); then a
/// wake-up of the publishers. The statement must read `failed_wake` (a plain CTE runs only when
/// read).
pub(crate) fn failed_sql(from: &str) -> String {
    format!(
        "failed_out AS ( \
           INSERT INTO relay_outbox (tenant_id, type, destination_id, delivery_id, event_id, detail) \
           SELECT f.tenant_id, '{DELIVERY_FAILED}', f.destination_id, f.delivery_id, f.event_id, f.detail \
           FROM {from} f WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = f.tenant_id \
             AND e.id = f.event_id AND e.source_id = '{}') \
           RETURNING 1 \
         ), failed_wake AS ( \
           SELECT count(pg_notify('{OUTBOX_CHANNEL}', '')) AS n FROM (SELECT 1 FROM failed_out LIMIT 1) one \
         )",
        RELAY_SOURCE.uuid()
    )
}

/// One reported change, as written.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    pub id: i64,
    pub tenant_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub destination_id: Option<Uuid>,
    pub delivery_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub source_id: Option<Uuid>,
    pub device_id: Option<String>,
    pub detail: sqlx::types::Json<Value>,
    pub created_at: OffsetDateTime,
}

/// What one [`publish`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub events: usize,
    /// Failed deliveries queued again by replay on recovery.
    pub replayed: u64,
    /// The largest outbox id published.
    pub last: Option<i64>,
}

/// The first outbox id after `after` (none: the outbox is empty past it).
pub async fn next_id(conn: &mut PgConnection, after: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT min(id) FROM relay_outbox WHERE id > $1")
        .bind(after)
        .fetch_one(conn)
        .await?)
}

/// Publishes up to `limit` outbox rows after id `after` (those no other publisher holds), in one
/// transaction: each becomes a stored event with a delivery to each enabled destination whose
/// `event_types` name it, and a recovery with replay on recovery queues the streak's failed
/// deliveries first. Returns what it did; `events` is 0 when nothing was waiting. `pool` is for
/// creating history partitions, which happens outside the transaction.
pub async fn publish(
    conn: &mut PgConnection,
    coverage: &crate::partitions::Coverage,
    pool: &sqlx::PgPool,
    after: i64,
    limit: i64,
) -> Result<Published> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let pending: Vec<Pending> = sqlx::query_as(
        "SELECT id, tenant_id, type, destination_id, delivery_id, event_id, source_id, device_id, detail, \
           created_at FROM relay_outbox WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if pending.is_empty() {
        return Ok(Published::default());
    }
    let tenants: Vec<Uuid> =
        pending.iter().map(|p| p.tenant_id).collect::<HashSet<_>>().into_iter().collect();
    let keeps = keep_days_of(&mut tx, &tenants).await?;
    coverage.ensure(pool, keeps.values().copied()).await?;
    let mut fanout: HashMap<TenantId, Vec<crate::destinations::FanoutDestination>> = HashMap::new();
    for d in crate::destinations::list_fanout_destinations(&mut *tx, &tenants).await? {
        fanout.entry(d.tenant_id).or_default().push(d);
    }
    let mut done = Published::default();
    let mut events = Vec::with_capacity(pending.len());
    let mut deliveries = Vec::new();
    for p in &pending {
        let mut data = data_of(p);
        if p.kind == DESTINATION_RECOVERED {
            let replayed = replay(&mut tx, p).await?;
            done.replayed += replayed;
            data.remove("replay");
            data.insert("replayed".into(), replayed.into());
        }
        let tenant = TenantId::from_uuid(p.tenant_id);
        let id = EventId::new();
        let event = NewEvent {
            id,
            tenant_id: tenant,
            source_id: RELAY_SOURCE,
            wap_event_id: operational::event_id_text(id),
            event_type: p.kind.clone(),
            // The device concerned is in `data`: the event has no deviceId of its own, so no
            // per-device ordering keys it.
            device_id: None,
            timestamp: p.created_at,
            body: operational::payload(id, &p.kind, p.created_at, data).into(),
            dedupe_id: None,
            keep_days: keeps.get(&p.tenant_id).copied().unwrap_or(0),
        };
        let key = event.key();
        // Not ordered (no device key), and never in the Meta format (no Meta equivalent).
        for d in
            fanout.get(&tenant).into_iter().flatten().filter(|d| d.meta.is_none() && d.filter.matches(&key))
        {
            deliveries.push(NewDelivery::due_now(tenant, id, d.id));
        }
        events.push(event);
    }
    crate::ingest::store_events(&mut *tx, &events, &deliveries, Uuid::nil()).await?;
    if done.replayed > 0 {
        crate::deliveries::notify_due(&mut *tx).await?;
    }
    let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
    sqlx::query("DELETE FROM relay_outbox WHERE id = ANY($1)").bind(ids).execute(&mut *tx).await?;
    crate::stream::notify(&mut *tx, &tenants).await?;
    tx.commit().await?;
    done.events = events.len();
    done.last = pending.last().map(|p| p.id);
    Ok(done)
}

/// The history class of each tenant's new rows ([`crate::partitions::keep_days`]); a tenant
/// that is gone keeps its rows in class 0.
async fn keep_days_of(conn: &mut PgConnection, tenants: &[Uuid]) -> Result<HashMap<Uuid, i16>> {
    let found = crate::tenants::find_tenants(conn, tenants).await?;
    Ok(found.iter().map(|t| (t.id.uuid(), crate::partitions::keep_days(t.limits().retention_days))).collect())
}

/// The event's `data`: the ids concerned, in their API form, then the change's details.
fn data_of(p: &Pending) -> Map<String, Value> {
    let mut data = Map::new();
    let mut id = |name: &str, text: Option<String>| {
        if let Some(text) = text {
            data.insert(name.into(), text.into());
        }
    };
    id("destinationId", p.destination_id.map(|u| DestinationId::from_uuid(u).to_string()));
    id("deliveryId", p.delivery_id.map(|u| DeliveryId::from_uuid(u).to_string()));
    id("eventId", p.event_id.map(|u| EventId::from_uuid(u).to_string()));
    id("sourceId", p.source_id.map(|u| SourceId::from_uuid(u).to_string()));
    id("deviceId", p.device_id.clone());
    if let Value::Object(detail) = &p.detail.0 {
        data.extend(detail.iter().map(|(k, v)| (k.clone(), utc_text(v))));
    }
    data
}

/// Replay on recovery: when the recovered destination asks for it (`detail.replay`) and is still
/// enabled, queues again the deliveries to it that became failed from its streak's start until
/// the recovery.
async fn replay(conn: &mut PgConnection, p: &Pending) -> Result<u64> {
    let detail = &p.detail.0;
    let (Some(destination), Some(true)) = (p.destination_id, detail["replay"].as_bool()) else {
        return Ok(0);
    };
    let Some(since) = detail["since"].as_str().and_then(parse_pg_time) else { return Ok(0) };
    let live: Option<bool> = sqlx::query_scalar(
        "SELECT enabled AND deleted_at IS NULL FROM destinations WHERE tenant_id = $1 AND id = $2",
    )
    .bind(p.tenant_id)
    .bind(destination)
    .fetch_optional(&mut *conn)
    .await?;
    if live != Some(true) {
        return Ok(0);
    }
    crate::deliveries::replay_destination(
        conn,
        TenantId::from_uuid(p.tenant_id),
        DestinationId::from_uuid(destination),
        since - STREAK_LOOKBACK,
        p.created_at,
        false,
        Some(since),
    )
    .await
}

/// A timestamp of `detail` (as Postgres writes it, in the writer's time zone) in the form of the
/// payload's `timestamp` (RFC 3339, UTC); any other value as it is.
fn utc_text(v: &Value) -> Value {
    match v.as_str().and_then(parse_pg_time) {
        Some(t) => t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).map_or_else(|_| v.clone(), Value::from),
        None => v.clone(),
    }
}

/// A timestamp as `jsonb_build_object` writes a `timestamptz` (`2026-04-03T12:00:00.123+00:00`).
fn parse_pg_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_timestamps_in_json_parse() {
        let t = parse_pg_time("2026-04-03T12:00:00.123456+00:00").unwrap();
        assert_eq!(t.unix_timestamp(), 1_775_217_600);
        assert!(parse_pg_time("yesterday").is_none());
    }

    #[test]
    fn timestamps_in_data_are_utc_like_the_payloads() {
        assert_eq!(utc_text(&"2026-04-03T14:00:00.5+02:00".into()), Value::from("2026-04-03T12:00:00.5Z"));
        assert_eq!(
            utc_text(&"the destination answered 410 Gone".into()),
            Value::from("the destination answered 410 Gone")
        );
        assert_eq!(utc_text(&Value::from(3)), Value::from(3));
    }
}
