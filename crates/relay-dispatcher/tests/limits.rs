//! Throughput limits and fairness: the shared GCRA limiter in Redis, a tenant limited to 5/s,
//! one tenant's huge backlog not delaying another's, per-destination limits, and delivery going
//! on while Redis is down; `max_in_flight` across two dispatchers.

mod support;

use std::time::Duration;

use relay_core::{DestinationId, TenantId};
use relay_store::limiter::{DestinationAsk, TenantAsk, acquire, give_back};
use support::*;

const SECOND: Duration = Duration::from_secs(1);

fn ask(tenant: TenantId, rate: u32, burst: u32, dests: &[(DestinationId, u32, Option<u32>)]) -> TenantAsk {
    TenantAsk {
        tenant,
        rate_per_second: rate,
        burst,
        destinations: dests
            .iter()
            .map(|&(destination, count, rate_per_second)| DestinationAsk {
                destination,
                count,
                rate_per_second,
            })
            .collect(),
    }
}

#[tokio::test]
async fn the_redis_script_grants_the_burst_shares_it_and_takes_refunds() {
    let redis = test_redis();
    let (t, d1, d2) = (TenantId::new(), DestinationId::new(), DestinationId::new());
    let grants = acquire(&redis, &[ask(t, 5, 5, &[(d1, 10, None), (d2, 10, None)])]).await.unwrap();
    assert_eq!(grants[0].granted, [3, 2], "the burst, round-robin over destinations");
    let wait = grants[0].tenant_wait;
    assert!(wait > Duration::from_millis(150) && wait <= Duration::from_millis(200), "{wait:?}");
    let again = acquire(&redis, &[ask(t, 5, 5, &[(d1, 1, None)])]).await.unwrap();
    assert_eq!(again[0].granted, [0]);
    give_back(&redis, &[ask(t, 5, 5, &[(d1, 2, None)])]).await;
    let refunded = acquire(&redis, &[ask(t, 5, 5, &[(d1, 5, None)])]).await.unwrap();
    assert_eq!(refunded[0].granted, [2]);
    // A destination's own limit (burst = one second's worth) caps it within the tenant's.
    let other = TenantId::new();
    let capped = acquire(&redis, &[ask(other, 100, 100, &[(d2, 10, Some(3)), (d1, 4, None)])]).await.unwrap();
    assert_eq!(capped[0].granted, [3, 4]);
    assert!(capped[0].destination_wait[0] > Duration::ZERO);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_tenant_limited_to_five_per_second_is_spread_not_dropped(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(Some(5), Some(5)).await;
    let dest = fx.destination(tenant, DestinationSpec::new(receiver.url("/"))).await;
    let bodies: Vec<Vec<u8>> = (0..40).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest, &bodies).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("all 40 deliveries", 20 * SECOND, || async { fx.count_status(&dest, "succeeded").await == 40 })
        .await;
    running.stop().await;

    let got = receiver.received();
    assert_eq!(got.len(), 40, "each event once");
    let spread = got.last().unwrap().at - got[0].at;
    assert!(spread >= Duration::from_millis(6_500), "spread over {spread:?}");
    assert!(fx.deliveries(&dest).await.iter().all(|(_, attempts)| *attempts == 1));
    assert_eq!(fx.attempts(&dest).await.len(), 40, "deferrals are not attempts");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_tenant_at_its_limit_does_not_delay_another(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver_a = Receiver::start().await;
    let receiver_b = Receiver::start().await;
    let tenant_a = fx.tenant(Some(5), Some(5)).await;
    let tenant_b = fx.tenant(None, None).await;
    let dest_a = fx.destination(tenant_a, DestinationSpec::new(receiver_a.url("/"))).await;
    let dest_b = fx.destination(tenant_b, DestinationSpec::new(receiver_b.url("/"))).await;
    let backlog: Vec<Vec<u8>> = (0..5_000).map(|i| format!("{{\"a\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest_a, &backlog).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("tenant A to be at its limit", 10 * SECOND, || async { receiver_a.count() >= 5 }).await;

    let bodies: Vec<Vec<u8>> = (0..20).map(|i| format!("{{\"b\":{i}}}").into_bytes()).collect();
    let queued = tokio::time::Instant::now();
    fx.enqueue(&dest_b, &bodies).await;
    wait_for("tenant B's 20 events", 2 * SECOND, || async { receiver_b.count() == 20 }).await;
    let took = queued.elapsed();
    running.stop().await;

    assert!(took < 2 * SECOND, "tenant B waited {took:?}");
    // Tenant A stayed within 5/s with a burst of 5 all along.
    let a = receiver_a.received();
    let span = (a.last().unwrap().at - a[0].at).as_secs_f64();
    assert!(a.len() as f64 <= 5.0 + 5.0 * span + 1.0, "{} to A over {span:.2}s", a.len());
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_destination_rate_limit_spreads_its_attempts(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(None, None).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    spec.rate_limit_per_second = Some(4);
    spec.max_in_flight = 2;
    let dest = fx.destination(tenant, spec).await;
    let bodies: Vec<Vec<u8>> = (0..12).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest, &bodies).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("all 12 deliveries", 15 * SECOND, || async { fx.count_status(&dest, "succeeded").await == 12 })
        .await;
    running.stop().await;

    let got = receiver.received();
    assert_eq!(got.len(), 12);
    // A burst of 4, then 4/s: the last 8 take at least 1.75 s.
    let spread = got.last().unwrap().at - got[0].at;
    assert!(spread >= Duration::from_millis(1_750), "spread over {spread:?}");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn delivery_goes_on_while_redis_is_down(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(Some(20), Some(10)).await;
    let dest = fx.destination(tenant, DestinationSpec::new(receiver.url("/"))).await;
    let bodies: Vec<Vec<u8>> = (0..30).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest, &bodies).await;
    let running = start(&fx, dead_redis(), test_config());
    wait_for("all 30 deliveries", 15 * SECOND, || async { fx.count_status(&dest, "succeeded").await == 30 })
        .await;
    running.stop().await;

    let got = receiver.received();
    assert_eq!(got.len(), 30);
    // The local limiter still holds the tenant to its rate: 10 at once, then 20/s.
    let spread = got.last().unwrap().at - got[0].at;
    assert!(spread >= Duration::from_millis(900), "spread over {spread:?}");
}

/// `max_in_flight` is a limit on the destination, not on each process: two dispatchers sharing
/// one Redis never have more than one request at a time at a destination that allows one, and
/// every delivery still goes through.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn max_in_flight_holds_across_two_dispatchers(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.delay = SECOND);
    let tenant = fx.tenant(None, None).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    spec.max_in_flight = 1;
    let dest = fx.destination(tenant, spec).await;
    let redis = test_redis();
    let one = start(&fx, redis.clone(), test_config());
    let two = start(&fx, redis, test_config());
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest, &bodies).await;
    wait_for("all 5 deliveries", 30 * SECOND, || async { fx.count_status(&dest, "succeeded").await == 5 })
        .await;
    one.stop().await;
    two.stop().await;

    assert_eq!(receiver.count(), 5, "each delivery once");
    assert_eq!(receiver.peak_concurrency(), 1, "never two requests at once");
}

/// A tenant whose endpoints answer only after its timeout holds at most half of a dispatcher's
/// slots, however many its destinations may hold (CONTRACT §10): another tenant's
/// deliveries go at once instead of waiting for the slow attempts to time out.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn slow_endpoints_use_up_only_their_own_tenants_share_of_slots(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let slow = Receiver::start().await;
    slow.script(|s| s.delay = Duration::from_secs(60));
    let fast = Receiver::start().await;
    let (a, b) = (fx.tenant(None, None).await, fx.tenant(None, None).await);
    let mut slow_dests = Vec::new();
    for i in 0..2 {
        let mut spec = DestinationSpec::new(slow.url(&format!("/slow{i}")));
        spec.timeout_ms = 30_000;
        spec.max_in_flight = 16;
        slow_dests.push(fx.destination(a, spec).await);
    }
    let body = br#"{"eventId":"e","type":"message.received","timestamp":"2026-04-03T12:00:00Z"}"#.to_vec();
    for dest in &slow_dests {
        fx.enqueue(dest, &vec![body.clone(); 40]).await;
    }
    let config = relay_dispatcher::DispatcherConfig { concurrency: 16, ..test_config() };
    let running = start(&fx, test_redis(), config);
    // A's attempts take every slot they may: 8 of 16.
    wait_for("the slow tenant to hold its share", 10 * SECOND, || async { slow.count() >= 8 }).await;

    let fast_dest = fx.destination(b, DestinationSpec::new(fast.url("/b"))).await;
    fx.enqueue(&fast_dest, &vec![body; 20]).await;
    wait_for("the other tenant's deliveries, long before a slow attempt times out", 10 * SECOND, || async {
        fx.count_status(&fast_dest, "succeeded").await == 20
    })
    .await;
    assert_eq!(slow.count(), 8, "the slow tenant never held more than its share");
    running.stop().await;
}
