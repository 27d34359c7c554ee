//! Postgres restarted while events are being ingested and delivered: every event answered 200
//! arrives at its destination, and while Postgres is away ingest answers a fast 503 with
//! `Retry-After`, never a 2xx. The test runs a Postgres server of its own (initdb into a
//! temporary directory, as the `postgres` user when the tests run as root) so it can restart it
//! without touching anyone else's database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::support::*;

const EVENTS: usize = 1_500;

/// A private Postgres cluster, stopped and removed when dropped.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
}

fn bin(name: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("Debian's PostgreSQL is installed");
    let mut dirs: Vec<PathBuf> = versions.filter_map(|e| Some(e.ok()?.path())).collect();
    dirs.sort();
    dirs.last().expect("a PostgreSQL version").join("bin").join(name)
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (the server refuses root).
fn pg(tool: &str, args: &[&str]) -> std::process::Output {
    let is_root =
        std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let mut command = if is_root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin(tool));
        c
    } else {
        std::process::Command::new(bin(tool))
    };
    let out = command.args(args).output().expect("the PostgreSQL tool runs");
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

impl PrivatePostgres {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("wap-relay-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::process::Command::new("chown").arg("postgres:postgres").arg(&dir).status();
        let data = dir.join("data");
        pg("initdb", &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        let pg = Self { dir, port: free_port() };
        pg.ctl("start");
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn ctl(&self, action: &str) {
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.dir.display());
        let log = self.dir.join("log").to_string_lossy().into_owned();
        pg("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "-m", "fast", action]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/wap_relay", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.ctl("stop"));
        let _ = std::fs::remove_dir_all(Path::new(&self.dir));
    }
}

#[tokio::test]
async fn a_postgres_restart_mid_run_loses_nothing_acknowledged() {
    let postgres = PrivatePostgres::start();
    let (_, prefix) = fresh_names().await;
    let relay = Binary::start(&postgres.url(), &prefix, &[("RELAY_DISPATCH_LEASE_SECONDS", "3")]).await;
    let client = reqwest::Client::new();
    let operator = token(json!({"role": "operator", "sub": "e2e"}));
    let t = tenant_with_source(&client, &relay.base, &operator, "enterprise").await;
    let receiver = Receiver::start().await;
    destination(&client, &relay.base, &t.token, json!({"url": receiver.url})).await;

    // Events go in at a steady pace; a third of the way through, Postgres restarts.
    let sending = futures::stream::iter(0..EVENTS)
        .map(|i| {
            let (client, url) = (client.clone(), t.ingest_url.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(2 * i as u64)).await;
                let body = wap_event(&format!("p{i}"));
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-wap-signature", format!("sha256={}", sign_hex(WAP_SECRET, body.as_bytes())))
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(r) => (i, r.status().as_u16(), r.headers().contains_key("retry-after")),
                    Err(_) => (i, 0, false),
                }
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>();
    let restart = async {
        tokio::time::sleep(Duration::from_millis(EVENTS as u64 * 2 / 3)).await;
        tokio::task::spawn_blocking(move || {
            postgres.ctl("restart");
            postgres
        })
        .await
        .unwrap()
    };
    let (answers, postgres) = tokio::join!(sending, restart);

    let acknowledged: Vec<String> =
        answers.iter().filter(|(_, s, _)| *s == 200).map(|(i, _, _)| format!("p{i}")).collect();
    let refused: Vec<&(usize, u16, bool)> = answers.iter().filter(|(_, s, _)| *s != 200).collect();
    assert!(
        refused.iter().all(|(_, s, retry)| *s == 503 && *retry),
        "only 503s with Retry-After: {refused:?}"
    );
    assert!(acknowledged.len() > EVENTS / 2, "most events were accepted: {}", acknowledged.len());
    // The restart was seen: connections broke, and requests in the gap were refused.
    eprintln!("postgres restart: {} acknowledged, {} refused with 503", acknowledged.len(), refused.len());

    let received = receiver.wait_for(acknowledged.len(), Duration::from_secs(60)).await;
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *per_event.entry(r.headers["x-wap-event-id"].to_str().unwrap().to_owned()).or_default() += 1;
    }
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !per_event.contains_key(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but never delivered: {lost:?}");
    assert!(relay.terminate().await.success());
    drop(postgres);
}
