//! The HTTP listener: hyper (HTTP/1.1, and HTTP/2 for clients that speak it) serving the router,
//! with the protections a public endpoint needs: a bound on open connections (past it a new
//! connection gets a short `503` problem and is closed, instead of the process holding thousands
//! of connections and their buffers), a timeout for reading a request's headers (a slow client
//! cannot hold a connection by trickling bytes, nor by stalling a TLS handshake), `TCP_NODELAY`,
//! optional TLS ([`crate::tls`]), and a graceful shutdown that
//! stops accepting, lets requests in progress finish, and closes idle connections.
//!
//! Invariant: every accepted connection holds one permit of the bound until it is closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerConfig {
    /// Connections open at once; past it new ones are answered 503 and closed.
    pub max_connections: usize,
    /// The longest a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long shutdown waits for requests in progress.
    pub drain: Duration,
}

/// What a new connection is before it carries HTTP.
#[derive(Clone)]
pub enum Transport {
    Plain,
    /// TLS, handshaken within the header timeout.
    Tls(tokio_rustls::TlsAcceptor),
}

/// What a connection past the bound is told before it is closed.
const REFUSAL_BODY: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the relay has too many open connections; retry shortly","code":"overloaded"}"#;

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ListenerConfig,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("relay_http_connections_refused_total").increment(1);
            if matches!(transport, Transport::Plain) {
                tokio::spawn(refuse(stream));
            }
            continue;
        };
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|request: axum::http::Request<Incoming>| request.map(axum::body::Body::new)),
        );
        match &transport {
            Transport::Plain => {
                let connection =
                    builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(permit);
                });
            }
            Transport::Tls(acceptor) => {
                let handshake = tokio::time::timeout(config.header_timeout, acceptor.accept(stream));
                let (builder, watcher) = (builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let Ok(Ok(tls)) = handshake.await else { return };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls), service).into_owned();
                    let _ = watcher.watch(connection).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(config.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still busy when the shutdown grace ended");
    }
    Ok(())
}

/// Answers one connection past the bound with a 503 problem and closes it. The request is read
/// first (briefly), so the close does not reset the connection before the client reads the answer.
async fn refuse(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
