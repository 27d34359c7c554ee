//! The dispatcher's loop: wake up (notification, a freed slot, a written batch of outcomes, a
//! limit that ends, or the poll interval), run a round, repeat at once while rounds claim work;
//! on shutdown, drain.
//!
//! Invariants: the LISTEN is armed before the first query, so no wake-up is missed (and the poll
//! covers a lost listener connection); a round is never interrupted half-way (the shutdown signal
//! is only looked at between rounds), so a claim is always followed by its attempts; at shutdown
//! no new round starts, in-flight attempts get until the deadline, and the leases of the rest are
//! given back.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use relay_core::secret::MasterKey;
use relay_store::deliveries::WAKE_CHANNEL;
use relay_store::dispatch::{Release, fail_deliveries_of_deleted_destinations, release_leases};
use relay_store::{PgPool, Redis};
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::DispatcherConfig;
use crate::client::build_client;
use crate::inflight::{Context, InFlight};
use crate::limits::Limiter;
use crate::recorder::{self, RecorderConfig};

const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub(crate) struct Engine {
    pub(crate) pool: PgPool,
    pub(crate) key: MasterKey,
    pub(crate) config: DispatcherConfig,
    pub(crate) limiter: Limiter,
    pub(crate) ctx: Arc<Context>,
    pub(crate) tracker: TaskTracker,
    recorder: tokio::task::JoinHandle<()>,
    /// Tenants and destinations known to be at their rate limit (or unusable), until when.
    pub(crate) throttled_tenants: HashMap<Uuid, Instant>,
    pub(crate) throttled_destinations: HashMap<Uuid, Instant>,
    /// The `max_in_flight` of every destination seen, to skip the full ones in the next query.
    pub(crate) max_in_flight: HashMap<Uuid, u32>,
    pub(crate) rotation: usize,
    /// The last round left due work for lack of capacity (slots, or room in the recorder's
    /// backlog): a freed slot or a written batch is worth a new round.
    pub(crate) capacity_bound: bool,
}

impl Engine {
    pub fn start(
        pool: PgPool,
        redis: Redis,
        key: MasterKey,
        config: DispatcherConfig,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let client = build_client(config.allow_private_destinations).context("building the HTTP client")?;
        let give_up_after = config.lease_duration.max(Duration::from_secs(5));
        let (records, recorder) = recorder::start(
            pool.clone(),
            RecorderConfig {
                batch: config.batch_size.max(1) as usize,
                unhealthy_after: config.unhealthy_after,
                give_up_after,
            },
        );
        let ctx = Arc::new(Context {
            client,
            records,
            in_flight: Arc::new(InFlight::new(config.concurrency.max(1))),
            cancel: CancellationToken::new(),
        });
        Ok(Self {
            pool,
            key,
            config,
            limiter: Limiter::new(redis),
            ctx,
            tracker: TaskTracker::new(),
            recorder,
            throttled_tenants: HashMap::new(),
            throttled_destinations: HashMap::new(),
            max_in_flight: HashMap::new(),
            rotation: 0,
            capacity_bound: false,
        })
    }

    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        let wake = Arc::new(Notify::new());
        let (armed_tx, armed_rx) = oneshot::channel();
        let listener = tokio::spawn(listen(self.pool.clone(), wake.clone(), armed_tx));
        // Arm the wake-up before the first query; if Postgres cannot be reached yet, polling
        // covers until the listener connects.
        let _ = tokio::time::timeout(Duration::from_secs(5), armed_rx).await;
        tracing::info!(concurrency = self.config.concurrency, "dispatcher started");
        let mut last_housekeeping = Instant::now();
        loop {
            if (&mut shutdown).now_or_never().is_some() {
                break;
            }
            let more = match self.round().await {
                Ok(more) => more,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatch round failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ERROR_PAUSE) => {}
                    }
                    continue;
                }
            };
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                last_housekeeping = Instant::now();
                if let Err(e) = fail_deliveries_of_deleted_destinations(&self.pool).await {
                    tracing::warn!(error = %e, "housekeeping of deleted destinations failed");
                }
            }
            if more {
                continue;
            }
            let until = self.next_wake();
            let in_flight = self.ctx.in_flight.clone();
            let drained = self.ctx.records.drained.clone();
            let capacity_bound = self.capacity_bound;
            // Notifications that arrive while a round runs leave one stored wake-up (`Notify`
            // keeps at most one), so a burst of them costs at most one more round.
            tokio::select! {
                () = &mut shutdown => break,
                () = wake.notified() => {}
                () = in_flight.freed.notified(), if capacity_bound => {}
                () = drained.notified(), if capacity_bound => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
        listener.abort();
        self.drain().await;
        Ok(())
    }

    /// The poll interval, or sooner when a known limit ends.
    fn next_wake(&self) -> Instant {
        let poll = Instant::now() + self.config.poll_interval;
        self.throttled_tenants
            .values()
            .chain(self.throttled_destinations.values())
            .copied()
            .fold(poll, Instant::min)
    }

    async fn drain(self) {
        tracing::info!("dispatcher stopping: finishing attempts in flight");
        self.tracker.close();
        if tokio::time::timeout(self.config.shutdown_deadline, self.tracker.wait()).await.is_err() {
            self.ctx.cancel.cancel();
            self.tracker.wait().await;
        }
        let leftover: Vec<Release> = self
            .ctx
            .in_flight
            .take_leases()
            .into_iter()
            .map(|(id, lease_token)| Release { id, lease_token, at: None })
            .collect();
        if !leftover.is_empty() {
            match release_leases(&self.pool, &leftover).await {
                Ok(n) => tracing::info!(count = n, "gave back the leases of unfinished attempts"),
                Err(e) => tracing::warn!(error = %e, "could not give leases back; they end by themselves"),
            }
        }
        // The recorder ends once the last sender (held by the context) is gone.
        drop(self.ctx);
        if tokio::time::timeout(Duration::from_secs(10), self.recorder).await.is_err() {
            tracing::warn!("gave up waiting for attempt outcomes to be recorded");
        }
        tracing::info!("dispatcher stopped");
    }
}

/// Keeps a LISTEN on the wake-up channel, reconnecting as needed; signals `armed` once the first
/// LISTEN is in place (or dropped when it fails, so the loop starts by polling).
async fn listen(pool: PgPool, wake: Arc<Notify>, armed: oneshot::Sender<()>) {
    let mut armed = Some(armed);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(WAKE_CHANNEL).await {
                Ok(()) => {
                    if let Some(armed) = armed.take() {
                        let _ = armed.send(());
                    }
                    // Anything committed while we were not listening is due now.
                    wake.notify_one();
                    loop {
                        match listener.recv().await {
                            Ok(_) => wake.notify_one(),
                            Err(e) => {
                                tracing::warn!(error = %e, "wake-up listener lost; polling meanwhile");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; polling meanwhile"),
            },
            Err(e) => tracing::warn!(error = %e, "wake-up listener cannot connect; polling meanwhile"),
        }
        armed.take();
        tokio::time::sleep(ERROR_PAUSE).await;
    }
}
