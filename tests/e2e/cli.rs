//! The binary's commands, as a user runs them: migrate, tenant create, token issue (and --raw),
//! openapi, completions.

use reqwest::Method;
use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn openapi_command_prints_the_committed_spec() {
    let printed = run_cli("postgres://postgres@127.0.0.1:1/unused", &["openapi"]);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../api-spec/openapi.json")).unwrap();
    let printed: Value = serde_json::from_str(&printed).unwrap();
    let committed: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(printed, committed, "api-spec/openapi.json is stale: regenerate it with `wap-relay openapi`");
    assert!(printed["paths"]["/v1/ingest/{source_id}"].is_object());
}

#[tokio::test]
async fn tenant_create_and_token_issue_mint_tokens_the_api_accepts() {
    let (db, prefix) = fresh_names().await;
    assert!(run_cli(&db, &["migrate"]).is_empty());
    let tenant: Value =
        serde_json::from_str(&run_cli(&db, &["tenant", "create", "--name", "Acme", "--plan", "growth"]))
            .unwrap();
    assert_eq!(tenant["plan"], "growth");
    assert_eq!(tenant["limits"]["sources"], 2, "the tenant as the admin API shows it");
    assert!(tenant["token_expires_at"].is_string());
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"))
        .args(["tenant", "create", "--name", " ", "--plan", "starter"])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--name must be 1 to 200 characters"));
    let tenant_id = tenant["id"].as_str().unwrap();
    let server = Binary::start(&db, &prefix, &[]).await;
    let client = reqwest::Client::new();

    let (status, me) =
        api(&client, &server.base, Method::GET, "/v1/tenant", tenant["token"].as_str().unwrap(), None).await;
    assert_eq!((status, me["id"].as_str()), (200, Some(tenant_id)), "{me}");

    let operator: Value =
        serde_json::from_str(&run_cli(&db, &["token", "issue", "--operator", "--ttl", "1h"])).unwrap();
    let (status, list) =
        api(&client, &server.base, Method::GET, "/v1/tenants", operator["token"].as_str().unwrap(), None)
            .await;
    assert_eq!(status, 200);
    assert_eq!(list["data"][0]["id"].as_str(), Some(tenant_id));

    let minted: Value =
        serde_json::from_str(&run_cli(&db, &["token", "issue", "--tenant", tenant_id])).unwrap();
    // --raw: the token alone, for scripts.
    let raw = run_cli(&db, &["token", "issue", "--tenant", tenant_id, "--raw"]);
    let (status, _) = api(&client, &server.base, Method::GET, "/v1/tenant", raw.trim(), None).await;
    assert_eq!((status, raw.lines().count()), (200, 1), "{raw}");
    let (status, _) =
        api(&client, &server.base, Method::GET, "/v1/sources", minted["token"].as_str().unwrap(), None).await;
    assert_eq!(status, 200);
    // A tenant token is not an operator token.
    let (status, _) =
        api(&client, &server.base, Method::GET, "/v1/tenants", minted["token"].as_str().unwrap(), None).await;
    assert_eq!(status, 403);
    assert!(server.terminate().await.success());
}

#[tokio::test]
async fn secrets_and_tokens_never_reach_the_log_even_at_debug_level() {
    let (db, prefix) = fresh_names().await;
    let log_path = std::env::temp_dir().join(format!("wap-relay-log-{}.txt", uuid::Uuid::now_v7().simple()));
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Binary::start_logging_to(&db, &prefix, &[("RUST_LOG", "debug")], log.into()).await;
    let client = reqwest::Client::new();
    let operator = token(serde_json::json!({"role": "operator", "sub": "e2e"}));
    let t = tenant_with_source(&client, &server.base, &operator, "starter").await;
    let verify_token = "verify-token-not-for-logs";
    let patch = serde_json::json!({"verify_token": verify_token});
    let (status, _) = api(
        &client,
        &server.base,
        Method::PATCH,
        &format!("/v1/sources/{}", t.source_id),
        &t.token,
        Some(patch),
    )
    .await;
    assert_eq!(status, 200);
    let handshake =
        format!("{}?hub.mode=subscribe&hub.verify_token={verify_token}&hub.challenge=c1", t.ingest_url);
    assert_eq!(client.get(handshake).send().await.unwrap().text().await.unwrap(), "c1");
    assert_eq!(ingest(&client, &t.ingest_url, &wap_event("evt_log")).await, 200);
    assert!(server.terminate().await.success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(log.contains("/v1/ingest/"), "the debug log was captured");
    for secret in [verify_token, WAP_SECRET, t.token.as_str(), operator.as_str(), JWT_SECRET, MASTER_KEY] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn completions_cover_every_command_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run_cli("postgres://postgres@127.0.0.1:1/unused", &["completions", shell]);
        for command in ["serve", "listen", "sources", "destinations", "deliveries", "replay", "login"] {
            assert!(script.contains(command), "{shell} completions lack `{command}`");
        }
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"))
        .args(["completions", "cmd"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "an unknown shell is refused");
}
