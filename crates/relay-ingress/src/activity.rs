//! What ingest tells the silence alerts (CONTRACT §7): for each source with
//! `silence_alert_seconds`, and each deviceId seen on it, the time its latest verified event
//! arrived. Requests only update a map in memory; every [`FLUSH_EVERY`] the map is written in one
//! statement ([`relay_store::silence::record_activity`]), so a busy key costs one row write per
//! flush, not one per event, and a source without alerts costs nothing.
//!
//! A process that dies loses at most its last flush interval of activity: a key that stopped at
//! that very moment may be reported silent up to that much early.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use relay_core::{SourceId, TenantId};
use relay_store::PgPool;
use relay_store::silence::{Seen, record_activity};
use time::OffsetDateTime;

/// How often what was seen is written (well under the shortest silence, a minute).
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Most keys waiting for a flush; past it, new keys wait for the next event (known keys still
/// move forward).
const MAX_KEYS: usize = 200_000;

type Key = (SourceId, String);

#[derive(Default)]
pub struct Activity {
    seen: Mutex<HashMap<Key, (TenantId, OffsetDateTime)>>,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (TenantId, OffsetDateTime)>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A verified event of `source` (of `tenant`), with its deviceId if any, arrived at `at`.
    pub fn saw(&self, tenant: TenantId, source: SourceId, device: Option<&str>, at: OffsetDateTime) {
        let mut seen = self.lock();
        for key in [Some(""), device].into_iter().flatten() {
            let room = seen.len() < MAX_KEYS;
            match seen.get_mut(&(source, key.to_owned())) {
                Some(entry) => entry.1 = entry.1.max(at),
                None if room => {
                    seen.insert((source, key.to_owned()), (tenant, at));
                }
                None => {}
            }
        }
    }

    /// What was seen since the last take, in key order (the order the store locks rows in).
    fn take(&self) -> Vec<Seen> {
        let mut seen: Vec<Seen> = std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|((source_id, device), (tenant_id, at))| Seen {
                tenant_id,
                source_id,
                device_id: (!device.is_empty()).then_some(device),
                at,
            })
            .collect();
        seen.sort_by(|a, b| (a.source_id, &a.device_id).cmp(&(b.source_id, &b.device_id)));
        seen
    }

    /// Puts back what a failed flush could not write (newer sightings win).
    fn restore(&self, seen: Vec<Seen>) {
        for s in seen {
            self.saw(s.tenant_id, s.source_id, s.device_id.as_deref(), s.at);
        }
    }

    /// Writes what was seen every [`FLUSH_EVERY`], for as long as the activity is alive.
    pub async fn flush_forever(activity: Weak<Activity>, pool: PgPool) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(activity) = activity.upgrade() else { return };
            let seen = activity.take();
            if seen.is_empty() {
                continue;
            }
            match record_activity(&pool, &seen).await {
                Ok(back) if back > 0 => tracing::info!(count = back, "silent sources or devices resumed"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not record source activity; trying again");
                    activity.restore(seen);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_keeps_its_latest_sighting_and_the_source_counts_once() {
        let activity = Activity::default();
        let (tenant, source) = (TenantId::new(), SourceId::new());
        let t0 = OffsetDateTime::now_utc();
        activity.saw(tenant, source, Some("dev_1"), t0 + time::Duration::seconds(1));
        activity.saw(tenant, source, Some("dev_1"), t0);
        activity.saw(tenant, source, None, t0);
        let seen = activity.take();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].device_id.as_deref(), seen[0].at), (None, t0 + time::Duration::seconds(1)));
        assert_eq!(
            (seen[1].device_id.as_deref(), seen[1].at),
            (Some("dev_1"), t0 + time::Duration::seconds(1))
        );
        assert!(activity.take().is_empty());
    }
}
