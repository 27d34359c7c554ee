//! History partitions (migration 0016): a retention sweep drops the slices past their class's
//! retention whole, keeps the rows of pending deliveries (moved to class 0), forgets the dedupe
//! keys of what it dropped, and ingest goes on writing while a slice is being detached.

mod support;

use std::time::Duration;

use relay_core::{DeliveryId, EventId, SourceId};
use relay_store::deliveries::NewDelivery;
use relay_store::events::NewEvent;
use relay_store::{PgPool, deliveries, events, ingest, partitions};
use support::*;
use time::OffsetDateTime;
use uuid::Uuid;

/// growth keeps history 7 days.
const KEEP: i16 = 7;

struct History {
    fx: Fixture,
    dest: Dest,
    source: SourceId,
}

impl History {
    async fn new(pool: PgPool) -> Self {
        let fx = Fixture::new(pool);
        let tenant = fx.tenant(None, None).await; // growth: 7 days
        let dest = fx.destination(tenant, DestinationSpec::new("http://127.0.0.1:9/none".into())).await;
        let now = OffsetDateTime::now_utc();
        partitions::ensure(&fx.pool, KEEP, now - time::Duration::days(30), now + time::Duration::days(1))
            .await
            .unwrap();
        Self { fx, dest, source: SourceId::new() }
    }

    /// Stores one event as ingest does (event id `id`, one delivery to the destination with id
    /// `delivery`, queued); returns whether it was new.
    async fn store(&self, id: Uuid, delivery: Uuid, wap_event_id: &str) -> bool {
        let event = NewEvent {
            id: EventId::from_uuid(id),
            tenant_id: self.dest.tenant,
            source_id: self.source,
            wap_event_id: wap_event_id.into(),
            event_type: "message.received".into(),
            device_id: None,
            timestamp: OffsetDateTime::now_utc(),
            body: bytes::Bytes::from_static(b"{}"),
            dedupe_id: None,
            keep_days: KEEP,
        };
        let d = NewDelivery {
            id: DeliveryId::from_uuid(delivery),
            ..NewDelivery::due_now(self.dest.tenant, event.id, self.dest.id)
        };
        !ingest::store_events(&self.fx.pool, &[event], &[d], Uuid::nil()).await.unwrap().is_empty()
    }

    /// Finishes a delivery as the dispatcher does, with one attempt minted at `attempt`.
    async fn succeed(&self, delivery: Uuid, attempt: Uuid) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DELETE FROM delivery_queue WHERE delivery_id = '{delivery}'; \
             UPDATE deliveries SET status = 'succeeded' WHERE id = '{delivery}'; \
             INSERT INTO attempts (id, tenant_id, delivery_id, destination_id, number, trigger, started_at, \
               duration_ms, url, outcome, keep_days) VALUES ('{attempt}', '{}', '{delivery}', '{}', 1, 'auto', \
               now(), 5, 'u', 'success', {KEEP})",
            self.dest.tenant.uuid(),
            self.dest.id.uuid()
        )))
        .execute(&self.fx.pool)
        .await
        .unwrap();
    }

    async fn ids(&self, table: &str) -> Vec<(Uuid, i16)> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT id, keep_days FROM {table} ORDER BY id")))
            .fetch_all(&self.fx.pool)
            .await
            .unwrap()
    }

    async fn expired_slices(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM wap_relay_expired_partitions('10 minutes')")
            .fetch_one(&self.fx.pool)
            .await
            .unwrap()
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_sweep_drops_old_slices_and_keeps_pending_deliveries_with_their_events(pool: PgPool) {
    let h = History::new(pool).await;
    let (old_done, old_done_delivery) = (uuid_days_ago(20), uuid_days_ago(20));
    let (old_pending, old_pending_delivery) = (uuid_days_ago(20), uuid_days_ago(20));
    let (recent, recent_delivery) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(h.store(old_done, old_done_delivery, "done").await);
    assert!(h.store(old_pending, old_pending_delivery, "pending").await);
    assert!(h.store(recent, recent_delivery, "recent").await);
    h.succeed(old_done_delivery, uuid_days_ago(20)).await;
    h.succeed(recent_delivery, Uuid::now_v7()).await;
    assert!(h.expired_slices().await > 0, "the fixture has slices past their retention");
    // Past its retention, history is not queued again: its slice may go at any moment.
    let tenant = h.dest.tenant;
    let again = deliveries::redeliver_delivery(&h.fx.pool, tenant, DeliveryId::from_uuid(old_done_delivery));
    assert!(again.await.unwrap().is_none(), "an expired delivery is not redelivered");
    let locked = events::lock_event(&h.fx.pool, tenant, EventId::from_uuid(old_done)).await.unwrap();
    assert!(locked.is_none(), "nor is an expired event");

    relay_dispatcher::retention::sweep(&h.fx.pool).await.unwrap();

    assert_eq!(h.expired_slices().await, 0, "every slice past its retention was dropped");
    let mut events = vec![(old_pending, 0), (recent, KEEP)];
    events.sort();
    assert_eq!(h.ids("events").await, events, "the pending delivery's event moved to class 0");
    let mut deliveries = vec![(old_pending_delivery, 0), (recent_delivery, KEEP)];
    deliveries.sort();
    assert_eq!(h.ids("deliveries").await, deliveries, "and so did the pending delivery");
    assert_eq!(h.ids("attempts").await.len(), 1, "the old attempt went with its slice");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_queue WHERE delivery_id = $1")
        .bind(old_pending_delivery)
        .fetch_one(&h.fx.pool)
        .await
        .unwrap();
    assert_eq!(queued, 1, "the pending delivery is still queued");

    // The dedupe of a dropped event ended with it; the rescued one's holds.
    assert!(h.store(Uuid::now_v7(), Uuid::now_v7(), "done").await, "a dropped eventId is new again");
    assert!(!h.store(Uuid::now_v7(), Uuid::now_v7(), "pending").await, "a kept eventId is a duplicate");
    assert!(!h.store(Uuid::now_v7(), Uuid::now_v7(), "recent").await);

    relay_dispatcher::retention::sweep(&h.fx.pool).await.unwrap();
    assert_eq!(h.ids("events").await.len(), 3, "a second pass keeps what the first kept");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn ingest_goes_on_while_a_slice_is_detached(pool: PgPool) {
    let h = History::new(pool).await;
    for n in 0..50 {
        let delivery = uuid_days_ago(20);
        assert!(h.store(uuid_days_ago(20), delivery, &format!("old{n}")).await);
        h.succeed(delivery, uuid_days_ago(20)).await;
    }
    // A reader that started before the sweep: the detach waits for it to end.
    let mut reader = h.fx.pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM events").execute(&mut *reader).await.unwrap();
    let sweep = tokio::spawn({
        let pool = h.fx.pool.clone();
        async move { relay_dispatcher::retention::sweep(&pool).await.unwrap() }
    });
    wait_for("the detach to wait for the reader", Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE '%DETACH PARTITION%'",
        )
        .fetch_one(&h.fx.pool)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
    for n in 0..20 {
        let stored = tokio::time::timeout(
            Duration::from_secs(10),
            h.store(Uuid::now_v7(), Uuid::now_v7(), &format!("new{n}")),
        )
        .await;
        assert_eq!(stored.ok(), Some(true), "event {n} was stored while the detach waited");
    }
    assert!(!sweep.is_finished(), "the sweep was still waiting while ingest wrote");
    reader.commit().await.unwrap();
    sweep.await.unwrap();
    assert_eq!(h.expired_slices().await, 0);
    assert_eq!(h.ids("events").await.len(), 20, "the old events went with their slice");
}
