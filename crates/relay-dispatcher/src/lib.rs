//! The dispatcher: claims due deliveries, sends them to their destinations and records what
//! happened (CONTRACT §4). Any number of processes may run it against one Postgres and one Redis.
//!
//! ```text
//! lane: ingest of this process stored deliveries already leased to us and hands them over
//!   -> take limiter tokens -> deliver from memory (no claim, no read of the event)
//! rounds: wake-up (LISTEN, armed before the first query) or poll
//!   -> list due destinations in the queue (skipping disabled ones, and tenants/destinations
//!      known to be limited)
//!   -> share the free concurrency fairly between tenants, then their destinations
//!   -> take limiter tokens (GCRA in Redis; a local governor limiter while Redis is down)
//!   -> claim exactly that many rows per destination with a lease, commit
//! outbox: `relay.*` events are published from the outbox (any process, each row once), and one
//!   process at a time scans for sources and devices gone silent
//! both: deliver concurrently (semaphore, per-destination max_in_flight held across the fleet), SSRF-checked client;
//!   the slot is free as soon as the HTTP exchange ends
//!   -> record attempts and outcomes in batches (one statement per batch, a few batches at once;
//!      no attempt starts while recording is behind)
//! ```
//!
//! The server binary starts a [`Dispatcher`], gives its [`Dispatcher::handoff`] to the ingress
//! of the same process, and runs it; [`run`] does the same without a hand-off:
//!
//! ```no_run
//! # async fn demo(pool: relay_store::PgPool, redis: relay_store::Redis,
//! #               key: relay_core::secret::MasterKey) -> anyhow::Result<()> {
//! let config = relay_dispatcher::DispatcherConfig { allow_private_destinations: false, ..Default::default() };
//! relay_dispatcher::run(pool, redis, key, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! `run` returns when `shutdown` completes and the dispatcher has stopped: it stops claiming,
//! lets in-flight attempts finish until [`DispatcherConfig::shutdown_deadline`], gives back the
//! leases of the attempts still running then (without counting an attempt), and flushes the
//! outcomes it holds. It returns an error only if it cannot start (no HTTP client).
//!
//! Invariants: no transaction is held across an HTTP call; a row is claimed only after the
//! limiter granted its attempt, so limited rows are never touched (never dropped, never counted);
//! an outcome is applied only by the holder of the row's lease; payloads and secrets are never
//! logged.

mod attempt;
mod client;
mod engine;
mod fleet;
mod inflight;
mod lane;
mod limits;
mod operational;
mod outcome;
mod prepare;
mod recorder;
pub mod request;
pub mod retention;
mod round;
mod share;
mod shared;

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use relay_core::secret::MasterKey;
use relay_store::handoff::Handoff;
use relay_store::{PgPool, Redis};

pub use client::{GuardedResolver, build_client};

/// Knobs of the dispatcher. `Default` is the production setting.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Allow destinations on loopback/private/link-local addresses
    /// (`RELAY_ALLOW_PRIVATE_DESTINATIONS`). Cloud-metadata addresses stay refused.
    pub allow_private_destinations: bool,
    /// Attempts in flight at once in this process.
    pub concurrency: usize,
    /// Most rows claimed in one round, and most outcomes recorded in one statement. Claims pause
    /// while more than 3 batches of outcomes wait to be recorded.
    pub batch_size: u32,
    /// The shortest lease of a claim. A claim holds a row for at least the destination's timeout
    /// plus 15 s (5 s of margin, 10 s for the outcome's wait in the bounded recorder queue), so
    /// neither a slow attempt nor its outcome outlives the lease. A crashed process's rows are
    /// due again as soon as its fleet heartbeat lapses (`fleet`), at the latest when the lease ends.
    pub lease_duration: Duration,
    /// How often to look for due work without a wake-up (retries, missed notifications).
    pub poll_interval: Duration,
    /// A destination whose attempts have all failed for this long is disabled.
    pub unhealthy_after: Duration,
    /// How long shutdown waits for in-flight attempts before giving their leases back.
    pub shutdown_deadline: Duration,
    /// How often deliveries that can no longer be attempted (deleted destinations, disabled ones
    /// past their retry window) are failed.
    pub housekeeping_interval: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            allow_private_destinations: false,
            concurrency: 512,
            batch_size: 500,
            lease_duration: Duration::from_secs(20),
            poll_interval: Duration::from_millis(500),
            unhealthy_after: Duration::from_secs(72 * 3600),
            shutdown_deadline: Duration::from_secs(10),
            housekeeping_interval: Duration::from_secs(60),
        }
    }
}

/// A dispatcher ready to run.
pub struct Dispatcher {
    engine: engine::Engine,
}

impl Dispatcher {
    /// Builds the HTTP client and starts the recorder; nothing is claimed before [`Dispatcher::run`].
    pub fn start(
        pool: PgPool,
        redis: Redis,
        master_key: MasterKey,
        config: DispatcherConfig,
    ) -> anyhow::Result<Self> {
        Ok(Self { engine: engine::Engine::start(pool, redis, master_key, config)? })
    }

    /// The hand-off for the ingress of this process: deliveries it stores leased to us are
    /// attempted from memory.
    pub fn handoff(&self) -> Arc<dyn Handoff> {
        self.engine.lane.clone()
    }

    /// Runs until `shutdown` completes, then drains (see the crate docs).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        self.engine.run(shutdown).await
    }
}

/// Runs a dispatcher (without a hand-off) until `shutdown` completes, then drains.
pub async fn run(
    pool: PgPool,
    redis: Redis,
    master_key: MasterKey,
    config: DispatcherConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    Dispatcher::start(pool, redis, master_key, config)?.run(shutdown).await
}
