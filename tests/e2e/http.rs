//! The HTTP surface as a whole (the server's router and listener): every error the relay writes is
//! problem+json with a `code`, whoever produced it, and the listener's own protections (the
//! header-read timeout, the connection bound, the declared body size) answer before work is done;
//! TLS on the listener.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

async fn problem(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
) -> (u16, String, serde_json::Value) {
    let r = client.request(method, url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    (status, kind, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn every_error_is_problem_json_with_a_code() {
    let app = App::start().await;
    let t = app.tenant_with_source("growth").await;
    let base = &app.base;
    let cases = [
        (reqwest::Method::POST, format!("{}/", t.ingest_url), 404, "not_found"),
        (reqwest::Method::GET, format!("{base}//v1/sources"), 404, "not_found"),
        (reqwest::Method::GET, format!("{base}/nothing/here"), 404, "not_found"),
        (reqwest::Method::PUT, t.ingest_url.clone(), 405, "method_not_allowed"),
        (reqwest::Method::DELETE, t.ingest_url.clone(), 405, "method_not_allowed"),
        (reqwest::Method::POST, format!("{base}/v1/ingest/%ff%fe"), 400, "invalid_request"),
        (reqwest::Method::GET, format!("{base}/v1/sources/%ff"), 400, "invalid_request"),
    ];
    for (method, url, status, code) in cases {
        let (got, kind, body) = problem(&app.client, method.clone(), &url, &t.token).await;
        assert_eq!((got, kind.as_str()), (status, "application/problem+json"), "{method} {url}: {body}");
        assert_eq!(body["code"], code, "{method} {url}: {body}");
        assert_eq!(body["status"], status);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let app = App::start().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // The headers never end: the listener closes the connection within its header timeout.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was still open after 30 s");
    app.stop().await;
}

#[tokio::test]
async fn connections_past_the_bound_get_a_503_problem() {
    let (db, prefix) = fresh_names().await;
    let mut args = settings_args(&db, &prefix);
    args.max_connections = Some(4);
    let app = App::start_with(args, None).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // The listener counts a connection once it accepted it: poll until the fifth is refused.
    let answer = eventually(Duration::from_secs(10), "a connection past the bound to be refused", || async {
        let mut extra = tokio::net::TcpStream::connect(&addr).await.ok()?;
        extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.ok()?;
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut buf)).await.ok()?.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        text.starts_with("HTTP/1.1 503").then_some(text)
    })
    .await;
    assert!(answer.contains("application/problem+json") && answer.contains("\"overloaded\""), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after"), "{answer}");
    // Once they close, new connections are served again.
    drop(held);
    eventually(Duration::from_secs(10), "service after the held connections closed", || async {
        let response = app.client.get(format!("{}/healthz", app.base)).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    app.stop().await;
}

/// TLS on the listener (`RELAY_TLS_CERT`/`RELAY_TLS_KEY`): HTTPS with the configured certificate
/// (HTTP/1.1 and HTTP/2), and plain HTTP on that port gets no answer.
#[tokio::test]
async fn the_listener_speaks_tls_with_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("wap-relay-tls-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (db, prefix) = fresh_names().await;
    let port = free_port();
    let (cert_path, key_path) = (cert.to_str().unwrap().to_owned(), key.to_str().unwrap().to_owned());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wap-relay"))
        .arg("serve")
        .env("DATABASE_URL", &db)
        .env("RELAY_REDIS_PREFIX", &prefix)
        .env("RELAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("RELAY_TLS_CERT", &cert_path)
        .env("RELAY_TLS_KEY", &key_path)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([root])
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/healthz");
    let answer = eventually(Duration::from_secs(60), "the relay over HTTPS", || async {
        client.get(&url).send().await.ok().filter(|r| r.status() == 200)
    })
    .await;
    assert_eq!(answer.text().await.unwrap(), "ok");
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/healthz")).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200, "plain HTTP is not served on a TLS listener");
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
