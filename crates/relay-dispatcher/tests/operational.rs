//! Operational events (CONTRACT §7) from the dispatcher's side, against the real Postgres and
//! Redis and loopback receivers: each state change is one `relay.*` event, stored with the
//! relay's (nil) source, delivered signed to the destinations whose `event_types` name it and to
//! no other, however many dispatchers race for the change.

mod support;

use std::time::Duration;

use relay_core::operational::RELAY_SOURCE;
use relay_core::secret::Secret;
use relay_core::verify::Verification;
use relay_core::{SourceId, TenantId};
use relay_store::PgPool;
use relay_store::silence::{Seen, record_activity};
use relay_store::sources::{NewSource, insert_source};
use serde_json::Value;
use support::*;

/// The bodies `receiver` got of events of type `kind`, each checked to be signed for `dest`.
fn typed(receiver: &Receiver, dest: &Dest, kind: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for r in receiver.received() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        if body["type"] != kind {
            continue;
        }
        let signed = standard_webhooks_verifies(
            dest.secret.as_secret().expose(),
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            &r.body,
            r.header("webhook-signature"),
        );
        assert!(signed, "{kind} is signed with the destination's secret");
        found.push(body);
    }
    found
}

/// How many events of `kind` the tenant's stream holds, each from the relay itself.
async fn stored(pool: &PgPool, tenant: TenantId, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1 AND type = $2 AND source_id = $3")
        .bind(tenant.uuid())
        .bind(kind)
        .bind(RELAY_SOURCE.uuid())
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn outbox_empty(pool: &PgPool) -> bool {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM relay_outbox").fetch_one(pool).await.unwrap();
    n == 0
}

fn relay_spec(receiver: &Receiver, types: &[&str]) -> DestinationSpec {
    DestinationSpec {
        event_types: types.iter().map(|t| t.to_string()).collect(),
        ..DestinationSpec::new(receiver.url("/ops"))
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_disabled_destination_is_reported_once_across_two_dispatchers(pool: PgPool) {
    let fx = Fixture::new(pool);
    let gone = Receiver::start().await;
    gone.script(|s| s.status = 410);
    let ops = Receiver::start().await;
    let all = Receiver::start().await;
    let tenant = fx.tenant(None, None).await;
    // One attempt at a time per process: what the first 410s leave queued fails when its 2 s
    // window ends while the destination is disabled.
    let spec =
        DestinationSpec { window_seconds: 2, max_in_flight: 1, ..DestinationSpec::new(gone.url("/hook")) };
    let dest = fx.destination(tenant, spec).await;
    let ops_dest = fx.destination(tenant, relay_spec(&ops, &["relay.*"])).await;
    fx.destination(tenant, DestinationSpec::new(all.url("/all"))).await;
    let bodies: Vec<Vec<u8>> = (0..40).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    fx.enqueue(&dest, &bodies).await;

    let a = start(&fx, test_redis(), test_config());
    let b = start(&fx, test_redis(), test_config());
    wait_for("the destination disabled and reported", Duration::from_secs(20), || async {
        !typed(&ops, &ops_dest, "relay.destination.disabled").is_empty()
    })
    .await;
    wait_for("every report published", Duration::from_secs(20), || async {
        outbox_empty(&fx.pool).await && fx.count_status(&dest, "pending").await == 0
    })
    .await;
    let failed = fx.count_status(&dest, "failed").await;
    wait_for("every report delivered", Duration::from_secs(20), || async {
        typed(&ops, &ops_dest, "relay.delivery.failed").len() as i64 == failed
    })
    .await;
    a.stop().await;
    b.stop().await;

    assert_eq!(stored(&fx.pool, tenant, "relay.destination.disabled").await, 1);
    let disabled = typed(&ops, &ops_dest, "relay.destination.disabled");
    assert_eq!(disabled.len(), 1, "one report of one change: {disabled:?}");
    assert_eq!(disabled[0]["data"]["destinationId"], dest.id.to_string());
    assert_eq!(disabled[0]["data"]["reason"], "the destination answered 410 Gone");
    assert_eq!(failed, 40, "every delivery failed: by its 410 or by its window while disabled");
    let reports = typed(&ops, &ops_dest, "relay.delivery.failed");
    let reported: std::collections::HashSet<String> =
        reports.iter().map(|e| e["data"]["deliveryId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        (reports.len() as i64, reported.len() as i64),
        (failed, failed),
        "each failed delivery reported once"
    );
    assert_eq!(stored(&fx.pool, tenant, "relay.delivery.failed").await, failed);
    let by_window =
        reports.iter().filter(|e| e["data"]["lastError"].as_str().is_some_and(|e| e.contains("disabled")));
    assert!(by_window.count() > 0, "the window's end while disabled is reported too: {reports:?}");
    assert_eq!(all.count(), 0, "`*` matches none of the relay's events");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_failing_streak_is_reported_and_its_recovery_carries_the_replay(pool: PgPool) {
    let fx = Fixture::new(pool);
    let flaky = Receiver::start().await;
    flaky.script(|s| s.status = 500);
    let ops = Receiver::start().await;
    let tenant = fx.tenant(None, None).await;
    let spec = DestinationSpec {
        window_seconds: 1,
        replay_on_recovery: true,
        ..DestinationSpec::new(flaky.url("/h"))
    };
    let dest = fx.destination(tenant, spec).await;
    let kinds = ["relay.delivery.failed", "relay.destination.recovered", "relay.destination.disabled"];
    let ops_dest = fx.destination(tenant, relay_spec(&ops, &kinds)).await;
    let running = start(&fx, test_redis(), test_config());
    // A failure that a retry mends is a streak with no failed delivery: no event.
    flaky.script(|s| {
        s.statuses = [500].into();
        s.status = 200;
    });
    fx.enqueue(&dest, &[b"{\"n\":0}".to_vec()]).await;
    wait_for("the retry to succeed", Duration::from_secs(20), || async {
        fx.count_status(&dest, "succeeded").await == 1
    })
    .await;
    flaky.script(|s| s.status = 500);
    fx.enqueue(&dest, &[b"{\"n\":1}".to_vec(), b"{\"n\":2}".to_vec()]).await;
    wait_for("both failures reported", Duration::from_secs(20), || async {
        typed(&ops, &ops_dest, "relay.delivery.failed").len() == 2
    })
    .await;
    let failed = &typed(&ops, &ops_dest, "relay.delivery.failed")[0]["data"];
    assert_eq!(
        (&failed["destinationId"], &failed["lastStatusCode"]),
        (&Value::from(dest.id.to_string()), &Value::from(500))
    );

    flaky.script(|s| s.status = 200);
    fx.enqueue(&dest, &[b"{\"n\":3}".to_vec()]).await;
    wait_for("the recovery reported", Duration::from_secs(20), || async {
        !typed(&ops, &ops_dest, "relay.destination.recovered").is_empty()
    })
    .await;
    let recovered = &typed(&ops, &ops_dest, "relay.destination.recovered")[0]["data"];
    assert_eq!((&recovered["reason"], &recovered["replayed"]), (&Value::from("answered"), &Value::from(2)));
    wait_for("the replay delivered", Duration::from_secs(20), || async {
        fx.count_status(&dest, "succeeded").await == 4
    })
    .await;

    // An operator disables and re-enables it by hand: each change is reported.
    for enabled in [false, true] {
        sqlx::query("UPDATE destinations SET enabled = $2, disabled_reason = 'by hand' WHERE id = $1")
            .bind(dest.id.uuid())
            .bind(enabled)
            .execute(&fx.pool)
            .await
            .unwrap();
    }
    wait_for("the disable and the re-enable reported", Duration::from_secs(20), || async {
        typed(&ops, &ops_dest, "relay.destination.recovered").len() == 2
            && typed(&ops, &ops_dest, "relay.destination.disabled").len() == 1
    })
    .await;
    running.stop().await;
    let recovered = typed(&ops, &ops_dest, "relay.destination.recovered");
    assert_eq!(
        (&recovered[1]["data"]["reason"], &recovered[1]["data"]["replayed"]),
        (&Value::from("enabled"), &Value::from(0))
    );
    assert_eq!(typed(&ops, &ops_dest, "relay.delivery.failed").len(), 2);
    assert_eq!(recovered.len(), 2, "the retried success was no event: {recovered:?}");

    // Deleting is not disabling: nothing is reported.
    relay_store::destinations::delete_destination(&fx.pool, tenant, dest.id).await.unwrap();
    let reported: i64 =
        sqlx::query_scalar("SELECT count(*) FROM relay_outbox").fetch_one(&fx.pool).await.unwrap();
    assert_eq!(reported, 0);
}

async fn silent_source(fx: &Fixture, tenant: TenantId, seconds: Option<i32>) -> SourceId {
    let new = NewSource {
        tenant_id: tenant,
        name: "wap".into(),
        verification: Verification::default(),
        secret: Some(fx.key.seal(&Secret::new("wap-secret"))),
        secret_hint: None,
        verify_token: None,
        dedupe_key: None,
        silence_alert_seconds: seconds,
    };
    insert_source(&fx.pool, &new).await.unwrap().source_id()
}

fn seen(tenant: TenantId, source: SourceId, device: Option<&str>, ago: i64) -> Seen {
    let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(ago);
    Seen { tenant_id: tenant, source_id: source, device_id: device.map(str::to_owned), at }
}

/// Activity seen 90 s ago on a source with a 60 s silence alert is overdue: two dispatchers report
/// each key once; the state is in Postgres, so after both stop, new traffic is reported resumed
/// (once, whichever process publishes it). A source without alerts is not watched.
#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn silence_is_reported_once_by_a_fleet_and_its_end_after_a_restart(pool: PgPool) {
    let fx = Fixture::new(pool);
    let ops = Receiver::start().await;
    let tenant = fx.tenant(None, None).await;
    let ops_dest = fx.destination(tenant, relay_spec(&ops, &["relay.source.*", "relay.device.*"])).await;
    let watched = silent_source(&fx, tenant, Some(60)).await;
    let unwatched = silent_source(&fx, tenant, None).await;
    let old = [
        seen(tenant, watched, None, 90),
        seen(tenant, watched, Some("dev_a"), 90),
        seen(tenant, unwatched, None, 90),
    ];
    assert_eq!(record_activity(&fx.pool, &old).await.unwrap(), 0);

    let a = start(&fx, test_redis(), test_config());
    let b = start(&fx, test_redis(), test_config());
    wait_for("the source and the device reported silent", Duration::from_secs(30), || async {
        typed(&ops, &ops_dest, "relay.source.silent").len() == 1
            && typed(&ops, &ops_dest, "relay.device.silent").len() == 1
    })
    .await;
    // Another scan round of each process passes without a second report.
    tokio::time::timeout(Duration::from_secs(12), async {
        while ops.count() < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .ok();
    a.stop().await;
    b.stop().await;
    assert_eq!(ops.count(), 2, "one report per key, none for the unwatched source: {:?}", ops.received());
    let device = &typed(&ops, &ops_dest, "relay.device.silent")[0]["data"];
    assert_eq!(
        (&device["sourceId"], &device["deviceId"]),
        (&Value::from(watched.to_string()), &Value::from("dev_a"))
    );

    let late = [seen(tenant, watched, None, 80)];
    assert_eq!(
        record_activity(&fx.pool, &late).await.unwrap(),
        0,
        "a sighting from before the silence is no return"
    );
    let back = [seen(tenant, watched, None, 0), seen(tenant, watched, Some("dev_a"), 0)];
    assert_eq!(record_activity(&fx.pool, &back).await.unwrap(), 2);
    assert_eq!(record_activity(&fx.pool, &back).await.unwrap(), 0, "resumed once");
    let c = start(&fx, test_redis(), test_config());
    wait_for("both reported resumed", Duration::from_secs(20), || async {
        typed(&ops, &ops_dest, "relay.source.resumed").len() == 1
            && typed(&ops, &ops_dest, "relay.device.resumed").len() == 1
    })
    .await;
    c.stop().await;
    assert_eq!(stored(&fx.pool, tenant, "relay.device.resumed").await, 1);
}
