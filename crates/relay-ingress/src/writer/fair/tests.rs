//! The fair queue's rules, on plain items.

use super::*;

#[derive(Debug)]
struct Item {
    tenant: TenantId,
    bytes: usize,
    at: Instant,
}

impl Queued for Item {
    fn tenant(&self) -> TenantId {
        self.tenant
    }
    fn bytes(&self) -> usize {
        self.bytes
    }
    fn queued_at(&self) -> Instant {
        self.at
    }
}

fn item(tenant: TenantId, bytes: usize) -> Item {
    Item { tenant, bytes, at: Instant::now() }
}

const BOUNDS: Bounds = Bounds {
    queue: 10,
    queue_bytes: 1_000,
    max_wait: Duration::from_secs(60),
    max_batch: 6,
    max_batch_bytes: 600,
    tenant_batch_bytes: 250,
};

#[test]
fn a_tenant_alone_uses_the_whole_queue_and_a_flooder_is_refused_not_the_others() {
    let (a, b) = (TenantId::new(), TenantId::new());
    let mut q = FairQueue::default();
    for _ in 0..10 {
        assert!(q.push(item(a, 10), &BOUNDS).is_ok());
    }
    assert!(matches!(q.push(item(a, 10), &BOUNDS), Err((Full::OverShare, _))), "the queue is full");
    // B holds nothing: it is let in, up to an equal share.
    for _ in 0..10 {
        assert!(q.push(item(b, 10), &BOUNDS).is_ok());
    }
    assert!(matches!(q.push(item(b, 10), &BOUNDS), Err((Full::OverShare, _))), "now B holds its share");
    assert!(q.push(item(a, 10), &BOUNDS).is_err());
}

#[test]
fn big_bodies_count_against_their_tenant_only() {
    let (a, b) = (TenantId::new(), TenantId::new());
    let mut q = FairQueue::default();
    assert!(q.push(item(a, 900), &BOUNDS).is_ok());
    assert!(q.push(item(a, 900), &BOUNDS).is_err(), "past the byte bound, A holds it all");
    assert!(q.push(item(b, 50), &BOUNDS).is_ok(), "B is below its share");
    assert!(q.push(item(b, 50), &BOUNDS).is_ok());
}

#[test]
fn a_tenant_whose_oldest_request_waited_too_long_is_refused_alone() {
    let (a, b) = (TenantId::new(), TenantId::new());
    let mut q = FairQueue::default();
    let old = Instant::now().checked_sub(Duration::from_secs(61)).unwrap();
    assert!(q.push(Item { tenant: a, bytes: 1, at: old }, &BOUNDS).is_ok());
    assert!(matches!(q.push(item(a, 1), &BOUNDS), Err((Full::Behind, _))));
    assert!(q.push(item(b, 1), &BOUNDS).is_ok());
}

#[test]
fn batches_take_tenants_in_turn_and_bound_each_tenants_bytes() {
    let (a, b, c) = (TenantId::new(), TenantId::new(), TenantId::new());
    let mut q = FairQueue::default();
    for _ in 0..3 {
        q.push(item(a, 200), &BOUNDS).unwrap();
    }
    for _ in 0..4 {
        q.push(item(b, 10), &BOUNDS).unwrap();
    }
    q.push(item(c, 10), &BOUNDS).unwrap();
    // A gives one 200-byte body (a second would pass its 250 per batch), B and C give in turn.
    let batch = q.take_batch(&BOUNDS);
    let tenants: Vec<TenantId> = batch.iter().map(|i| i.tenant).collect();
    assert_eq!(tenants, [a, b, c, b, b, b]);
    // The next batch starts with B's turn (the one after A's), and A's next body.
    let batch = q.take_batch(&BOUNDS);
    let tenants: Vec<TenantId> = batch.iter().map(|i| i.tenant).collect();
    assert_eq!(tenants, [a]);
    let batch = q.take_batch(&BOUNDS);
    assert_eq!(batch.len(), 1);
    assert!(q.take_batch(&BOUNDS).is_empty(), "all taken");
}
