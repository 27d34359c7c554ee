//! The dispatcher's part in operational events (CONTRACT §7): it publishes the outbox as
//! `relay.*` events with their deliveries ([`relay_store::outbox::publish`]), woken by the
//! outbox's NOTIFY and polling in case one was missed, and it runs the silence scan
//! ([`relay_store::silence::mark_silent`]), which one process of the fleet at a time does.
//! Every process may publish: a row is taken by one publisher and published once.

use std::sync::Arc;
use std::time::Duration;

use relay_store::PgPool;
use relay_store::listen::{Heard, listen};
use relay_store::outbox::{OUTBOX_CHANNEL, next_id, publish};
use relay_store::partitions::Coverage;
use tokio::sync::Notify;

/// How often the outbox is looked at without a wake-up.
const PUBLISH_POLL: Duration = Duration::from_secs(1);

/// Outbox rows published per transaction.
const PUBLISH_BATCH: i64 = 200;

/// How often the silence scan runs: a key is reported at most this late.
const SILENCE_SCAN_EVERY: Duration = Duration::from_secs(5);

/// Keys marked silent per scan transaction.
const SILENCE_BATCH: i64 = 1_000;

/// Publishes the outbox for as long as the dispatcher runs.
pub async fn publish_forever(pool: PgPool) {
    let wake = Arc::new(Notify::new());
    let heard = wake.clone();
    tokio::spawn(listen(pool.clone(), &[OUTBOX_CHANNEL], "relay events", move |h| {
        if let Heard::Notification { .. } | Heard::Listening = h {
            heard.notify_one();
        }
    }));
    let coverage = Coverage::default();
    loop {
        match publish_all(&pool, &coverage).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "publishing operational events failed; retrying"),
        }
        let _ = tokio::time::timeout(PUBLISH_POLL, wake.notified()).await;
    }
}

/// Publishes batches until the outbox is empty (of rows no other publisher holds). A batch that
/// fails for a reason other than an unavailable database is published again one row at a time,
/// and a row that fails alone is left for the next pass, so one bad row holds up no other.
async fn publish_all(pool: &PgPool, coverage: &Coverage) -> Result<(), relay_store::StoreError> {
    let mut conn = pool.acquire().await?;
    let mut alone = false;
    let mut after = 0;
    loop {
        let limit = if alone { 1 } else { PUBLISH_BATCH };
        if alone {
            match next_id(&mut conn, after).await? {
                Some(id) => after = id - 1,
                None => return Ok(()),
            }
        }
        match publish(&mut conn, coverage, pool, after, limit).await {
            Ok(done) if done.events == 0 => return Ok(()),
            Ok(done) => {
                metrics::counter!("relay_operational_events_total").increment(done.events as u64);
                if done.replayed > 0 {
                    tracing::info!(
                        queued = done.replayed,
                        "destination recovered: its failed deliveries are replayed"
                    );
                }
                if alone {
                    after = done.last.unwrap_or(after + 1);
                }
            }
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) if !alone => {
                tracing::warn!(error = %e, "publishing operational events failed; publishing them one by one");
                alone = true;
            }
            Err(e) => {
                tracing::error!(error = %e, outbox.id = after + 1, "an operational event could not be published; it is tried again later");
                after += 1;
            }
        }
    }
}

/// Runs the silence scan every [`SILENCE_SCAN_EVERY`] for as long as the dispatcher runs.
pub async fn scan_silence_forever(pool: PgPool) {
    let mut tick = tokio::time::interval(SILENCE_SCAN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = scan_silence(&pool).await {
            tracing::warn!(error = %e, "the silence scan failed; trying again");
        }
    }
}

/// One scan: batches until no deadline is left passed, or another process holds the scan.
async fn scan_silence(pool: &PgPool) -> Result<(), relay_store::StoreError> {
    loop {
        let mut tx = pool.begin().await?;
        let scanned = relay_store::silence::mark_silent(&mut tx, SILENCE_BATCH).await?;
        tx.commit().await?;
        let Some((looked, silent)) = scanned else { return Ok(()) };
        if silent > 0 {
            tracing::info!(count = silent, "sources or devices went silent");
        }
        if looked < SILENCE_BATCH {
            return Ok(());
        }
    }
}
