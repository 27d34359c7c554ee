//! What an operator watches, through the real binary: `/metrics` after ingesting and delivering
//! events (every family of CONTRACT §9, with the values the traffic implies, in the Prometheus
//! text format), `/readyz` (Redis reported, not fatal), `serve` started while Postgres is
//! unreachable (one clear line, then it keeps trying until stopped), and JSON logs (a line per
//! request with its request id, a line per attempt, no payload).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(30);

/// The samples of a Prometheus text exposition (`name{labels}` → value), checking each line's
/// form: `# HELP`/`# TYPE` comments, and `name{k="v",…} value` samples with a valid name.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split_whitespace().next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment line: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels: {line}"
            );
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("{series} is missing"))
}

#[tokio::test]
async fn metrics_show_every_family_with_the_values_of_the_traffic() {
    let (db, prefix) = fresh_names().await;
    let relay = Binary::start(&db, &prefix, &[]).await;
    let client = reqwest::Client::new();
    let metrics_url = format!("{}/metrics", relay.base);
    // Before any traffic every family is there, counters at 0, histograms empty.
    let text = client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
    let samples = parse_exposition(&text);
    for series in [
        "relay_ingest_requests_total{outcome=\"stored\"}",
        "relay_ingest_rejections_total{reason=\"invalid_signature\"}",
        "relay_events_stored_total",
        "relay_ingest_duplicates_total",
        "relay_delivery_attempts_total{outcome=\"success\"}",
        "relay_rate_limit_deferrals_total",
        "relay_ingest_batch_size_count",
        "relay_delivery_attempt_duration_seconds_count",
        "relay_delivery_latency_seconds_count",
    ] {
        assert_eq!(value(&samples, series), 0.0, "{series} at start");
    }
    let operator = token(json!({"sub": "op", "role": "operator"}));
    let tenant = tenant_with_source(&client, &relay.base, &operator, "growth").await;
    let receiver = Receiver::start().await;
    destination(&client, &relay.base, &tenant.token, json!({"url": receiver.url})).await;
    for id in ["evt_m1", "evt_m2", "evt_m3"] {
        assert_eq!(ingest(&client, &tenant.ingest_url, &wap_event(id)).await, 200);
    }
    assert_eq!(ingest(&client, &tenant.ingest_url, &wap_event("evt_m1")).await, 200, "a duplicate");
    let bad = client.post(&tenant.ingest_url).header("content-type", "application/json").body("{}");
    assert_eq!(bad.send().await.unwrap().status(), 401, "a refused request");
    receiver.wait_for(3, DEADLINE).await;

    let samples = eventually(DEADLINE, "the attempts to be counted", || async {
        let text = client.get(&metrics_url).send().await.ok()?.text().await.ok()?;
        let samples = parse_exposition(&text);
        (samples.get("relay_delivery_attempts_total{outcome=\"success\"}") == Some(&3.0)).then_some(samples)
    })
    .await;
    assert_eq!(value(&samples, "relay_ingest_requests_total{outcome=\"stored\"}"), 3.0);
    assert_eq!(value(&samples, "relay_ingest_requests_total{outcome=\"duplicate\"}"), 1.0);
    assert_eq!(value(&samples, "relay_events_stored_total"), 3.0);
    assert_eq!(value(&samples, "relay_ingest_duplicates_total"), 1.0);
    assert_eq!(value(&samples, "relay_ingest_rejections_total{reason=\"invalid_signature\"}"), 1.0);
    assert!(value(&samples, "relay_ingest_batch_size_count") >= 1.0);
    assert_eq!(value(&samples, "relay_delivery_attempt_duration_seconds_count"), 3.0);
    assert_eq!(value(&samples, "relay_delivery_latency_seconds_count"), 3.0);
    assert!(samples.contains_key("relay_delivery_latency_seconds_bucket{le=\"+Inf\"}"), "a histogram");
    assert!(samples.contains_key("relay_deliveries_pending"));
    assert!(samples.contains_key("relay_oldest_pending_seconds"));
    assert!(samples.contains_key("relay_db_pool_connections{state=\"idle\"}"));
    assert!(samples.contains_key("relay_db_pool_connections{state=\"busy\"}"));
    assert_eq!(value(&samples, "relay_redis_up"), 1.0, "Redis runs");
    // Deferrals appear once a limit defers an attempt: a tenant at 1 delivery a second.
    let (status, _) = api(
        &client,
        &relay.base,
        reqwest::Method::PATCH,
        &format!("/v1/tenants/{}", tenant.id),
        &operator,
        Some(json!({"limits": {"deliveries_per_second": 1, "burst": 1}})),
    )
    .await;
    assert_eq!(status, 200);
    for id in ["evt_m4", "evt_m5", "evt_m6"] {
        assert_eq!(ingest(&client, &tenant.ingest_url, &wap_event(id)).await, 200);
    }
    eventually(DEADLINE, "a rate-limit deferral to be counted", || async {
        let text = client.get(&metrics_url).send().await.ok()?.text().await.ok()?;
        parse_exposition(&text).get("relay_rate_limit_deferrals_total").filter(|v| **v >= 1.0).map(|_| ())
    })
    .await;

    let ready = client.get(format!("{}/readyz", relay.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body, json!({"status": "ready", "postgres": "ok", "migrations": "ok", "redis": "ok"}));
    relay.terminate().await;
}

#[tokio::test]
async fn serve_says_once_that_postgres_is_unreachable_and_keeps_trying() {
    let port = free_port();
    let url = format!("postgres://relay:s3cret-pass@127.0.0.1:{}/wap_relay", free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"))
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("RELAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(DEADLINE, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("serve keeps running");
            if line.contains("unreachable") {
                return line;
            }
        }
    })
    .await
    .expect("serve says that Postgres is unreachable");
    assert!(line.contains("retrying"), "{line}");
    assert!(!line.contains("s3cret-pass"), "the password stays out of the log: {line}");
    assert!(line.contains("relay:***@127.0.0.1"), "{line}");
    // It keeps trying (still running, nothing more said), and a SIGTERM ends it cleanly.
    let quiet = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
    assert!(quiet.is_err(), "one line, not one per retry: {quiet:?}");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait()).await.expect("exits on SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn json_logs_have_a_line_per_request_and_per_attempt_and_no_payload() {
    let (db, prefix) = fresh_names().await;
    let log_path = std::env::temp_dir().join(format!("wap-relay-json-{}.log", uuid::Uuid::now_v7().simple()));
    let log = std::fs::File::create(&log_path).unwrap();
    let env = [("RELAY_LOG_FORMAT", "json"), ("RUST_LOG", "info")];
    let relay = Binary::start_logging_to(&db, &prefix, &env, log.into()).await;
    let client = reqwest::Client::new();
    let operator = token(json!({"sub": "op", "role": "operator"}));
    let tenant = tenant_with_source(&client, &relay.base, &operator, "growth").await;
    let receiver = Receiver::start().await;
    destination(&client, &relay.base, &tenant.token, json!({"url": receiver.url})).await;
    let answer = post_event(&client, &tenant.ingest_url, &wap_event("evt_json_log")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let request_id = answer.headers()["x-request-id"].to_str().unwrap().to_owned();
    receiver.wait_for(1, DEADLINE).await;
    assert!(relay.terminate().await.success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
    let ingest_line = lines
        .iter()
        .find(|l| l["span"]["request.id"] == request_id.as_str())
        .expect("the ingest request's line carries its request id");
    assert_eq!(ingest_line["fields"]["http.status"], 200);
    assert_eq!(ingest_line["span"]["http.method"], "POST");
    assert!(ingest_line["fields"]["http.latency_ms"].is_u64());
    let attempt = lines.iter().find(|l| l["fields"]["message"] == "attempt").expect("a line for the attempt");
    assert_eq!(attempt["fields"]["attempt.outcome"], "success");
    assert_eq!(attempt["fields"]["attempt.status"], 200);
    assert!(!text.contains("msg_in_456") && !text.contains("+15559876543"), "no payload in the log");
    assert!(!text.contains(WAP_SECRET) && !text.contains(&tenant.token), "no secret or token in the log");
}
