//! Held deliveries are parked (CONTRACT §10): a device with thousands of held deliveries costs the
//! due count and the claim its head, not its backlog; the next row gets its turn when the head
//! leaves, and a head left parked by a race is repaired.

use relay_core::vocab::DeliveryOrdering;
use relay_core::{DeliveryId, EventId, SourceId};
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Queue, ids};
use crate::deliveries::{NewDelivery, insert_deliveries};
use crate::events::{NewEvent, insert_events};
use crate::outcomes::NextState;

const HELD: usize = 3_000;

impl Queue {
    /// Queues `n` deliveries of device `device` in one statement (as one ingest batch does).
    async fn push_many(&self, device: &str, n: usize) -> Vec<DeliveryId> {
        let source = SourceId::new();
        let events: Vec<NewEvent> = (0..n)
            .map(|i| NewEvent {
                id: EventId::new(),
                tenant_id: self.tenant,
                source_id: source,
                wap_event_id: format!("{device}-{i}"),
                event_type: "message.received".into(),
                device_id: Some(device.into()),
                timestamp: OffsetDateTime::now_utc(),
                body: bytes::Bytes::from_static(b"{}"),
                dedupe_id: None,
                keep_days: 0,
            })
            .collect();
        insert_events(&self.pool, &events).await.unwrap();
        let deliveries: Vec<NewDelivery> = events
            .iter()
            .map(|e| NewDelivery {
                device_key: Some(device.into()),
                ..NewDelivery::due_now(self.tenant, e.id, self.destination)
            })
            .collect();
        insert_deliveries(&self.pool, &deliveries).await.unwrap();
        deliveries.iter().map(|d| d.id).collect()
    }

    /// The Postgres buffers one run of the due count and of the claim touch (EXPLAIN ANALYZE in
    /// a transaction that is rolled back, so nothing is claimed).
    async fn buffers(&self) -> (u64, u64) {
        let mut tx = self.pool.begin().await.unwrap();
        let explain =
            |sql: String| sqlx::AssertSqlSafe(format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"));
        let due: Value = sqlx::query_scalar(explain(crate::dispatch::due_sql()))
            .bind(100_i64)
            .bind(Vec::<Uuid>::new())
            .bind(Vec::<Uuid>::new())
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let claim: Value = sqlx::query_scalar(explain(crate::dispatch::claim_sql()))
            .bind(vec![self.destination.uuid()])
            .bind(vec![100_i32])
            .bind(vec![60_000_i64])
            .bind(Uuid::now_v7())
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        (touched(&due), touched(&claim))
    }
}

/// Shared buffers hit or read by a plan (its top node counts its children's).
fn touched(explain: &Value) -> u64 {
    let plan = &explain[0]["Plan"];
    ["Shared Hit Blocks", "Shared Read Blocks"].iter().map(|k| plan[k].as_u64().unwrap()).sum()
}

async fn due_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM delivery_queue WHERE due_at <= now()")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "crate::db::MIGRATOR")]
async fn a_device_with_thousands_held_costs_the_claim_its_head(pool: PgPool) {
    let per_device = DeliveryOrdering::PerDevice;
    let q = Queue::new(pool, per_device).await;
    let d = q.push_many("busy", HELD).await;
    q.push(per_device, &[Some("quiet")]).await;
    sqlx::query("ANALYZE delivery_queue").execute(&q.pool).await.unwrap();

    assert_eq!(due_rows(&q.pool).await, 2, "only each device's head is due");
    assert_eq!(q.due().await, 2);
    let (due, claim) = q.buffers().await;
    assert!(due < 1_000 && claim < 1_000, "held rows are not visited: due {due}, claim {claim} buffers");

    // The same queue with every row due (how held rows were kept before they were parked): the
    // same statements visit every held row, so the figures above do measure the held rows' cost.
    sqlx::query("UPDATE delivery_queue SET due_at = now() - interval '1 second'")
        .execute(&q.pool)
        .await
        .unwrap();
    let (due_unparked, claim_unparked) = q.buffers().await;
    assert!(
        due_unparked > 10 * due && claim_unparked > 10 * claim,
        "unparked: due {due_unparked}, claim {claim_unparked} buffers against {due}, {claim}"
    );
    sqlx::query(
        "UPDATE delivery_queue SET due_at = 'infinity' WHERE device_key = 'busy' AND delivery_id <> $1",
    )
    .bind(d[0].uuid())
    .execute(&q.pool)
    .await
    .unwrap();

    // The head's success gives the next its turn, and only the next.
    let first = q.claim().await;
    assert_eq!(first.len(), 2);
    let head = first.iter().find(|c| c.id == d[0]).unwrap();
    q.record(head, NextState::Succeeded).await;
    assert_eq!(ids(&q.claim().await), [d[1]]);
    assert_eq!(due_rows(&q.pool).await, 0, "d[1] is leased, the rest parked");
}

#[sqlx::test(migrator = "crate::db::MIGRATOR")]
async fn a_failed_head_and_a_redelivery_keep_the_order_with_parked_rows(pool: PgPool) {
    let per_device = DeliveryOrdering::PerDevice;
    let q = Queue::new(pool, per_device).await;
    let d = q.push_many("a", 4).await;
    let first = q.claim().await;
    assert_eq!(ids(&first), [d[0]]);
    q.record(&first[0], NextState::Failed).await;
    let second = q.claim().await;
    assert_eq!(ids(&second), [d[1]], "a failure passes the turn on");

    // d[0] redelivered while d[1] is in flight: it goes next (by id), before d[2].
    crate::deliveries::redeliver_delivery(&q.pool, q.tenant, d[0]).await.unwrap().unwrap();
    assert!(q.claim().await.is_empty());
    q.record(&second[0], NextState::Succeeded).await;
    let third = q.claim().await;
    assert_eq!(ids(&third), [d[0]]);
    q.record(&third[0], NextState::Succeeded).await;
    assert_eq!(ids(&q.claim().await), [d[2]]);
}

#[sqlx::test(migrator = "crate::db::MIGRATOR")]
async fn a_head_left_parked_by_a_race_is_repaired(pool: PgPool) {
    let per_device = DeliveryOrdering::PerDevice;
    let q = Queue::new(pool, per_device).await;
    let a = q.push_many("a", 3).await;
    let b = q.push_many("b", 2).await;
    // What a queueing transaction racing its predecessor's removal leaves: every row parked.
    sqlx::query("UPDATE delivery_queue SET due_at = 'infinity'").execute(&q.pool).await.unwrap();
    assert!(q.claim().await.is_empty());

    // One device per pass: the cursor walks the devices, and a full walk repairs both.
    let (fixed, cursor) = super::super::repair_heads(&q.pool, None, 1).await.unwrap();
    assert_eq!(fixed, 1);
    let cursor = cursor.expect("a device is left to look at");
    let (fixed, cursor) = super::super::repair_heads(&q.pool, Some(&cursor), 1).await.unwrap();
    assert_eq!(fixed, 1);
    let (fixed, cursor) = super::super::repair_heads(&q.pool, cursor.as_ref(), 1).await.unwrap();
    assert_eq!((fixed, cursor), (0, None), "the walk is over");
    assert_eq!(ids(&q.claim().await), [a[0], b[0]], "each device's first row, nothing behind it");
    let (fixed, _) = super::super::repair_heads(&q.pool, None, 100).await.unwrap();
    assert_eq!(fixed, 0, "a head in flight is not parked");
}

#[sqlx::test(migrator = "crate::db::MIGRATOR")]
async fn changing_the_ordering_parks_and_frees_what_is_queued(pool: PgPool) {
    let q = Queue::new(pool, DeliveryOrdering::None).await;
    q.push(DeliveryOrdering::None, &[Some("a"), Some("a"), Some("a"), None]).await;
    crate::destinations::rekey_queued(&q.pool, q.tenant, q.destination, DeliveryOrdering::PerDevice)
        .await
        .unwrap();
    assert_eq!(due_rows(&q.pool).await, 2, "a's first and the unkeyed row");
    crate::destinations::rekey_queued(&q.pool, q.tenant, q.destination, DeliveryOrdering::None)
        .await
        .unwrap();
    assert_eq!(due_rows(&q.pool).await, 4, "all free again");
}

/// The figures of CONTRACT §10's claim target, printed: EXPLAIN ANALYZE of the due count and the
/// claim with 1,000,000 parked deliveries of one device (queued as ingest parks them) beside
/// another tenant's destination with 100 due rows. A measurement, run on purpose:
///
/// ```text
/// DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
///   cargo test -p relay-store --lib explain_with_a_million_held -- --ignored --nocapture
/// ```
#[sqlx::test(migrator = "crate::db::MIGRATOR")]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn explain_with_a_million_held(pool: PgPool) {
    let q = Queue::new(pool, DeliveryOrdering::PerDevice).await;
    let other = Queue::new(q.pool.clone(), DeliveryOrdering::None).await;
    other.push(DeliveryOrdering::None, &vec![None; 100]).await;
    // The rows as ingest queues them: the first due, every later one parked behind it.
    sqlx::query(
        "INSERT INTO delivery_queue (tenant_id, delivery_id, destination_id, event_id, due_at, started, \
           window_started_at, keep_days, device_key) \
         SELECT $1, ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, $2, gen_random_uuid(), \
           CASE WHEN i = 1 THEN now() ELSE 'infinity' END, 0, now(), 0, 'dev_1' \
         FROM generate_series(1, 1000000) i",
    )
    .bind(q.tenant.uuid())
    .bind(q.destination.uuid())
    .execute(&q.pool)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE delivery_queue").execute(&q.pool).await.unwrap();
    let mut tx = q.pool.begin().await.unwrap();
    let explain = |sql: String| sqlx::AssertSqlSafe(format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"));
    let due: Vec<String> = sqlx::query_scalar(explain(crate::dispatch::due_sql()))
        .bind(100_i64)
        .bind(Vec::<Uuid>::new())
        .bind(Vec::<Uuid>::new())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let claim: Vec<String> = sqlx::query_scalar(explain(crate::dispatch::claim_sql()))
        .bind(vec![q.destination.uuid(), other.destination.uuid()])
        .bind(vec![100_i32, 100])
        .bind(vec![60_000_i64, 60_000])
        .bind(Uuid::now_v7())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    println!("due count, 1,000,000 held:\n{}\n\nclaim:\n{}", due.join("\n"), claim.join("\n"));
}
