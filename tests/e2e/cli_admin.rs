//! The admin commands of the `wap-relay` CLI, run as a user runs them: the real binary against a
//! real relay (another process), with its URL and token in the environment and a config
//! directory of its own. Tests assert what a user sees: the table, the JSON, stderr, the status.

use std::path::PathBuf;
use std::time::Duration;

use relay_core::SourceId;
use serde_json::{Value, json};

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// What one run of the CLI showed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// The CLI's environment: the relay and token (`WAP_RELAY_URL`/`WAP_RELAY_TOKEN`, when set) and a
/// config directory, removed when dropped, so no test reads or writes the user's profile.
struct Cli {
    url: Option<String>,
    token: Option<String>,
    config_dir: PathBuf,
}

impl Cli {
    fn new(base: &str, token: &str) -> Cli {
        let mut cli = Cli::bare();
        (cli.url, cli.token) = (Some(base.to_owned()), Some(token.to_owned()));
        cli
    }

    /// No relay or token in the environment: only flags or a saved profile give them.
    fn bare() -> Cli {
        let config_dir =
            std::env::temp_dir().join(format!("wap-relay-cli-{}", uuid::Uuid::now_v7().simple()));
        Cli { url: None, token: None, config_dir }
    }

    async fn run(&self, args: &[&str]) -> Run {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WAP_RELAY_CONFIG_DIR", &self.config_dir);
        for (name, value) in [("WAP_RELAY_URL", &self.url), ("WAP_RELAY_TOKEN", &self.token)] {
            if let Some(value) = value {
                command.env(name, value);
            }
        }
        let out = tokio::time::timeout(DEADLINE, command.output()).await.expect("the CLI finishes").unwrap();
        Run {
            success: out.status.success(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Runs a command that must succeed; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert!(run.success, "{args:?} failed: {}", run.stderr);
        run.stdout
    }

    /// Runs a command with `--json`; its stdout, parsed.
    async fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(&[args, &["--json"][..]].concat()).await;
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {stdout}"))
    }

    /// Runs a command that must fail; its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert!(!run.success, "{args:?} succeeded: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{args:?} printed a result: {}", run.stdout);
        run.stderr
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config_dir);
    }
}

/// A relay (the real binary, private destinations allowed) and a tenant with a source whose
/// secret is `WAP_SECRET`; the CLI set up with the tenant's token.
async fn relay_and_tenant() -> (Binary, Tenant, Cli) {
    let (db, prefix) = fresh_names().await;
    let relay = Binary::start(&db, &prefix, &[]).await;
    let operator = token(json!({"role": "operator", "sub": "e2e"}));
    let tenant = tenant_with_source(&reqwest::Client::new(), &relay.base, &operator, "enterprise").await;
    let cli = Cli::new(&relay.base, &tenant.token);
    (relay, tenant, cli)
}

/// The table row (a line of stdout) that mentions `needle`.
fn row<'a>(table: &'a str, needle: &str) -> &'a str {
    table.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no row with {needle} in:\n{table}"))
}

/// The value of `key` in a key/value table.
fn field<'a>(table: &'a str, key: &str) -> &'a str {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} in:\n{table}"));
    line[key.len()..].trim()
}

/// Posts `body` to `ingest_url` signed (hmac_sha256) with `secret`; the status.
async fn post_signed(ingest_url: &str, secret: &str, body: &str) -> u16 {
    let response = reqwest::Client::new()
        .post(ingest_url)
        .header("content-type", "application/json")
        .header("x-wap-signature", format!("sha256={}", sign_hex(secret, body.as_bytes())))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn sources_are_created_listed_shown_updated_rotated_and_deleted() {
    let (relay, _tenant, cli) = relay_and_tenant().await;
    let created = cli.json(&["sources", "create", "--name", "Shop", "--secret", "shop-secret-1"]).await;
    let keyed = cli
        .json(&[
            "sources",
            "create",
            "--name",
            "Keyed",
            "--secret",
            "keyed-secret-1",
            "--dedupe-key",
            "/deviceId,/message/id",
            "--silence-alert-seconds",
            "300",
        ])
        .await;
    assert_eq!(keyed["dedupe_key"], json!(["/deviceId", "/message/id"]));
    assert_eq!(keyed["silence_alert_seconds"], 300);
    let keyed_id = keyed["id"].as_str().unwrap().to_owned();
    let cleared =
        cli.json(&["sources", "update", &keyed_id, "--clear-dedupe-key", "--clear-silence-alert"]).await;
    assert_eq!((&cleared["dedupe_key"], &cleared["silence_alert_seconds"]), (&Value::Null, &Value::Null));
    cli.ok(&["sources", "delete", &keyed_id]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (created["name"].as_str(), created["verification"]["scheme"].as_str()),
        (Some("Shop"), Some("hmac_sha256"))
    );

    let table = cli.ok(&["sources", "list"]).await;
    assert!(table.lines().next().unwrap().starts_with("ID"), "a header row first:\n{table}");
    let shop = row(&table, &id);
    assert!(shop.contains("Shop") && shop.contains("hmac_sha256") && shop.contains("true"), "{shop}");
    let page = cli.json(&["sources", "list"]).await;
    assert!(page["data"].as_array().unwrap().iter().any(|s| s["id"] == id.as_str()), "{page}");
    assert!(page["next_cursor"].is_null(), "the API's page as is: {page}");

    let shown = cli.ok(&["sources", "get", &id]).await;
    assert_eq!(field(&shown, "id"), id);
    assert!(field(&shown, "ingest_url").ends_with(&format!("/v1/ingest/{id}")), "{shown}");
    assert_eq!(field(&shown, "verification.scheme"), "hmac_sha256");

    let updated =
        cli.json(&["sources", "update", &id, "--name", "Shop EU", "--verify-token", "tok-123"]).await;
    assert_eq!(
        (updated["name"].as_str(), updated["verify_token_set"].as_bool()),
        (Some("Shop EU"), Some(true))
    );
    assert!(cli.fails(&["sources", "update", &id]).await.contains("nothing to change"));

    let ingest_url = created["ingest_url"].as_str().unwrap();
    let rotated = cli
        .json(&["sources", "rotate-secret", &id, "--secret", "shop-secret-2", "--grace-seconds", "60"])
        .await;
    assert!(rotated["previous_secret_expires_at"].is_string(), "{rotated}");
    assert_eq!(post_signed(ingest_url, "shop-secret-2", &wap_event("evt_rot_1")).await, 200);
    assert_eq!(
        post_signed(ingest_url, "shop-secret-1", &wap_event("evt_rot_2")).await,
        200,
        "within the grace period"
    );

    // Without --secret the CLI makes one and shows it once: it is the one the relay now checks.
    let run = cli.run(&["sources", "rotate-secret", &id, "--grace-seconds", "0"]).await;
    assert!(run.success, "{}", run.stderr);
    let generated = run.stderr.split_whitespace().find(|w| w.starts_with("whsec_")).expect("the new secret");
    assert_eq!(post_signed(ingest_url, generated, &wap_event("evt_rot_3")).await, 200);
    assert_eq!(
        post_signed(ingest_url, "shop-secret-2", &wap_event("evt_rot_4")).await,
        401,
        "no grace asked"
    );

    let unverified = cli.run(&["sources", "create", "--name", "Open", "--scheme", "none", "--json"]).await;
    assert!(unverified.success && !unverified.stderr.contains("whsec_"), "{}", unverified.stderr);
    assert_eq!(serde_json::from_str::<Value>(&unverified.stdout).unwrap()["verified"], false);

    assert_eq!(cli.ok(&["sources", "delete", &id]).await.trim(), format!("Deleted source {id}."));
    let stderr = cli.fails(&["sources", "get", &id]).await;
    assert!(stderr.contains("source_not_found (404)"), "{stderr}");
    drop(relay);
}

#[tokio::test]
async fn destinations_are_created_toggled_rekeyed_changed_and_deleted() {
    let (relay, tenant, cli) = relay_and_tenant().await;
    let receiver = Receiver::start().await;
    let created = cli
        .json(&[
            "destinations",
            "create",
            "--endpoint",
            &receiver.url,
            "--event-types",
            "message.*,call.ended",
            "--header",
            "X-Api-Key=abcdef1234567890",
            "--timeout-ms",
            "5000",
            "--max-in-flight",
            "4",
        ])
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["url"], receiver.url.as_str());
    assert_eq!(created["event_types"], json!(["message.*", "call.ended"]));
    assert_eq!((created["timeout_ms"].as_i64(), created["max_in_flight"].as_i64()), (Some(5000), Some(4)));
    assert_eq!(created["headers"]["X-Api-Key"], "…7890", "a credential-like header is masked");
    let secret = created["signing_secret"].as_str().unwrap().to_owned();

    let table = cli.ok(&["destinations", "list"]).await;
    let line = row(&table, &id);
    assert!(line.contains(&receiver.url) && line.contains("message.*, call.ended"), "{line}");
    let shown = cli.ok(&["destinations", "get", &id]).await;
    assert_eq!(field(&shown, "timeout_ms"), "5000");
    assert_eq!(field(&shown, "headers.X-Api-Key"), "…7890");

    assert_eq!(field(&cli.ok(&["destinations", "disable", &id]).await, "enabled"), "false");
    assert_eq!(cli.json(&["destinations", "enable", &id]).await["enabled"], true);
    assert_eq!(field(&cli.ok(&["destinations", "pause", &id]).await, "paused"), "true");
    assert_eq!(cli.json(&["destinations", "resume", &id]).await["paused"], false);
    let replaying = cli.json(&["destinations", "update", &id, "--replay-on-recovery"]).await;
    assert_eq!(replaying["replay_on_recovery"], true);
    let meta = cli
        .json(&[
            "destinations",
            "update",
            &id,
            "--format",
            "meta_cloud_api",
            "--meta-phone-number-id",
            "1065",
        ])
        .await;
    assert_eq!(
        (meta["format"].as_str(), &meta["meta"]),
        (Some("meta_cloud_api"), &json!({"phone_number_id": "1065"}))
    );
    let back = cli.json(&["destinations", "update", &id, "--format", "waping"]).await;
    assert_eq!(back["format"], "waping");
    let ordered = cli.json(&["destinations", "update", &id, "--ordering", "per_device"]).await;
    assert_eq!(ordered["ordering"], "per_device");
    assert!(
        cli.fails(&["destinations", "update", &id, "--ordering", "per_event"]).await.contains("--ordering")
    );
    assert_eq!(cli.json(&["destinations", "secret", &id]).await["signing_secret"], secret.as_str());
    let rotated = cli.json(&["destinations", "rotate-secret", &id, "--grace-seconds", "60"]).await;
    assert_ne!(rotated["signing_secret"], secret.as_str());
    assert_eq!(rotated["previous_signing_secret"], secret.as_str());

    let filtered = cli
        .json(&[
            "destinations",
            "update",
            &id,
            "--source-ids",
            &tenant.source_id,
            "--rate-limit-per-second",
            "5",
        ])
        .await;
    assert_eq!(
        (filtered["source_ids"].clone(), filtered["rate_limit_per_second"].as_i64()),
        (json!([tenant.source_id]), Some(5))
    );
    let cleared =
        cli.json(&["destinations", "update", &id, "--clear", "source-ids,rate-limit-per-second"]).await;
    assert!(cleared["source_ids"].is_null() && cleared["rate_limit_per_second"].is_null(), "{cleared}");

    // Bad input is refused before any request: nothing is created.
    let stderr =
        cli.fails(&["destinations", "create", "--endpoint", &receiver.url, "--header", "X-Api-Key"]).await;
    assert!(stderr.contains("is not NAME=VALUE"), "{stderr}");
    assert!(cli.fails(&["destinations", "update", &id, "--timeout-ms", "0"]).await.contains("--timeout-ms"));
    assert_eq!(cli.json(&["destinations", "list"]).await["data"].as_array().unwrap().len(), 1);

    assert_eq!(cli.ok(&["destinations", "delete", &id]).await.trim(), format!("Deleted destination {id}."));
    assert_eq!(cli.ok(&["destinations", "list"]).await.trim(), "(none)");
    drop(relay);
}

#[tokio::test]
async fn events_deliveries_replay_rejections_and_stats_show_an_ingested_event() {
    let (relay, tenant, cli) = relay_and_tenant().await;
    let receiver = Receiver::start().await;
    let destination = cli.json(&["destinations", "create", "--endpoint", &receiver.url]).await;
    let destination_id = destination["id"].as_str().unwrap().to_owned();
    assert_eq!(post_signed(&tenant.ingest_url, WAP_SECRET, &wap_event("evt_cli_1")).await, 200);
    receiver.wait_for(1, DEADLINE).await;

    let events = cli.json(&["events", "list", "--type", "message.received", "--since", "1h"]).await;
    let event_id = events["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(events["data"][0]["wap_event_id"], "evt_cli_1");
    assert!(row(&cli.ok(&["events", "list"]).await, &event_id).contains("message.received"));
    assert_eq!(cli.ok(&["events", "list", "--type", "call.ended"]).await.trim(), "(none)");
    let event = cli.ok(&["events", "get", &event_id]).await;
    assert_eq!(field(&event, "payload.message.body"), "Hi");
    assert!(event.contains("Deliveries:") && row(&event, &destination_id).contains("dlv_"), "{event}");

    let deliveries = cli.json(&["deliveries", "list", "--destination-id", &destination_id]).await;
    let delivery_id = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    let succeeded = || async {
        let d = cli.json(&["deliveries", "get", &delivery_id]).await;
        (d["status"] == "succeeded").then_some(d)
    };
    eventually(DEADLINE, "the delivery to succeed", succeeded).await;
    let shown = cli.ok(&["deliveries", "get", &delivery_id]).await;
    assert_eq!(field(&shown, "status"), "succeeded");
    assert!(shown.contains("Latest attempts:") && row(&shown, "success").contains("auto"), "{shown}");
    let attempts = cli.json(&["deliveries", "attempts", &delivery_id]).await;
    assert_eq!(
        (attempts["data"][0]["outcome"].as_str(), attempts["data"][0]["status_code"].as_i64()),
        (Some("success"), Some(200))
    );
    let failed = cli.json(&["deliveries", "list", "--status", "failed"]).await;
    assert_eq!(failed["data"], json!([]));

    let redelivered = cli.json(&["deliveries", "redeliver", &delivery_id]).await;
    assert_eq!(redelivered["id"], delivery_id.as_str());
    receiver.wait_for(2, DEADLINE).await;
    eventually(DEADLINE, "the redelivery to succeed", succeeded).await;
    assert_eq!(
        cli.ok(&["events", "redeliver", &event_id, "--destination-id", &destination_id]).await.trim(),
        "Queued 1 delivery."
    );
    receiver.wait_for(3, DEADLINE).await;
    eventually(DEADLINE, "the event's redelivery to succeed", succeeded).await;
    let replayed = cli.json(&["replay", &destination_id, "--since", "1h", "--status", "all"]).await;
    assert_eq!(replayed, json!({"queued": 1}));
    receiver.wait_for(4, DEADLINE).await;
    assert_eq!(
        cli.ok(&["replay", &destination_id, "--since", "1h"]).await.trim(),
        "Queued 0 deliveries.",
        "none failed"
    );

    let stats = cli.json(&["stats", "--since", "1h"]).await;
    assert_eq!(stats["destinations"][0]["destination_id"], destination_id.as_str());
    assert!(stats["destinations"][0]["attempts"].as_i64() >= Some(1), "{stats}");
    let table = cli.ok(&["stats"]).await;
    assert_eq!(field(&table, "deliveries.succeeded"), "1", "one delivery, however often attempted");
    assert!(table.contains("Destinations:"), "{table}");
    let cells: Vec<&str> = row(&table, &destination_id).split_whitespace().collect();
    assert_eq!(cells[1..4], ["0", "1", "0"], "pending, succeeded, failed:\n{table}");

    assert_eq!(post_signed(&tenant.ingest_url, "a-wrong-secret", &wap_event("evt_cli_bad")).await, 401);
    let rejections = cli.ok(&["rejections", "list", "--source-id", &tenant.source_id, "--since", "1h"]).await;
    assert!(row(&rejections, "invalid_signature").contains("401"), "{rejections}");
    let none = cli.json(&["rejections", "list", "--reason", "invalid_event"]).await;
    assert_eq!(none["data"], json!([]));
    drop(relay);
}

#[tokio::test]
async fn tenants_are_managed_with_an_operator_token() {
    let (relay, tenant, _) = relay_and_tenant().await;
    let operator = Cli::new(&relay.base, &token(json!({"role": "operator", "sub": "e2e"})));
    let created = operator.json(&["tenants", "create", "--name", "Globex", "--plan", "starter"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!((created["plan"].as_str(), created["status"].as_str()), (Some("starter"), Some("active")));
    let table = operator.ok(&["tenants", "list"]).await;
    assert!(row(&table, &id).contains("Globex") && row(&table, &tenant.id).contains("enterprise"), "{table}");
    assert_eq!(field(&operator.ok(&["tenants", "get", &id]).await, "limits.sources"), "1");
    let updated =
        operator.json(&["tenants", "update", &id, "--plan", "growth", "--name", "Globex Inc"]).await;
    assert_eq!((updated["plan"].as_str(), updated["name"].as_str()), (Some("growth"), Some("Globex Inc")));

    let minted = operator.json(&["tenants", "token", &id, "--ttl-seconds", "3600"]).await;
    let globex = Cli::new(&relay.base, minted["token"].as_str().unwrap());
    assert_eq!(globex.ok(&["sources", "list"]).await.trim(), "(none)");
    let suspended = operator.json(&["tenants", "update", &id, "--status", "suspended"]).await;
    assert_eq!(suspended["status"], "suspended");
    let stderr = globex.fails(&["tenants", "list"]).await;
    assert!(stderr.contains("forbidden (403)") && stderr.contains("needs an operator token"), "{stderr}");
    drop(relay);
}

#[tokio::test]
async fn login_saves_a_profile_that_later_commands_use_until_logout() {
    let (relay, tenant, _) = relay_and_tenant().await;
    let cli = Cli::bare();
    assert!(cli.fails(&["sources", "list"]).await.contains("no token"));

    let refused = cli.fails(&["login", "--url", &relay.base, "--token", "not-a-token"]).await;
    assert!(refused.contains("unauthorized (401)"), "{refused}");
    assert!(!cli.config_dir.join("profile.toml").exists(), "a refused token is not saved");

    let out = cli.ok(&["login", "--url", &relay.base, "--token", &tenant.token]).await;
    assert!(out.contains(&format!("as tenant {} (acme)", tenant.id)), "{out}");
    assert!(out.contains(&cli.config_dir.join("profile.toml").display().to_string()), "{out}");
    assert!(row(&cli.ok(&["sources", "list"]).await, &tenant.source_id).contains("wap"));

    let operator = token(json!({"role": "operator", "sub": "e2e"}));
    let out = cli.ok(&["login", "--url", &relay.base, "--token", &operator]).await;
    assert!(out.contains("as an operator"), "{out}");
    assert!(row(&cli.ok(&["tenants", "list"]).await, &tenant.id).contains("acme"));

    assert!(cli.ok(&["logout"]).await.contains("Logged out"));
    assert!(cli.fails(&["tenants", "list"]).await.contains("no token"));
    drop(relay);
}

#[tokio::test]
async fn all_follows_next_cursor_past_the_page_size() {
    let (relay, _tenant, cli) = relay_and_tenant().await;
    for name in ["s1", "s2", "s3", "s4"] {
        cli.json(&["sources", "create", "--name", name, "--secret", "secret-of-a-source"]).await;
    }
    let first = cli.json(&["sources", "list", "--limit", "2"]).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("another page").to_owned();
    let second = cli.json(&["sources", "list", "--limit", "2", "--cursor", &cursor]).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 2);

    let run = cli.run(&["sources", "list", "--limit", "2"]).await;
    assert_eq!(run.stdout.lines().count(), 3, "a header and two rows:\n{}", run.stdout);
    assert!(run.stderr.contains(&format!("--cursor {cursor}")), "{}", run.stderr);

    let all = cli.json(&["sources", "list", "--limit", "2", "--all"]).await;
    let ids = |items: &Value| -> Vec<String> {
        items.as_array().expect("an array").iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
    };
    let every = ids(&all);
    let unique: std::collections::HashSet<&String> = every.iter().collect();
    assert_eq!((every.len(), unique.len()), (5, 5), "every source once: {every:?}");
    assert_eq!([ids(&first["data"]), ids(&second["data"])].concat(), every[..4], "in the pages' order");
    let run = cli.run(&["sources", "list", "--limit", "2", "--all"]).await;
    assert_eq!(run.stdout.lines().count(), 6, "a header and five rows:\n{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    drop(relay);
}

#[tokio::test]
async fn api_errors_show_the_problem_code_and_detail_and_exit_non_zero() {
    let (relay, tenant, cli) = relay_and_tenant().await;
    let missing = SourceId::new().to_string();
    let stderr = cli.fails(&["sources", "get", &missing]).await;
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(&format!("GET /v1/sources/{missing}: source_not_found (404): Not Found")),
        "{stderr}"
    );

    let stderr = Cli::new(&relay.base, "not-a-token").fails(&["sources", "list"]).await;
    assert!(stderr.contains("unauthorized (401): the bearer token is not valid"), "{stderr}");

    let stderr = cli.fails(&["destinations", "create", "--endpoint", "ftp://example.com/hook"]).await;
    assert!(stderr.contains("(422)") && stderr.contains("url"), "{stderr}");

    let nowhere = Cli::new(&format!("http://127.0.0.1:{}", free_port()), &tenant.token);
    assert!(nowhere.fails(&["stats"]).await.contains("could not reach the relay"));
    drop(relay);
}
