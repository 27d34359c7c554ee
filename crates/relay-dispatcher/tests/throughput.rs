//! A saturation measurement, not a pass/fail check of speed: 20,000 queued deliveries over four
//! destinations of one unthrottled tenant, delivered to a local receiver. Run it on purpose:
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo test --release -p relay-dispatcher --test throughput -- --ignored --nocapture
//! ```

mod support;

use std::time::Duration;

use support::*;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
#[ignore = "a measurement; run with --ignored --release"]
async fn delivers_a_queued_backlog_at_saturation(pool: relay_store::PgPool) {
    const PER_DESTINATION: usize = 5_000;
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(Some(1_000_000), Some(1_000_000)).await;
    let mut dests = Vec::new();
    for i in 0..4 {
        let mut spec = DestinationSpec::new(receiver.url(&format!("/d{i}")));
        spec.max_in_flight = 128;
        dests.push(fx.destination(tenant, spec).await);
    }
    let body = br#"{"eventId":"evt","type":"message.received","timestamp":"2026-04-03T12:00:00Z","message":{"body":"hello"}}"#;
    for dest in &dests {
        fx.enqueue(dest, &vec![body.to_vec(); PER_DESTINATION]).await;
    }
    let total = PER_DESTINATION * dests.len();
    let config = relay_dispatcher::DispatcherConfig { concurrency: 512, batch_size: 500, ..test_config() };
    let started = tokio::time::Instant::now();
    let running = start(&fx, test_redis(), config);
    wait_for("every delivery recorded", Duration::from_secs(300), || async {
        let mut done = 0;
        for dest in &dests {
            done += fx.count_status(dest, "succeeded").await;
        }
        done as usize == total
    })
    .await;
    let took = started.elapsed();
    running.stop().await;
    assert_eq!(receiver.count(), total);
    println!("{total} deliveries in {took:.2?}: {:.0} deliveries/s", total as f64 / took.as_secs_f64());
}
