//! The head rule against the real database: what a claim may take of an ordered destination's
//! queue, through leases, retries, a lease that ends, success and redelivery.

use relay_core::plan::Plan;
use relay_core::vocab::DeliveryOrdering;
use relay_core::{AttemptId, DeliveryId, DestinationId, EventId, SourceId, TenantId};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::deliveries::{NewDelivery, insert_deliveries, redeliver_delivery};
use crate::destinations::{NewDestination, insert_destination};
use crate::dispatch::{ClaimRequest, ClaimedDelivery, Trigger, claim_deliveries, list_due_destinations};
use crate::events::{NewEvent, insert_events};
use crate::outcomes::{AttemptOutcome, AttemptRecord, NextState, record_attempts};

mod parked;

struct Queue {
    pool: PgPool,
    tenant: TenantId,
    destination: DestinationId,
}

impl Queue {
    async fn new(pool: PgPool, ordering: DeliveryOrdering) -> Self {
        let tenant = crate::tenants::insert_tenant(&pool, "acme", Plan::Pro).await.unwrap().id;
        let new = NewDestination {
            tenant_id: tenant,
            url: "https://example.com/hook".into(),
            description: None,
            source_ids: None,
            event_types: vec!["*".into()],
            device_ids: None,
            headers: Default::default(),
            enabled: true,
            paused: false,
            replay_on_recovery: false,
            format: "waping".into(),
            meta_context: None,
            ordering,
            timeout_ms: 1_000,
            rate_limit_per_second: None,
            max_in_flight: 16,
            initial_delay_ms: 100,
            max_delay_ms: 1_000,
            window_seconds: 3_600,
            signing_secret: vec![0; 8],
        };
        let destination = DestinationId::from_uuid(insert_destination(&pool, &new).await.unwrap().id);
        Self { pool, tenant, destination }
    }

    /// Queues one delivery per device (`None`: an event without deviceId), in this order; keys
    /// are given as ingest's fan-out gives them. Returns the delivery ids.
    async fn push(&self, ordering: DeliveryOrdering, devices: &[Option<&str>]) -> Vec<DeliveryId> {
        let mut ids = Vec::new();
        for (i, device) in devices.iter().enumerate() {
            let event = NewEvent {
                id: EventId::new(),
                tenant_id: self.tenant,
                source_id: SourceId::new(),
                wap_event_id: format!("e{i}"),
                event_type: "message.received".into(),
                device_id: device.map(str::to_owned),
                timestamp: OffsetDateTime::now_utc(),
                body: bytes::Bytes::from_static(b"{}"),
                dedupe_id: None,
                keep_days: 0,
            };
            insert_events(&self.pool, std::slice::from_ref(&event)).await.unwrap();
            let d = NewDelivery {
                device_key: ordering.device_key(*device).map(str::to_owned),
                ..NewDelivery::due_now(self.tenant, event.id, self.destination)
            };
            ids.push(d.id);
            insert_deliveries(&self.pool, &[d]).await.unwrap();
        }
        ids
    }

    async fn claim(&self) -> Vec<ClaimedDelivery> {
        let request = ClaimRequest { destination_id: self.destination, count: 100, lease_ms: 60_000 };
        claim_deliveries(&self.pool, &[request], Uuid::now_v7()).await.unwrap()
    }

    async fn due(&self) -> u32 {
        let due = list_due_destinations(&self.pool, 100, &[], &[]).await.unwrap();
        due.iter().map(|d| d.due).sum()
    }

    async fn record(&self, c: &ClaimedDelivery, next: NextState) {
        let record = AttemptRecord {
            id: AttemptId::new(),
            delivery_id: c.id,
            tenant_id: c.tenant_id,
            destination_id: c.destination_id,
            lease_token: c.lease_token,
            number: c.number,
            trigger: Trigger::Auto,
            started_at: OffsetDateTime::now_utc(),
            duration_ms: 1,
            url: "https://example.com/hook".into(),
            outcome: if next == NextState::Succeeded {
                AttemptOutcome::Success
            } else {
                AttemptOutcome::HttpError
            },
            status_code: Some(if next == NextState::Succeeded { 200 } else { 500 }),
            response_headers: None,
            response_body: None,
            error: None,
            next,
            gone: false,
            known_failing_since: None,
        };
        let done =
            record_attempts(&self.pool, &[record], std::time::Duration::from_secs(3600)).await.unwrap();
        assert_eq!(done.applied, 1);
    }

    /// What a crashed holder leaves: its lease ends and the row is due again.
    async fn end_lease(&self, id: DeliveryId) {
        sqlx::query("UPDATE delivery_queue SET due_at = now() - interval '1 second' WHERE delivery_id = $1")
            .bind(id.uuid())
            .execute(&self.pool)
            .await
            .unwrap();
    }
}

fn ids(claimed: &[ClaimedDelivery]) -> Vec<DeliveryId> {
    let mut ids: Vec<DeliveryId> = claimed.iter().map(|c| c.id).collect();
    ids.sort_by_key(|id| id.uuid());
    ids
}

#[sqlx::test(migrator = "crate::db::MIGRATOR")]
async fn a_device_is_attempted_one_delivery_at_a_time_in_acceptance_order(pool: PgPool) {
    let per_device = DeliveryOrdering::PerDevice;
    let q = Queue::new(pool, per_device).await;
    let d = q.push(per_device, &[Some("a"), Some("a"), Some("b"), None, Some("a"), None]).await;
    let (a1, a2, b1, n1, a3, n2) = (d[0], d[1], d[2], d[3], d[4], d[5]);

    // One claim takes every device's head and every unordered row, nothing behind a head.
    assert_eq!(q.due().await, 4, "the due count leaves held rows out");
    let first = q.claim().await;
    assert_eq!(ids(&first), [a1, b1, n1, n2]);
    assert!(q.claim().await.is_empty(), "a leased head holds its device");
    assert_eq!(q.due().await, 0);

    // A retrying head holds its device back; a lease that ends makes the head due, not the next.
    let head = first.iter().find(|c| c.id == a1).unwrap();
    let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
    q.record(head, NextState::Retry(later)).await;
    assert!(q.claim().await.is_empty(), "a2 waits while a1 is retrying");
    q.end_lease(a1).await;
    let again = q.claim().await;
    assert_eq!(ids(&again), [a1]);
    q.end_lease(a1).await;
    let again = q.claim().await;
    assert_eq!(ids(&again), [a1], "a crashed holder's head is claimed again, still alone");

    // Success (or failure) passes the turn to the next by acceptance order.
    q.record(&again[0], NextState::Succeeded).await;
    let next = q.claim().await;
    assert_eq!(ids(&next), [a2]);

    // A redelivered a1 takes its place by id: after the attempt in flight, ahead of a3.
    redeliver_delivery(&q.pool, q.tenant, a1).await.unwrap().unwrap();
    assert!(q.claim().await.is_empty(), "not while a2 is in flight");
    q.record(&next[0], NextState::Failed).await;
    assert_eq!(ids(&q.claim().await), [a1]);
    let _ = a3;
}

#[sqlx::test(migrator = "crate::db::MIGRATOR")]
async fn unordered_destinations_claim_as_before(pool: PgPool) {
    let none = DeliveryOrdering::None;
    let q = Queue::new(pool, none).await;
    let d = q.push(none, &[Some("a"), Some("a"), Some("a")]).await;
    let keys: Vec<Option<String>> =
        sqlx::query_scalar("SELECT device_key FROM delivery_queue").fetch_all(&q.pool).await.unwrap();
    assert!(keys.iter().all(Option::is_none), "no key without ordering");
    assert_eq!(ids(&q.claim().await), d);
}

#[sqlx::test(migrator = "crate::db::MIGRATOR")]
async fn changing_the_ordering_rekeys_what_is_queued(pool: PgPool) {
    let q = Queue::new(pool, DeliveryOrdering::None).await;
    let d = q.push(DeliveryOrdering::None, &[Some("a"), Some("a"), None]).await;
    let mut tx = q.pool.begin().await.unwrap();
    crate::destinations::rekey_queued(&mut *tx, q.tenant, q.destination, DeliveryOrdering::PerDevice)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&q.claim().await), [d[0], d[2]], "held from now on");
    crate::destinations::rekey_queued(&q.pool, q.tenant, q.destination, DeliveryOrdering::None)
        .await
        .unwrap();
    assert_eq!(ids(&q.claim().await), [d[1]], "and freed again");
}
