//! Wiring: connect to Postgres (creating and migrating the database), set up Redis, load or
//! generate the development secrets, and run the roles this process was given on one listener.
//! Shutdown (SIGTERM/SIGINT, or the caller's future) stops accepting requests, lets the dispatcher
//! drain, and returns.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use relay_core::secret::{MasterKey, random_bytes};
use relay_store::db::{self, PoolConfig};
use relay_store::handoff::Handoff;
use relay_store::{PgPool, Redis, settings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::settings::Settings;

/// How often the dispatcher role purges rows past their tenant's retention.
const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// The longest any request may take, body included (slow clients cannot hold a connection).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest a client may take to send a request's headers.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What every role needs.
#[derive(Clone)]
pub struct Deps {
    pub pool: PgPool,
    /// The admin API's heavy reads: their own connections, with a statement timeout.
    pub admin_reads: PgPool,
    pub redis: Redis,
    pub master_key: MasterKey,
    pub jwt: relay_admin::JwtKeys,
    pub streams: Arc<relay_admin::stream::StreamHub>,
}

/// Connects and migrates, then resolves the secrets (configured, or generated once and stored).
pub async fn prepare(settings: &Settings) -> anyhow::Result<Deps> {
    let config = PoolConfig { max_connections: settings.db_pool_size, ..PoolConfig::default() };
    let pool = db::connect_and_migrate(&settings.database_url, &config)
        .await
        .context("connecting to Postgres and applying migrations")?;
    let redis = Redis::new(&settings.redis_url, &settings.redis_prefix)
        .map_err(|e| anyhow::anyhow!("REDIS_URL is not usable: {e}"))?;
    let master_key_text = match &settings.master_key {
        Some(k) => k.expose().to_owned(),
        None => {
            tracing::warn!(
                "RELAY_MASTER_KEY is not set: using a generated development key stored in the database"
            );
            settings::get_or_init(&pool, "dev_master_key", MasterKey::generate_base64).await?
        }
    };
    let mut master_key = MasterKey::from_base64(&master_key_text).context("RELAY_MASTER_KEY")?;
    if let Some(previous) = &settings.master_key_previous {
        master_key = master_key.with_previous(previous.expose()).context("RELAY_MASTER_KEY_PREVIOUS")?;
    }
    let jwt_secret = match &settings.jwt_secret {
        Some(s) => s.expose().as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "RELAY_JWT_SECRET is not set: using a generated development secret stored in the database"
            );
            let generate = || base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>());
            settings::get_or_init(&pool, "dev_jwt_secret", generate).await?.into_bytes()
        }
    };
    let mut jwt = relay_admin::JwtKeys::new(&jwt_secret).context("RELAY_JWT_SECRET")?;
    if let Some(previous) = &settings.jwt_secret_previous {
        jwt = jwt.with_previous(previous.expose().as_bytes()).context("RELAY_JWT_SECRET_PREVIOUS")?;
    }
    let streams = relay_admin::stream::StreamHub::new(pool.clone(), redis.clone());
    let admin_reads = admin_reads_pool(&pool, settings);
    Ok(Deps { pool, admin_reads, redis, master_key, jwt, streams })
}

/// The admin API's read pool, on the main pool's connection options (CONTRACT §10: admin reads
/// never take the connections of ingest and the dispatcher).
pub fn admin_reads_pool(main: &PgPool, settings: &Settings) -> PgPool {
    let config = PoolConfig { max_connections: settings.admin_db_pool_size, ..PoolConfig::default() };
    db::connect_reads(&main.connect_options(), &config, settings.admin_statement_timeout)
}

async fn healthz() -> &'static str {
    "ok"
}

/// The HTTP router of the roles that serve HTTP; `handoff` is this process's dispatcher, when it
/// runs one (ingest then hands it the deliveries it can attempt at once).
pub fn router(deps: &Deps, settings: &Settings, handoff: Option<Arc<dyn Handoff>>) -> Router {
    let metrics = crate::metrics::handle();
    let (pool, redis) = (deps.pool.clone(), deps.redis.clone());
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(crate::metrics::readyz).with_state((deps.pool.clone(), deps.redis.clone())))
        .route("/metrics", get(move || std::future::ready(crate::metrics::render(&metrics, &pool, &redis))));
    if settings.roles.ingress {
        let writer =
            relay_ingress::WriterConfig { max_wait: settings.ingest_queue_wait, ..Default::default() };
        let config = relay_ingress::IngressConfig {
            max_body_bytes: settings.max_body_bytes,
            writer,
            ..Default::default()
        };
        let state = relay_ingress::IngressState::with_handoff(
            deps.pool.clone(),
            deps.redis.clone(),
            deps.master_key.clone(),
            config,
            handoff,
        );
        app = app.merge(relay_ingress::router(state));
    }
    if settings.roles.admin {
        app = app.merge(relay_admin::router(admin_state(deps, settings)));
    }
    app.fallback(|| async { relay_http::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(request_line)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_response(relay_http::problem_responses))
}

pub fn admin_state(deps: &Deps, settings: &Settings) -> relay_admin::AdminState {
    relay_admin::AdminState {
        pool: deps.pool.clone(),
        reads: relay_admin::ReadBudget::new(deps.admin_reads.clone(), settings.admin_reads_per_tenant),
        master_key: deps.master_key.clone(),
        jwt: deps.jwt.clone(),
        public_url: settings.public_url.clone(),
        allow_private_destinations: settings.allow_private_destinations,
        require_https_destinations: settings.require_https_destinations,
        streams: deps.streams.clone(),
        manual_limit: relay_admin::manual::limiter(deps.redis.clone()),
    }
}

/// The span of a request: method, path and request id (`x-request-id`: the client's, else a new
/// UUID, and echoed in the answer). The query string is left out because a handshake carries
/// its verify token there.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::info_span!("request", http.method = %request.method(), http.path = %request.uri().path(), request.id = %id)
}

/// The one line per request: its status and duration (the span adds method, path, request id).
fn request_line<B>(response: &axum::http::Response<B>, latency: std::time::Duration, _: &tracing::Span) {
    tracing::info!(
        http.status = response.status().as_u16(),
        http.latency_ms = latency.as_millis() as u64,
        "request"
    );
}

/// How often `serve` tries Postgres again while it is unreachable at start.
const POSTGRES_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// [`prepare`], trying again while Postgres is unreachable: one clear line says so (the URL
/// without its password, and how to start Postgres), then it retries quietly. Any other error
/// (a bad URL, a failed migration, a bad secret) ends the start at once.
async fn prepare_waiting_for_postgres(settings: &Settings) -> anyhow::Result<Deps> {
    let mut said = false;
    loop {
        match prepare(settings).await {
            Ok(deps) => return Ok(deps),
            Err(e) if is_unreachable(&e) => {
                if !said {
                    said = true;
                    tracing::error!(
                        "Postgres at {} is unreachable ({}); retrying every {} s. Start it (e.g. `pg_ctlcluster 15 main start`, or `docker compose -f deploy/compose.yaml up -d postgres`)",
                        without_password(&settings.database_url),
                        e.root_cause(),
                        POSTGRES_RETRY.as_secs()
                    );
                }
                tokio::time::sleep(POSTGRES_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<relay_store::StoreError>().is_some_and(|s| s.is_unavailable()))
}

/// A database URL fit for a log line: the password replaced by `***`.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(an unparsable DATABASE_URL)".into(),
    }
}

/// Runs the configured roles until `shutdown` resolves.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let deps = tokio::select! {
        deps = prepare_waiting_for_postgres(&settings) => deps?,
        () = stopped(stop_rx.clone()) => return Ok(()),
    };
    let streams = deps.streams.clone();
    let mut closing = stop_rx.clone();
    tokio::spawn(async move {
        let _ = closing.wait_for(|stop| *stop).await;
        // Event streams never end by themselves: end them, so the drain is not held up.
        streams.close();
    });

    let dispatcher = if settings.roles.dispatcher {
        let (pool, redis, key) = (deps.pool.clone(), deps.redis.clone(), deps.master_key.clone());
        Some(relay_dispatcher::Dispatcher::start(pool, redis, key, dispatcher_config(&settings))?)
    } else {
        None
    };
    let handoff = dispatcher.as_ref().map(|d| d.handoff());
    let dispatcher = dispatcher.map(|d| tokio::spawn(d.run(stopped(stop_rx.clone()))));

    if settings.roles.dispatcher {
        tokio::spawn(crate::metrics::keep_pending_gauges(deps.pool.clone()));
        let sweep =
            relay_dispatcher::retention::run(deps.pool.clone(), RETENTION_INTERVAL, stopped(stop_rx.clone()));
        tokio::spawn(sweep);
    }

    let app = router(&deps, &settings, handoff);
    tracing::info!(listen = %listener.local_addr()?, roles = ?settings.roles, "wap-relay serving");
    let limits = crate::listener::ListenerConfig {
        max_connections: settings.max_connections,
        header_timeout: HEADER_TIMEOUT,
        drain: settings.shutdown_grace,
    };
    let transport = match &settings.tls {
        Some((cert, key)) => crate::listener::Transport::Tls(crate::tls::acceptor(cert, key)?),
        None => crate::listener::Transport::Plain,
    };
    crate::listener::serve(listener, app, limits, transport, stopped(stop_rx.clone())).await?;
    if let Some(handle) = dispatcher {
        handle.await.context("the dispatcher panicked")??;
    }
    deps.pool.close().await;
    deps.admin_reads.close().await;
    tracing::info!("wap-relay stopped");
    Ok(())
}

fn dispatcher_config(settings: &Settings) -> relay_dispatcher::DispatcherConfig {
    relay_dispatcher::DispatcherConfig {
        allow_private_destinations: settings.allow_private_destinations,
        concurrency: settings.dispatch_concurrency,
        lease_duration: settings.dispatch_lease,
        unhealthy_after: settings.disable_failing_after,
        shutdown_deadline: settings.shutdown_grace,
        ..relay_dispatcher::DispatcherConfig::default()
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
