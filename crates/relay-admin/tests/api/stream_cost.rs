//! A stream costs the same whether its filters match often or never (CONTRACT §10, issue 19
//! finding 8): a read looks at a bounded number of the tenant's events and moves its position
//! past those its filter skipped, so a stream filtered to a quiet source reads each of the
//! tenant's other events once, not on every poll and notification.

use relay_store::stream::{StreamFilter, cursor_at, events_after};
use sqlx::PgPool;

use crate::support::TestApp;

const PAGE: usize = 100;
const SCAN: usize = 1_000;

/// Reads from `from` until a read stops short of its bounds; returns the reads' scanned counts,
/// the wanted event ids found, and the final position.
async fn drain(
    app: &TestApp,
    t: relay_core::TenantId,
    from: uuid::Uuid,
    filter: &StreamFilter,
) -> (Vec<usize>, Vec<uuid::Uuid>, uuid::Uuid) {
    let (mut reads, mut found, mut at) = (Vec::new(), Vec::new(), from);
    loop {
        let page = events_after(&app.pool, t, at, filter, PAGE, SCAN).await.unwrap();
        assert!(page.reached >= at, "the position never goes back");
        reads.push(page.scanned);
        found.extend(page.rows.iter().map(|r| r.id));
        at = page.reached;
        if !page.more {
            return (reads, found, at);
        }
        assert!(reads.len() < 20, "a drain of 2,501 events ends within a few reads: {reads:?}");
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_stream_filtered_to_a_quiet_source_reads_each_event_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let (loud, quiet) = (app.source(&t).await, app.source(&t).await);
    let start = cursor_at(0);
    app.events(&t, loud, 1_200, "message.received").await;
    let wanted = app.events(&t, quiet, 1, "message.received").await;
    app.events(&t, loud, 1_300, "message.received").await;
    let to_quiet = StreamFilter { source: Some(quiet), types: Vec::new() };

    let (reads, found, at) = drain(&app, t.id, start, &to_quiet).await;
    assert_eq!(found, wanted.iter().map(|e| e.uuid()).collect::<Vec<_>>());
    assert!(reads.iter().all(|&n| n <= SCAN), "each read is bounded: {reads:?}");
    assert_eq!(reads.iter().sum::<usize>(), 2_501, "each event is looked at once: {reads:?}");

    // Caught up: a poll or a notification with nothing new looks at nothing.
    let idle = events_after(&app.pool, t.id, at, &to_quiet, PAGE, SCAN).await.unwrap();
    assert_eq!((idle.scanned, idle.rows.len(), idle.reached, idle.more), (0, 0, at, false));

    // New events of the loud source cost the quiet stream only themselves.
    app.events(&t, loud, 50, "message.received").await;
    let next = events_after(&app.pool, t.id, at, &to_quiet, PAGE, SCAN).await.unwrap();
    assert_eq!((next.scanned, next.rows.len(), next.more), (50, 0, false));
    assert!(next.reached > at, "the position moves past what the filter skipped");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn type_filters_skip_in_the_store_and_an_unfiltered_stream_pages(pool: PgPool) {
    let app = TestApp::new(pool);
    let t = app.tenant("pro").await;
    let src = app.source(&t).await;
    app.events(&t, src, 300, "message.received").await;
    let statuses = app.events(&t, src, 2, "message.status").await;
    let only_status = StreamFilter { source: None, types: vec!["message.status".into()] };
    let (reads, found, _) = drain(&app, t.id, cursor_at(0), &only_status).await;
    assert_eq!(found, statuses.iter().map(|e| e.uuid()).collect::<Vec<_>>());
    assert_eq!(reads.iter().sum::<usize>(), 302);

    // Unfiltered: a read stops at its page of wanted events, and the next starts after it.
    let first =
        events_after(&app.pool, t.id, cursor_at(0), &StreamFilter::default(), PAGE, SCAN).await.unwrap();
    assert_eq!((first.rows.len(), first.more), (PAGE, true));
    assert_eq!(first.reached, first.rows.last().unwrap().id);
}
