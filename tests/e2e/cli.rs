//! The binary's commands, as a user runs them: migrate, tenant create, token issue, openapi.

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
    let (status, _) =
        api(&client, &server.base, Method::GET, "/v1/sources", minted["token"].as_str().unwrap(), None).await;
    assert_eq!(status, 200);
    // A tenant token is not an operator token.
    let (status, _) =
        api(&client, &server.base, Method::GET, "/v1/tenants", minted["token"].as_str().unwrap(), None).await;
    assert_eq!(status, 403);
    assert!(server.terminate().await.success());
}
