//! The ingress: `POST /v1/ingest/{source_id}` takes one WAPing event, and `GET` answers the
//! subscription handshake. Order of work (CONTRACT §3): size limit → source lookup → signature
//! on the raw bytes → JSON and schema → tenant and plan → the plan's ingest rate → backlog cap →
//! dedupe → one transaction that stores the event and its deliveries → answer.
//!
//! Invariant: a 2xx is sent only after the transaction holding the event has committed. Writes
//! go through the group-commit [`writer::Writer`], so concurrent requests share commits.

mod activity;
mod backlog;
mod backpressure;
pub mod doc;
mod handshake;
mod ingest;
mod rejection;
mod source_cache;
mod streamed;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use relay_core::secret::MasterKey;
use relay_store::handoff::Handoff;
use relay_store::{PgPool, Redis};

pub use writer::{Writer, WriterConfig};

#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// Largest accepted body (`RELAY_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// How long a tenant's backlog count is reused before it is counted again.
    pub backlog_refresh: Duration,
    /// Longest life of a cached source or fan-out; changes announced by Postgres drop entries at
    /// once.
    pub source_cache_ttl: Duration,
    /// The group-commit writer and its queue bounds.
    pub writer: WriterConfig,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1_048_576,
            backlog_refresh: Duration::from_secs(1),
            source_cache_ttl: Duration::from_secs(60),
            writer: WriterConfig::default(),
        }
    }
}

/// Everything the ingest handlers share.
#[derive(Clone)]
pub struct IngressState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    redis: Redis,
    master_key: MasterKey,
    config: IngressConfig,
    writer: Writer,
    backlog: Arc<backlog::BacklogCache>,
    cache: Arc<source_cache::ConfigCache>,
    handoff: Option<Arc<dyn Handoff>>,
    waiting: backpressure::Waiting,
    rejections: Arc<rejection::tally::Tally>,
    limiter: relay_store::ingest_limit::IngestLimiter,
    activity: Arc<activity::Activity>,
}

impl IngressState {
    /// Starts the group-commit writer on the current runtime, without a local dispatcher.
    pub fn new(pool: PgPool, redis: Redis, master_key: MasterKey, config: IngressConfig) -> Self {
        Self::with_handoff(pool, redis, master_key, config, None)
    }

    /// Starts the group-commit writer; deliveries the local dispatcher (`handoff`) takes are
    /// queued leased to it and handed over after the commit.
    pub fn with_handoff(
        pool: PgPool,
        redis: Redis,
        master_key: MasterKey,
        config: IngressConfig,
        handoff: Option<Arc<dyn Handoff>>,
    ) -> Self {
        let cache = source_cache::ConfigCache::new(config.source_cache_ttl);
        tokio::spawn(cache.clone().watch(pool.clone()));
        let writer =
            Writer::start(pool.clone(), redis.clone(), config.writer.clone(), cache.clone(), handoff.clone());
        let backlog = backlog::BacklogCache::start(pool.clone(), config.backlog_refresh);
        let waiting = backpressure::Waiting::default();
        let rejections = Arc::new(rejection::tally::Tally::default());
        tokio::spawn(rejection::tally::Tally::flush_forever(Arc::downgrade(&rejections), pool.clone()));
        let limiter = relay_store::ingest_limit::IngestLimiter::new(redis.clone());
        let activity = Arc::new(activity::Activity::default());
        tokio::spawn(activity::Activity::flush_forever(Arc::downgrade(&activity), pool.clone()));
        let inner = Inner {
            pool,
            redis,
            master_key,
            config,
            writer,
            backlog,
            cache,
            handoff,
            waiting,
            rejections,
            limiter,
            activity,
        };
        Self { inner: Arc::new(inner) }
    }
}

pub fn router(state: IngressState) -> Router {
    Router::new()
        .route("/v1/ingest/{source_id}", get(handshake::get_handshake).post(ingest::post_ingest))
        .with_state(state)
}
