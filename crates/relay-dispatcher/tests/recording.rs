//! Recording outcomes while the database is slow, and the rhythm of rounds: claims pause while
//! the recorder is behind (so outcomes are recorded within their leases and nothing is sent
//! twice), several batches are written at once, and a round that claimed work is followed by
//! another at once rather than at the next poll.
//!
//! A slow database is made for real: a transaction holds `LOCK TABLE attempts IN EXCLUSIVE MODE`,
//! which makes every recording statement wait while claims (which never touch `attempts`) go on.

mod support;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use support::*;

const SECOND: Duration = Duration::from_secs(1);
/// The recorder's writers (`recorder::WRITERS`).
const WRITERS: i64 = 2;

async fn recorders_waiting(fx: &Fixture) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO attempts%'",
    )
    .fetch_one(&fx.pool)
    .await
    .unwrap()
}

async fn leased(fx: &Fixture, dest: &Dest) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM delivery_queue WHERE destination_id = $1 AND lease_token IS NOT NULL",
    )
    .bind(dest.id.uuid())
    .fetch_one(&fx.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn claims_pause_while_recording_is_behind_and_nothing_is_sent_twice(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // A pool as large as production's: the test pool's 5 connections would all be taken by the
    // stuck writers and the lock.
    let fx = Fixture::new(pool.max_connections(16).connect_with(connect).await.unwrap());
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(Some(1_000_000), Some(1_000_000)).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    spec.max_in_flight = 100;
    let dest = fx.destination(tenant, spec).await;
    let config = relay_dispatcher::DispatcherConfig { concurrency: 32, batch_size: 10, ..test_config() };
    // The most rows this process may hold claimed but unrecorded: every slot busy, plus the
    // recorder's allowance of a batch per writer.
    let bound = config.concurrency + WRITERS as usize * config.batch_size as usize;

    let mut slow = fx.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE attempts IN EXCLUSIVE MODE").execute(&mut *slow).await.unwrap();
    let bodies: Vec<Vec<u8>> = (0..600).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest, &bodies).await;
    let running = start(&fx, test_redis(), config.clone());

    // Every writer is stuck on a batch at once, and every claimed row has been sent; the claims
    // must stay within the bound all along, and stop: the state has to hold on 10 polls in a
    // row (a dispatcher that kept claiming would move on between them).
    let steady = std::cell::Cell::new(0);
    wait_for("every writer waiting and claims stopped", 10 * SECOND, || async {
        let sent = receiver.count();
        assert!(sent <= bound, "{sent} rows claimed while recording was stuck (bound {bound})");
        let still = recorders_waiting(&fx).await == WRITERS && leased(&fx, &dest).await == sent as i64;
        steady.set(if still { steady.get() + 1 } else { 0 });
        steady.get() >= 10
    })
    .await;
    assert_eq!(fx.count_status(&dest, "succeeded").await, 0, "nothing recorded yet");

    slow.rollback().await.unwrap();
    wait_for("all 600 deliveries", 20 * SECOND, || async {
        fx.count_status(&dest, "succeeded").await == 600
    })
    .await;
    running.stop().await;
    assert_eq!(receiver.count(), 600, "each event sent once");
    assert!(fx.deliveries(&dest).await.iter().all(|(_, attempts)| *attempts == 1));
    assert_eq!(fx.attempts(&dest).await.len(), 600);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_round_that_claimed_work_is_followed_by_another_at_once(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(Some(1_000_000), Some(1_000_000)).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    spec.max_in_flight = 100;
    let dest = fx.destination(tenant, spec).await;
    // Rounds of 10 rows, no polling to fall back on: only the loop itself can take the next
    // batch. The burst of wake-ups after the backlog is queued coalesces into few rounds.
    let config = relay_dispatcher::DispatcherConfig {
        batch_size: 10,
        poll_interval: Duration::from_secs(3_600),
        ..test_config()
    };
    let running = start(&fx, test_redis(), config);
    let bodies: Vec<Vec<u8>> = (0..200).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest, &bodies).await;
    for _ in 0..500 {
        relay_store::deliveries::notify_due(&fx.pool).await.unwrap();
    }
    wait_for("all 200 deliveries in batches of 10", 10 * SECOND, || async {
        fx.count_status(&dest, "succeeded").await == 200
    })
    .await;
    running.stop().await;
    assert_eq!(receiver.count(), 200);
}
