//! The dispatcher's loop: wake up (notification, a freed slot, a written batch of outcomes, a
//! limit that ends, or the poll interval), run a round over the queue, repeat at once while
//! rounds claim work; beside it the lane starts what this process's ingest handed over; on
//! shutdown, drain.
//!
//! Invariants: the LISTEN is armed before the first query, so no wake-up is missed (and the poll
//! covers a lost listener connection); a round is never interrupted half-way (the shutdown signal
//! is only looked at between rounds), so a claim is always followed by its attempts; at shutdown
//! no new round starts, the lane gives back what waits in it, in-flight attempts get until the
//! deadline, and the leases of the rest are given back.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use relay_core::secret::MasterKey;
use relay_store::deliveries::WAKE_CHANNEL;
use relay_store::dispatch::{Release, fail_deliveries_of_deleted_destinations, release_leases};
use relay_store::listen::{CONFIG_CHANNEL, Heard, listen};
use relay_store::watched::Watched;
use relay_store::{PgPool, Redis};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::DispatcherConfig;
use crate::client::build_client;
use crate::inflight::{Context, InFlight};
use crate::lane::Lane;
use crate::limits::Limiter;
use crate::recorder::{self, RecorderConfig};
use crate::shared::{Shared, Throttled};

/// How often the queue table is vacuumed (see `relay_store::dispatch::vacuum_queue`).
const VACUUM_EVERY: Duration = Duration::from_secs(10);
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Prepared destinations are re-read at least this often, whatever the announcements say.
const DESTINATION_TTL: Duration = Duration::from_secs(60);
const MAX_CACHED_DESTINATIONS: usize = 100_000;

pub(crate) struct Engine {
    pub(crate) shared: Arc<Shared>,
    pub(crate) lane: Arc<Lane>,
    recorder: tokio::task::JoinHandle<()>,
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
            in_flight: Arc::new(InFlight::new(config.concurrency.max(1), redis.clone())),
            cancel: CancellationToken::new(),
        });
        let shared = Arc::new(Shared {
            pool,
            key,
            config,
            limiter: Limiter::new(redis),
            ctx,
            tracker: TaskTracker::new(),
            throttled: Mutex::new(Throttled::default()),
            destinations: Watched::new(DESTINATION_TTL, MAX_CACHED_DESTINATIONS),
            wake: Notify::new(),
        });
        let lane = Lane::new(shared.clone());
        Ok(Self { shared, lane, recorder, max_in_flight: HashMap::new(), rotation: 0, capacity_bound: false })
    }

    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        let (armed_tx, armed_rx) = oneshot::channel();
        let listener = tokio::spawn(watch(self.shared.clone(), armed_tx));
        let lane_stop = CancellationToken::new();
        let lane = tokio::spawn(self.lane.clone().run(lane_stop.clone()));
        // The fleet's slots are kept until the last attempt is over (after the drain).
        let fleet_stop = CancellationToken::new();
        let fleet = tokio::spawn(crate::fleet::keep(
            self.shared.ctx.in_flight.clone(),
            self.shared.pool.clone(),
            fleet_stop.clone(),
        ));
        let vacuum = tokio::spawn(vacuum(self.shared.pool.clone()));
        let publisher = tokio::spawn(crate::operational::publish_forever(self.shared.pool.clone()));
        let silence = tokio::spawn(crate::operational::scan_silence_forever(self.shared.pool.clone()));
        // Arm the wake-up before the first query; if Postgres cannot be reached yet, polling
        // covers until the listener connects.
        let _ = tokio::time::timeout(Duration::from_secs(5), armed_rx).await;
        tracing::info!(concurrency = self.shared.config.concurrency, "dispatcher started");
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
            if last_housekeeping.elapsed() >= self.shared.config.housekeeping_interval {
                last_housekeeping = Instant::now();
                self.max_in_flight.clear();
                if let Err(e) = fail_deliveries_of_deleted_destinations(&self.shared.pool).await {
                    tracing::warn!(error = %e, "housekeeping of deleted destinations failed");
                }
                if let Err(e) = expire_disabled(&self.shared.pool).await {
                    tracing::warn!(error = %e, "housekeeping of disabled destinations failed");
                }
            }
            if more {
                continue;
            }
            let until = self.next_wake();
            let shared = self.shared.clone();
            let capacity_bound = self.capacity_bound;
            // Notifications that arrive while a round runs leave one stored wake-up (`Notify`
            // keeps at most one), so a burst of them costs at most one more round.
            tokio::select! {
                () = &mut shutdown => break,
                () = shared.wake.notified() => {}
                () = shared.ctx.in_flight.freed.notified(), if capacity_bound => {}
                () = shared.ctx.records.drained.notified(), if capacity_bound => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
        listener.abort();
        vacuum.abort();
        publisher.abort();
        silence.abort();
        lane_stop.cancel();
        let _ = lane.await;
        self.drain().await;
        fleet_stop.cancel();
        let _ = fleet.await;
        Ok(())
    }

    /// The poll interval, or sooner when a known limit ends.
    fn next_wake(&self) -> Instant {
        let poll = Instant::now() + self.shared.config.poll_interval;
        self.shared.throttled().next_end().map_or(poll, |end| end.min(poll))
    }

    async fn drain(self) {
        tracing::info!("dispatcher stopping: finishing attempts in flight");
        let shared = self.shared;
        shared.tracker.close();
        if tokio::time::timeout(shared.config.shutdown_deadline, shared.tracker.wait()).await.is_err() {
            shared.ctx.cancel.cancel();
            shared.tracker.wait().await;
        }
        let leftover: Vec<Release> = shared
            .ctx
            .in_flight
            .take_leases()
            .into_iter()
            .map(|(id, tenant_id, lease_token)| Release {
                tenant_id,
                id,
                lease_token,
                at: None,
                attempted: true,
            })
            .collect();
        if !leftover.is_empty() {
            match release_leases(&shared.pool, &leftover).await {
                Ok(n) => tracing::info!(count = n, "gave back the leases of unfinished attempts"),
                Err(e) => tracing::warn!(error = %e, "could not give leases back; they end by themselves"),
            }
        }
        // Every attempt is over: the recorder ends once what it holds is written.
        shared.ctx.records.close();
        if tokio::time::timeout(Duration::from_secs(10), self.recorder).await.is_err() {
            tracing::warn!("gave up waiting for attempt outcomes to be recorded");
        }
        tracing::info!("dispatcher stopped");
    }
}

/// Fails the deliveries of disabled destinations whose retry window is over (the window keeps
/// running while a destination is disabled; see `relay_store::dispatch::expire_disabled`).
async fn expire_disabled(pool: &PgPool) -> Result<(), relay_store::StoreError> {
    for d in relay_store::dispatch::list_disabled_with_pending(pool).await? {
        let row = &d.destination;
        let window = d.limits.retry_window(i64::from(row.window_seconds));
        let (tenant, id) =
            (relay_core::TenantId::from_uuid(row.tenant_id), relay_core::DestinationId::from_uuid(row.id));
        let n = relay_store::dispatch::expire_disabled(pool, tenant, id, window).await?;
        if n > 0 {
            tracing::info!(destination.id = %id, count = n, "deliveries of a disabled destination outlived their retry window");
        }
    }
    Ok(())
}

/// Devices looked at by one pass of [`relay_store::ordering::repair_heads`].
const REPAIR_DEVICES_PER_PASS: i64 = 10_000;

/// Keeps the queue table vacuumed and its per-device heads whole, for as long as the dispatcher
/// runs: a head parked by a race is found within a pass or, with more devices than a pass looks
/// at, within a few.
async fn vacuum(pool: PgPool) {
    let mut every = tokio::time::interval(VACUUM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursor = None;
    loop {
        every.tick().await;
        if let Err(e) = relay_store::dispatch::vacuum_queue(&pool).await {
            tracing::debug!(error = %e, "vacuuming the delivery queue failed; trying again later");
        }
        match relay_store::ordering::repair_heads(&pool, cursor.as_ref(), REPAIR_DEVICES_PER_PASS).await {
            Ok((repaired, next)) => {
                if repaired > 0 {
                    tracing::info!(repaired, "gave parked device heads their turn back");
                }
                cursor = next;
            }
            Err(e) => tracing::debug!(error = %e, "repairing device heads failed; trying again later"),
        }
    }
}

/// Listens for wake-ups and config announcements; signals `armed` once listening.
async fn watch(shared: Arc<Shared>, armed: oneshot::Sender<()>) {
    let mut armed = Some(armed);
    listen(shared.pool.clone(), &[WAKE_CHANNEL, CONFIG_CHANNEL], "dispatcher", move |heard| {
        if let Heard::Listening = heard
            && let Some(armed) = armed.take()
        {
            let _ = armed.send(());
        }
        shared.hear(&heard);
    })
    .await;
}
