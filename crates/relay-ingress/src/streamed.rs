//! Which tenants have a live event stream somewhere in the fleet (read from Redis once a
//! second), so that a commit notifies the streams only when one of its events is streamed: with
//! no stream anywhere, ingest sends no notification at all.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_store::{PgPool, Redis};
use uuid::Uuid;

const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The streamed tenants as last read; `None` while Redis is unavailable (then every commit
/// notifies).
#[derive(Default)]
pub(crate) struct Streamed {
    tenants: Mutex<Option<HashSet<Uuid>>>,
}

impl Streamed {
    /// Starts the refresh task, which ends when `pool` closes.
    pub fn start(redis: Redis, pool: &PgPool) -> Arc<Self> {
        let streamed = Arc::new(Self::default());
        let weak = Arc::downgrade(&streamed);
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REFRESH_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !pool.is_closed() {
                every.tick().await;
                let Some(me) = weak.upgrade() else { return };
                let now = relay_store::stream::streamed(&redis).await;
                *me.tenants.lock().unwrap_or_else(|p| p.into_inner()) = now;
            }
        });
        streamed
    }

    /// The tenants among `committed` whose streams should hear of the commit.
    pub fn pick(&self, committed: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let mut picked: Vec<Uuid> =
            committed.filter(|t| tenants.as_ref().is_none_or(|set| set.contains(t))).collect();
        picked.sort_unstable();
        picked.dedup();
        picked
    }
}
