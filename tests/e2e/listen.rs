//! `wap-relay listen` and the stream behind it (`GET /v1/stream`), through the real binaries: an
//! event ingested after `listen` connected reaches a local receiver signed with the secret
//! `listen` printed; a relay restart loses and repeats nothing (the stream resumes by
//! `Last-Event-ID`); an event ingested on one relay process reaches a stream served by another.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_core::secret::WebhookSecret;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(30);

/// A running `wap-relay listen`, with what it printed so far.
struct Listen {
    child: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    _config: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped (the CLI's config directory, away from $HOME).
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path =
                std::env::temp_dir().join(format!("wap-relay-listen-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn collect(lines: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(lines).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    out
}

impl Listen {
    /// Starts `listen` against `base` and waits until it is connected.
    async fn start(base: &str, token: &str, forward_to: &str) -> Listen {
        let config = tempdir::Dir::new();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"))
            .args(["listen", "--forward-to", forward_to])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WAP_RELAY_URL", base)
            .env("WAP_RELAY_TOKEN", token)
            .env("WAP_RELAY_CONFIG_DIR", &config.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let listen = Listen { child, stdout, stderr, _config: config };
        listen.wait_stderr("Ready").await;
        listen
    }

    async fn wait_stderr(&self, text: &str) {
        eventually(DEADLINE, &format!("listen to print {text:?}"), || async {
            self.stderr.lock().unwrap().iter().any(|l| l.contains(text)).then_some(())
        })
        .await;
    }

    /// The `whsec_` secret it printed.
    fn secret(&self) -> WebhookSecret {
        let lines = self.stdout.lock().unwrap();
        let line = lines.iter().find(|l| l.starts_with("Signing secret: ")).expect("the secret is printed");
        let text = line.trim_start_matches("Signing secret: ").split_whitespace().next().unwrap();
        WebhookSecret::parse(text).unwrap()
    }

    /// Its event lines that mention `wap_event_id`.
    fn lines_of(&self, wap_event_id: &str) -> Vec<String> {
        self.stdout.lock().unwrap().iter().filter(|l| l.contains(wap_event_id)).cloned().collect()
    }

    /// Ctrl-C: it stops cleanly.
    async fn interrupt(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
        tokio::time::timeout(DEADLINE, self.child.wait()).await.expect("listen exits on SIGINT").unwrap()
    }
}

/// Asserts that `got` carries `body` as the event `wap_id`, signed with `secret`.
fn assert_signed(got: &Received, body: &str, wap_id: &str, secret: &WebhookSecret) {
    let header = |n: &str| got.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(got.body.as_ref(), body.as_bytes(), "the body exactly as WAPing sent it");
    assert_eq!(header("x-wap-event-id"), wap_id);
    assert_eq!(header("x-wap-event-type"), "message.received");
    let (id, ts) = (header("webhook-id"), header("webhook-timestamp").parse::<i64>().unwrap());
    assert!(id.starts_with("evt_"), "webhook-id is the relay's event id: {id}");
    assert!(
        relay_core::sign::verify_header(&[secret], &id, ts, &got.body, &header("webhook-signature")),
        "the Standard Webhooks signature verifies with the printed secret"
    );
}

#[tokio::test]
async fn listen_forwards_signed_events_and_resumes_after_a_relay_restart() {
    let (db, prefix) = fresh_names().await;
    let port = free_port();
    let relay = Binary::start_on(port, &db, &prefix, &[], Stdio::inherit()).await;
    let client = reqwest::Client::new();
    let operator = token(json!({"sub": "op", "role": "operator"}));
    let tenant = tenant_with_source(&client, &relay.base, &operator, "growth").await;
    let receiver = Receiver::start().await;
    let listen = Listen::start(&relay.base, &tenant.token, &receiver.url).await;
    let secret = listen.secret();

    let first = wap_event("evt_listen_1");
    assert_eq!(ingest(&client, &tenant.ingest_url, &first).await, 200);
    let got = receiver.wait_for(1, DEADLINE).await;
    assert_signed(&got[0], &first, "evt_listen_1", &secret);
    eventually(DEADLINE, "the event's line", || async {
        listen
            .lines_of("evt_listen_1")
            .iter()
            .any(|l| l.contains("message.received") && l.contains(" 200 "))
            .then_some(())
    })
    .await;

    // The relay restarts; an event ingested before `listen` is back is replayed from the store.
    assert!(relay.terminate().await.success());
    listen.wait_stderr("reconnecting").await;
    let relay = Binary::start_on(port, &db, &prefix, &[], Stdio::inherit()).await;
    let second = wap_event("evt_listen_2");
    assert_eq!(ingest(&client, &tenant.ingest_url, &second).await, 200);
    receiver.wait_for(2, DEADLINE).await;
    // Pretty-printed with CRLF line ends: forwarded byte for byte all the same.
    let third: serde_json::Value = serde_json::from_str(&wap_event("evt_listen_3")).unwrap();
    let third = serde_json::to_string_pretty(&third).unwrap().replace('\n', "\r\n");
    assert_eq!(ingest(&client, &tenant.ingest_url, &third).await, 200);
    let got = receiver.wait_for(3, DEADLINE).await;
    assert_signed(&got[1], &second, "evt_listen_2", &secret);
    assert_signed(&got[2], &third, "evt_listen_3", &secret);
    // Nothing more arrives (no event twice): the stream is idle once the third is through.
    let ids = |r: &[Received]| -> Vec<String> {
        r.iter().map(|g| g.headers["x-wap-event-id"].to_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(&got), ["evt_listen_1", "evt_listen_2", "evt_listen_3"]);
    assert!(listen.interrupt().await.success(), "Ctrl-C exits cleanly");
    assert_eq!(ids(&receiver.received()), ["evt_listen_1", "evt_listen_2", "evt_listen_3"], "each once");
    relay.terminate().await;
}

#[tokio::test]
async fn an_event_ingested_on_one_process_reaches_a_stream_on_another() {
    let (db, prefix) = fresh_names().await;
    let ingress = Binary::start(&db, &prefix, &[("RELAY_ROLES", "ingress,admin")]).await;
    let streams = Binary::start(&db, &prefix, &[("RELAY_ROLES", "admin")]).await;
    let client = reqwest::Client::new();
    let operator = token(json!({"sub": "op", "role": "operator"}));
    let tenant = tenant_with_source(&client, &ingress.base, &operator, "growth").await;
    let receiver = Receiver::start().await;
    let listen = Listen::start(&streams.base, &tenant.token, &receiver.url).await;

    let body = wap_event("evt_other_process");
    let ingest_url = format!("{}/v1/ingest/{}", ingress.base, tenant.source_id);
    assert_eq!(ingest(&client, &ingest_url, &body).await, 200);
    let got = receiver.wait_for(1, DEADLINE).await;
    assert_signed(&got[0], &body, "evt_other_process", &listen.secret());
    listen.interrupt().await;
    ingress.terminate().await;
    streams.terminate().await;
}

#[tokio::test]
async fn listen_reports_a_local_server_that_is_down_and_goes_on() {
    let (db, prefix) = fresh_names().await;
    let relay = Binary::start(&db, &prefix, &[]).await;
    let client = reqwest::Client::new();
    let operator = token(json!({"sub": "op", "role": "operator"}));
    let tenant = tenant_with_source(&client, &relay.base, &operator, "growth").await;
    let down = format!("http://127.0.0.1:{}/hook", free_port());
    let listen = Listen::start(&relay.base, &tenant.token, &down).await;
    for id in ["evt_down_1", "evt_down_2"] {
        assert_eq!(ingest(&client, &tenant.ingest_url, &wap_event(id)).await, 200);
    }
    eventually(DEADLINE, "a line per event, each saying the local server is down", || async {
        let lines: Vec<String> =
            ["evt_down_1", "evt_down_2"].iter().flat_map(|id| listen.lines_of(id)).collect();
        (lines.len() == 2 && lines.iter().all(|l| l.contains("error:"))).then_some(())
    })
    .await;
    // A token the relay refuses ends listen with the API's code.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"))
        .args(["listen", "--forward-to", &down, "--url", &relay.base, "--token", "not-a-token"])
        .env("WAP_RELAY_CONFIG_DIR", std::env::temp_dir().join("wap-relay-listen-refused"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unauthorized"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    listen.interrupt().await;
    relay.terminate().await;
}
