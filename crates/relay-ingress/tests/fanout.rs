//! Fan-out filters, exact dedupe under concurrency, and ingest while Redis is down.

mod support;

use std::collections::HashMap;

use relay_core::plan::Plan;
use relay_core::verify::Verification;
use relay_store::PgPool;
use serde_json::Value;
use support::*;

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn deliveries_follow_each_destinations_filters(pool: PgPool) {
    let h = Harness::start(pool).await;
    let tenant = h.tenant(Plan::Growth).await;
    let a = h.source(tenant, Verification::default(), Some(SECRET)).await;
    let b = h.source(tenant, Verification::default(), Some(SECRET)).await;
    let all = h.destination(tenant, None, &["*"], None).await;
    let only_b = h.destination(tenant, Some(vec![b]), &["*"], None).await;
    let messages = h.destination(tenant, None, &["message.*"], None).await;
    let exact = h.destination(tenant, None, &["session.health"], None).await;
    let device = h.destination(tenant, None, &["*"], Some(vec!["dev_9"])).await;
    // Another tenant's destination never receives this tenant's events.
    let other_tenant = h.tenant(Plan::Growth).await;
    let foreign = h.destination(other_tenant, None, &["*"], None).await;

    h.post_signed(a, &event_of("e1", "message.received", Some("dev_1"))).await;
    h.post_signed(b, &event_of("e2", "session.health", Some("dev_9"))).await;
    h.post_signed(a, &event_of("e3", "message.status.read", None)).await;
    h.post_signed(a, &event_of("e4", "messages", Some("dev_9"))).await;

    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT d.destination_id, e.wap_event_id FROM deliveries d JOIN events e ON e.id = d.event_id ORDER BY 2",
    )
    .fetch_all(&h.pool)
    .await
    .unwrap();
    let mut got: HashMap<uuid::Uuid, Vec<String>> = HashMap::new();
    for (dest, evt) in rows {
        got.entry(dest).or_default().push(evt);
    }
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(got[&all], ids(&["e1", "e2", "e3", "e4"]));
    assert_eq!(got[&only_b], ids(&["e2"]));
    assert_eq!(got[&messages], ids(&["e1", "e3"]));
    assert_eq!(got[&exact], ids(&["e2"]));
    assert_eq!(got[&device], ids(&["e2", "e4"]));
    assert!(!got.contains_key(&foreign));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn disabled_destinations_get_no_new_deliveries(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    let dest = h.destination(tenant, None, &["*"], None).await;
    sqlx::query("UPDATE destinations SET enabled = false WHERE id = $1")
        .bind(dest)
        .execute(&h.pool)
        .await
        .unwrap();
    assert_eq!(h.post_signed(source, &event("e1")).await.status(), 200);
    assert_eq!((h.events(tenant).await, h.deliveries(tenant).await), (1, 0));
}

async fn fifty_concurrent_posts_of_one_event(h: &Harness) {
    let (tenant, source) = h.setup(Plan::Starter).await;
    h.destination(tenant, None, &["*"], None).await;
    let body = event("evt_same");
    let answers = futures::future::join_all((0..50).map(|_| async {
        let response = h.post_signed(source, &body).await;
        (response.status().as_u16(), response.json::<Value>().await.unwrap())
    }))
    .await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let first = answers.iter().filter(|(_, body)| body.get("duplicate").is_none()).count();
    assert_eq!(first, 1, "exactly one answer without `duplicate`");
    assert_eq!((h.events(tenant).await, h.deliveries(tenant).await), (1, 1));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn concurrent_duplicates_store_exactly_one_event(pool: PgPool) {
    let h = Harness::start(pool).await;
    fifty_concurrent_posts_of_one_event(&h).await;
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn redis_down_ingest_still_works_and_dedupe_stays_exact(pool: PgPool) {
    let closed = redis_at("redis://127.0.0.1:1");
    let h = Harness::start_with(pool, closed, relay_ingress::IngressConfig::default()).await;
    fifty_concurrent_posts_of_one_event(&h).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    assert_eq!(
        h.post_signed(source, &event("x1")).await.json::<Value>().await.unwrap(),
        serde_json::json!({"received": true})
    );
    let again = h.post_signed(source, &event("x1")).await.json::<Value>().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(h.events(tenant).await, 1);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn many_distinct_concurrent_events_are_all_stored(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Starter).await;
    h.destination(tenant, None, &["*"], None).await;
    h.destination(tenant, None, &["message.*"], None).await;
    let h = &h;
    let statuses =
        futures::future::join_all((0..300).map(|i| async move {
            h.post_signed(source, &event(&format!("evt_{i}"))).await.status().as_u16()
        }))
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!((h.events(tenant).await, h.deliveries(tenant).await), (300, 600));
}

/// A `meta_cloud_api` destination gets only the events with a Meta equivalent (the request maps
/// each event once, outside the shared writer), in batches that also carry events without one.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn meta_destinations_get_only_events_with_a_meta_equivalent(pool: PgPool) {
    let h = Harness::start(pool).await;
    let (tenant, source) = h.setup(Plan::Pro).await;
    let waping = h.destination(tenant, None, &["*"], None).await;
    let mut metas = Vec::new();
    for _ in 0..5 {
        let id = h.destination(tenant, None, &["*"], None).await;
        sqlx::query("UPDATE destinations SET format = 'meta_cloud_api' WHERE id = $1")
            .bind(id)
            .execute(&h.pool)
            .await
            .unwrap();
        metas.push(id);
    }
    let events = [
        ("m1", "message.received"),
        ("s1", "session.status"),
        ("m2", "message.delivered"),
        ("x1", "contact.updated"),
    ];
    let bodies: Vec<String> = events.iter().map(|(id, kind)| event_of(id, kind, Some("dev_1"))).collect();
    let posts = bodies.iter().map(|body| h.post_signed(source, body));
    for response in futures::future::join_all(posts).await {
        assert_eq!(response.status(), 200);
    }
    let per_event: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT e.wap_event_id, count(*) FILTER (WHERE d.destination_id = $2), \
           count(*) FILTER (WHERE d.destination_id = ANY($3)) \
         FROM events e JOIN deliveries d ON d.tenant_id = e.tenant_id AND d.event_id = e.id \
         WHERE e.tenant_id = $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(tenant.uuid())
    .bind(waping)
    .bind(&metas)
    .fetch_all(&h.pool)
    .await
    .unwrap();
    let expected = [("m1", 1, 5), ("m2", 1, 5), ("s1", 1, 0), ("x1", 1, 0)];
    let expected: Vec<(String, i64, i64)> =
        expected.iter().map(|(e, w, m)| (e.to_string(), *w, *m)).collect();
    assert_eq!(per_event, expected);
}
