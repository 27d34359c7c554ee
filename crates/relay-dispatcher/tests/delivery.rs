//! What a destination receives and what the delivery log shows: bytes forwarded unchanged,
//! signatures that verify with an independent implementation, retries, `Retry-After`, `410`,
//! timeouts, redirects, the retry window, and destination health.

mod support;

use std::time::Duration;

use support::*;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn the_independent_verifier_matches_the_published_vector() {
    assert!(standard_webhooks_verifies(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        br#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    ));
    assert!(!standard_webhooks_verifies(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265331",
        br#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    ));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn forwards_the_raw_bytes_signed_with_every_contract_header(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(None, None).await;
    let mut spec = DestinationSpec::new(receiver.url("/hooks/in?x=1"));
    spec.headers.insert("X-Team".into(), "payments".into());
    spec.headers.insert("webhook-id".into(), "forged".into());
    spec.headers.insert("X-Relay-Attempt".into(), "99".into());
    let dest = fx.destination(tenant, spec).await;
    // Odd spacing, key order, unicode and escapes: the destination must get these exact bytes.
    let body =
        "{ \"eventId\":\"evt_1\",  \"type\":\"message.received\",\n\"timestamp\":\"2026-04-03T12:00:00Z\",\
                \"message\":{\"body\":\"h\u{e9}llo \\u00e9 \u{1f600}\"} }"
            .as_bytes()
            .to_vec();
    let events = fx.enqueue(&dest, std::slice::from_ref(&body)).await;
    let running = start(&fx, test_redis(), test_config());

    wait_for("the delivery to succeed", 10 * SECOND, || async {
        fx.count_status(&dest, "succeeded").await == 1
    })
    .await;
    running.stop().await;

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/hooks/in");
    assert_eq!(r.body.as_ref(), body.as_slice());
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("user-agent").starts_with("wap-relay/"));
    assert_eq!(r.header("webhook-id"), events[0].to_string());
    assert_eq!(r.header("x-wap-event-id"), "wap_0");
    assert_eq!(r.header("x-wap-event-type"), "message.received");
    assert_eq!(r.header("x-relay-attempt"), "1");
    assert_eq!(r.header("x-team"), "payments");
    let ts = r.header("webhook-timestamp");
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..30).contains(&age), "timestamp {ts}");
    let secret = dest.secret.as_secret().expose();
    assert!(standard_webhooks_verifies(
        secret,
        r.header("webhook-id"),
        ts,
        &r.body,
        r.header("webhook-signature")
    ));

    assert_eq!(fx.deliveries(&dest).await, [("succeeded".to_owned(), 1)]);
    let (number, outcome, code, trigger) = fx.attempts(&dest).await.remove(0);
    assert_eq!((number, outcome.as_str(), code, trigger.as_str()), (1, "success", Some(200), "auto"));
    let (snippet, url): (Option<String>, String) =
        sqlx::query_as("SELECT response_body, url FROM attempts WHERE destination_id = $1")
            .bind(dest.id.uuid())
            .fetch_one(&fx.pool)
            .await
            .unwrap();
    assert_eq!(snippet.as_deref(), Some(r#"{"ok":true}"#));
    assert_eq!(url, receiver.url("/hooks/in?x=1"));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn signs_with_both_secrets_during_a_rotation(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    let tenant = fx.tenant(None, None).await;
    let dest = fx.destination(tenant, DestinationSpec::new(receiver.url("/"))).await;
    let new_secret = relay_core::secret::WebhookSecret::generate();
    relay_store::destinations::rotate_destination_secret(
        &fx.pool,
        tenant,
        dest.id,
        &fx.key.seal(new_secret.as_secret()),
        time::OffsetDateTime::now_utc() + Duration::from_secs(3_600),
    )
    .await
    .unwrap();
    fx.enqueue(&dest, &[b"{\"a\":1}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("the delivery", 10 * SECOND, || async { receiver.count() == 1 }).await;
    running.stop().await;

    let r = &receiver.received()[0];
    let header = r.header("webhook-signature");
    assert_eq!(header.split(' ').count(), 2);
    let (id, ts) = (r.header("webhook-id"), r.header("webhook-timestamp"));
    for secret in [&dest.secret, &new_secret] {
        assert!(standard_webhooks_verifies(secret.as_secret().expose(), id, ts, &r.body, header));
    }
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn retries_after_server_errors_then_succeeds(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.statuses = [500, 502].into());
    let tenant = fx.tenant(None, None).await;
    let dest = fx.destination(tenant, DestinationSpec::new(receiver.url("/"))).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("the third attempt to succeed", 10 * SECOND, || async {
        fx.count_status(&dest, "succeeded").await == 1
    })
    .await;
    running.stop().await;

    let got = receiver.received();
    let attempts: Vec<&str> = got.iter().map(|r| r.header("x-relay-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(got.iter().all(|r| r.header("webhook-id") == got[0].header("webhook-id")));
    let log: Vec<(i32, String, Option<i32>)> =
        fx.attempts(&dest).await.into_iter().map(|(n, o, c, _)| (n, o, c)).collect();
    assert_eq!(
        log,
        [
            (1, "http_error".into(), Some(500)),
            (2, "http_error".into(), Some(502)),
            (3, "success".into(), Some(200))
        ]
    );
    assert_eq!(fx.deliveries(&dest).await, [("succeeded".to_owned(), 3)]);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn retry_after_raises_the_wait(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| {
        s.statuses = [503].into();
        s.headers = vec![("retry-after", "2".into())];
    });
    let tenant = fx.tenant(None, None).await;
    let dest = fx.destination(tenant, DestinationSpec::new(receiver.url("/"))).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("the retry", 10 * SECOND, || async { fx.count_status(&dest, "succeeded").await == 1 }).await;
    running.stop().await;

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let gap = got[1].at - got[0].at;
    // The backoff alone would be 100 ms; Retry-After asks for 2 s.
    assert!(gap >= Duration::from_millis(1_900), "retried after {gap:?}");
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn gone_fails_the_delivery_and_disables_the_destination(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.status = 410);
    let tenant = fx.tenant(None, None).await;
    let dest = fx.destination(tenant, DestinationSpec::new(receiver.url("/"))).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("the delivery to fail", 10 * SECOND, || async { fx.count_status(&dest, "failed").await == 1 })
        .await;
    wait_for("the destination to be disabled", 5 * SECOND, || async { !fx.destination_state(&dest).await.0 })
        .await;
    running.stop().await;

    assert_eq!(receiver.count(), 1);
    assert_eq!(fx.deliveries(&dest).await, [("failed".to_owned(), 1)]);
    let (enabled, reason) = fx.destination_state(&dest).await;
    assert!(!enabled);
    assert!(reason.unwrap().contains("410"));
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_slow_destination_times_out_and_is_retried(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.delay = Duration::from_secs(3));
    let tenant = fx.tenant(None, None).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    spec.timeout_ms = 300;
    spec.initial_delay_ms = 60_000;
    spec.max_delay_ms = 60_000;
    let dest = fx.destination(tenant, spec).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("a timed-out attempt", 10 * SECOND, || async { !fx.attempts(&dest).await.is_empty() }).await;
    running.stop().await;

    let (number, outcome, code, _) = fx.attempts(&dest).await.remove(0);
    assert_eq!((number, outcome.as_str(), code), (1, "timeout", None));
    let (duration_ms, error): (i32, Option<String>) =
        sqlx::query_as("SELECT duration_ms, error FROM attempts WHERE destination_id = $1")
            .bind(dest.id.uuid())
            .fetch_one(&fx.pool)
            .await
            .unwrap();
    assert!((250..2_000).contains(&duration_ms), "took {duration_ms} ms");
    assert!(error.is_some());
    assert_eq!(fx.deliveries(&dest).await, [("pending".to_owned(), 1)]);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn redirects_are_not_followed(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| {
        s.statuses = [302].into();
        s.headers = vec![("location", "/elsewhere".into())];
    });
    let tenant = fx.tenant(None, None).await;
    let dest = fx.destination(tenant, DestinationSpec::new(receiver.url("/hook"))).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("the retry to succeed", 10 * SECOND, || async {
        fx.count_status(&dest, "succeeded").await == 1
    })
    .await;
    running.stop().await;

    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook", "/hook"]);
    let outcomes: Vec<(String, Option<i32>)> =
        fx.attempts(&dest).await.into_iter().map(|(_, o, c, _)| (o, c)).collect();
    assert_eq!(outcomes, [("http_error".into(), Some(302)), ("success".into(), Some(200))]);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_delivery_fails_when_its_window_is_over(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.status = 500);
    let tenant = fx.tenant(None, None).await;
    let mut spec = DestinationSpec::new(receiver.url("/"));
    spec.window_seconds = 2;
    spec.initial_delay_ms = 200;
    let dest = fx.destination(tenant, spec).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    let running = start(&fx, test_redis(), test_config());
    wait_for("the delivery to fail", 10 * SECOND, || async { fx.count_status(&dest, "failed").await == 1 })
        .await;
    running.stop().await;

    let (status, attempts) = fx.deliveries(&dest).await.remove(0);
    assert_eq!(status, "failed");
    // It was retried, and no attempt started after the window (counted from creation) ended;
    // how many fit in 2 s depends on the machine's load (the last is due at the window's end and
    // may start late on a busy machine, hence the margin).
    assert!(attempts >= 2, "{attempts} attempts");
    assert_eq!(receiver.count() as i32, attempts);
    let late: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE d.destination_id = $1 AND a.started_at > d.created_at + interval '4 seconds'",
    )
    .bind(dest.id.uuid())
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert_eq!(late, 0, "an attempt started after the window");
    let (last_code, completed): (Option<i32>, bool) = sqlx::query_as(
        "SELECT last_status_code, completed_at IS NOT NULL AND next_attempt_at IS NULL FROM deliveries \
         WHERE destination_id = $1",
    )
    .bind(dest.id.uuid())
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert_eq!((last_code, completed), (Some(500), true));
    // The destination is still enabled: a window ending is not a health verdict.
    assert!(fx.destination_state(&dest).await.0);
}

#[sqlx::test(migrator = "relay_store::db::MIGRATOR")]
async fn a_destination_failing_for_the_whole_period_is_disabled(pool: relay_store::PgPool) {
    let fx = Fixture::new(pool);
    let receiver = Receiver::start().await;
    receiver.script(|s| s.status = 500);
    let tenant = fx.tenant(None, None).await;
    let dest = fx.destination(tenant, DestinationSpec::new(receiver.url("/"))).await;
    fx.enqueue(&dest, &[b"{}".to_vec()]).await;
    let config = relay_dispatcher::DispatcherConfig { unhealthy_after: SECOND, ..test_config() };
    let running = start(&fx, test_redis(), config);
    wait_for("the destination to be disabled", 10 * SECOND, || async {
        !fx.destination_state(&dest).await.0
    })
    .await;
    running.stop().await;

    let (_, reason) = fx.destination_state(&dest).await;
    assert!(reason.unwrap().starts_with("every attempt has failed since"));
    // Its delivery is still pending: it waits for the destination to be enabled again.
    assert_eq!(fx.count_status(&dest, "pending").await, 1);
}
