//! Safety: SSRF checks at attempt time, disabled destinations waiting and flowing again, leases
//! given back at shutdown, two dispatchers sharing one queue without sending twice, and a killed
//! dispatcher's leases handed back as soon as its heartbeat lapses.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use relay_dispatcher::DispatcherConfig;
use support::*;

const SECOND: Duration = Duration::from_secs(1);

/// A name from /etc/hosts that resolves to loopback without being a name the policy refuses
/// by itself (so only the resolver can catch it).
fn hosts_name_for_loopback() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().filter(|l| l.starts_with("127.")).flat_map(|l| l.split_whitespace().skip(1)).find_map(
        |name| {
            let plain = relay_core::address::check_name(name, false).is_ok() && !name.contains(':');
            plain.then(|| name.to_owned())
        },
    )
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn loopback_destinations_are_blocked_at_attempt_time(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let tenant = fx.tenant(None, None).await;
    let mut urls = vec![
        format!("http://localhost:{port}/"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ];
    let via_resolver = hosts_name_for_loopback();
    if let Some(name) = &via_resolver {
        urls.push(format!("http://{name}:{port}/"));
    } else {
        eprintln!(
            "no plain /etc/hosts name for loopback: the resolver path is covered by the unit test only"
        );
    }
    let mut dests = Vec::new();
    for url in &urls {
        let dest = fx.destination(tenant, DestinationSpec::new(url.clone())).await;
        fx.enqueue(&dest, &[b"{}".to_vec()]).await;
        dests.push(dest);
    }
    let config = DispatcherConfig { allow_private_destinations: false, ..test_config() };
    let running = start(&fx, test_redis(), config);
    for dest in &dests {
        wait_for("the blocked delivery to fail", 10 * SECOND, || async {
            fx.count_status(dest, "failed").await == 1
        })
        .await;
    }
    running.stop().await;

    assert_eq!(receiver.count(), 0, "nothing reached the loopback receiver");
    for (dest, url) in dests.iter().zip(&urls) {
        let outcomes: Vec<String> = fx.attempts(dest).await.into_iter().map(|(_, o, _, _)| o).collect();
        assert_eq!(outcomes, ["blocked"], "{url}");
        let error: Option<String> =
            sqlx::query_scalar("SELECT error FROM attempts WHERE destination_id = $1")
                .bind(dest.id.uuid())
                .fetch_one(&fx.pool)
                .await
                .unwrap();
        let error = error.unwrap();
        assert!(error.contains("not allowed"), "{url}: {error}");
        if via_resolver.as_ref().is_some_and(|name| url.contains(name.as_str())) {
            assert!(error.contains("blocked: the address 127."), "refused by the resolver: {error}");
        }
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_disabled_destination_waits_and_flows_again_when_re_enabled(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(None, None).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    spec.enabled = false;
    let dest = fx.destination(tenant, spec).await;
    fx.enqueue(&dest, &[b"{\"n\":1}".to_vec(), b"{\"n\":2}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    // The barrier: a delivery to an enabled destination of the same tenant, queued after the
    // disabled one's, arrives; rounds have run, and none sent to the disabled destination.
    let enabled = fx.destination(tenant, DestinationSpec::new(receiver.url("/enabled"))).await;
    fx.enqueue(&enabled, &[b"{\"n\":3}".to_vec()]).await;
    wait_for("the enabled destination's delivery", 5 * SECOND, || async { receiver.count() >= 1 }).await;
    assert!(receiver.received().iter().all(|r| r.path == "/enabled"), "nothing sent to the disabled one");
    assert_eq!(fx.count_status(&dest, "pending").await, 2);

    // Re-enabling is just `enabled = true` (what the admin API's PATCH does).
    sqlx::query("UPDATE destinations SET enabled = true, updated_at = now() WHERE id = $1")
        .bind(dest.id.uuid())
        .execute(&fx.pool)
        .await
        .unwrap();
    wait_for("the waiting deliveries", 2 * SECOND, || async {
        fx.count_status(&dest, "succeeded").await == 2
    })
    .await;
    running.stop().await;
    assert_eq!(receiver.count(), 3, "the two waiting deliveries and the barrier, once each");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn shutdown_gives_back_the_leases_of_unfinished_attempts(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.delay = Duration::from_secs(20));
    let tenant = fx.tenant(None, None).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    spec.timeout_ms = 30_000;
    let dest = fx.destination(tenant, spec).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    let config = DispatcherConfig { shutdown_deadline: Duration::from_millis(300), ..test_config() };
    let running = start(&fx, test_redis(), config);
    wait_for("the attempt to be in flight", 10 * SECOND, || async { receiver.count() == 1 }).await;
    let stopping = tokio::time::Instant::now();
    running.stop().await;
    assert!(stopping.elapsed() < 5 * SECOND, "shutdown took {:?}", stopping.elapsed());

    let (status, attempts, leased, due_now): (String, i32, bool, bool) = sqlx::query_as(
        "SELECT d.status, d.attempts, q.lease_token IS NOT NULL, q.due_at <= now() \
         FROM deliveries d JOIN delivery_queue q ON q.tenant_id = d.tenant_id AND q.delivery_id = d.id \
         WHERE d.destination_id = $1",
    )
    .bind(dest.id.uuid())
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts, leased, due_now), ("pending", 0, false, true));
    assert!(fx.attempts(&dest).await.is_empty(), "an abandoned attempt is not recorded as an attempt");

    // Another dispatcher (or this one after a restart) finishes the work at once.
    receiver.script(|s| s.delay = Duration::ZERO);
    let running = start(&fx, test_redis(), test_config());
    wait_for("the delivery to succeed", 10 * SECOND, || async {
        fx.count_status(&dest, "succeeded").await == 1
    })
    .await;
    running.stop().await;
    let webhook_ids: HashSet<String> =
        receiver.received().iter().map(|r| r.header("webhook-id").to_owned()).collect();
    assert_eq!(webhook_ids.len(), 1, "the resend carries the same webhook-id");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn two_dispatchers_share_the_queue_without_sending_twice(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant_a = fx.tenant(Some(1_000), Some(1_000)).await;
    let tenant_b = fx.tenant(Some(1_000), Some(1_000)).await;
    let a1 = fx.destination(tenant_a, DestinationSpec::new(receiver.url("/a1"))).await;
    let a2 = fx.destination(tenant_a, DestinationSpec::new(receiver.url("/a2"))).await;
    let b1 = fx.destination(tenant_b, DestinationSpec::new(receiver.url("/b1"))).await;
    let redis = test_redis();
    let one = start(&fx, redis.clone(), test_config());
    let two = start(&fx, redis, test_config());
    let mut expected = 0;
    for dest in [&a1, &a2, &b1] {
        let bodies: Vec<Vec<u8>> = (0..200).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
        expected += fx.enqueue(dest, &bodies).await.len();
    }
    wait_for("every delivery", 30 * SECOND, || async { receiver.count() >= expected }).await;
    for dest in [&a1, &a2, &b1] {
        wait_for("outcomes recorded", 10 * SECOND, || async {
            fx.count_status(dest, "succeeded").await == 200
        })
        .await;
    }
    one.stop().await;
    two.stop().await;

    let got = receiver.received();
    let distinct: HashSet<(String, String)> =
        got.iter().map(|r| (r.path.clone(), r.header("webhook-id").to_owned())).collect();
    assert_eq!(got.len(), expected, "no delivery sent twice");
    assert_eq!(distinct.len(), expected);
}

/// A dispatcher in a runtime of its own, with its own connections, so that shutting the runtime
/// down kills it the way SIGKILL does: no drain, no lease given back, no goodbye to the fleet.
fn start_killable(fx: &Fixture, redis_prefix: &str, config: DispatcherConfig) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let options = fx.pool.connect_options().as_ref().clone();
    let (key, prefix) = (fx.key.clone(), redis_prefix.to_owned());
    runtime.spawn(async move {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect_lazy_with(options);
        let redis = relay_store::Redis::new("redis://127.0.0.1:6379", &prefix).unwrap();
        relay_dispatcher::run(pool, redis, key, config, std::future::pending()).await
    });
    runtime
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_killed_dispatchers_leases_are_delivered_by_the_other_before_they_end(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.delay = Duration::from_secs(60));
    let tenant = fx.tenant(Some(1_000), Some(1_000)).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    // Each claim's lease covers the timeout plus 15 s: 45 s.
    spec.timeout_ms = 30_000;
    spec.max_in_flight = 20;
    let dest = fx.destination(tenant, spec).await;
    let bodies: Vec<Vec<u8>> = (0..20).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest, &bodies).await;
    let prefix = format!("test:dispatcher:{}:", uuid::Uuid::new_v4().simple());
    let doomed = start_killable(&fx, &prefix, test_config());
    wait_for("the killed one to hold every delivery", 10 * SECOND, || async { receiver.count() == 20 }).await;
    let other =
        start(&fx, relay_store::Redis::new("redis://127.0.0.1:6379", &prefix).unwrap(), test_config());
    receiver.script(|s| s.delay = Duration::ZERO);

    doomed.shutdown_background();
    // Its heartbeat lapses within 5 s; the leases would last 45 s.
    wait_for("the other to deliver every leased delivery", 20 * SECOND, || async {
        fx.count_status(&dest, "succeeded").await == 20
    })
    .await;
    other.stop().await;
    let delivered: HashSet<String> =
        receiver.received().iter().skip(20).map(|r| r.header("webhook-id").to_owned()).collect();
    assert_eq!(delivered.len(), 20, "each leased delivery sent again, once");
}
