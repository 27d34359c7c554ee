//! What ingest tells the silence alerts (CONTRACT §7): for each source with
//! `silence_alert_seconds`, and each deviceId seen on it, the time its latest accepted event
//! arrived (stored or a duplicate: an event refused with 4xx, 429 or 503 says nothing of the
//! sender's health, and must not keep a key alive nor create one). Requests only update a map in memory; every [`FLUSH_EVERY`] the map is written in one
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

/// Most keys of one tenant waiting for a flush: a tenth of the map, so one tenant cannot fill
/// it for the others. Past it, the tenant's further new keys in this interval are dropped and
/// counted (`relay_silence_keys_dropped_total`, and one log line per tenant per flush); its known
/// keys still move forward, other tenants are unaffected, and a dropped key is recorded the next
/// time it is seen in a later interval. Enterprise's ingest burst (50,000 events) could name more
/// devices than this in one interval only in a burst; a plan's steady rate (at most 10,000 events
/// per interval) cannot.
pub const MAX_KEYS_PER_TENANT: usize = 20_000;

type Key = (SourceId, String);

#[derive(Default)]
pub struct Activity {
    state: Mutex<State>,
}

/// What was seen since the last flush: the keys, how many each tenant holds, and how many new
/// keys of each tenant were dropped at its bound.
#[derive(Default)]
struct State {
    seen: HashMap<Key, (TenantId, OffsetDateTime)>,
    keys: HashMap<TenantId, usize>,
    dropped: HashMap<TenantId, u64>,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An accepted event of `source` (of `tenant`), with its deviceId if any, arrived at `at`.
    pub fn saw(&self, tenant: TenantId, source: SourceId, device: Option<&str>, at: OffsetDateTime) {
        let mut state = self.lock();
        let state = &mut *state;
        for key in [Some(""), device].into_iter().flatten() {
            if let Some(entry) = state.seen.get_mut(&(source, key.to_owned())) {
                entry.1 = entry.1.max(at);
                continue;
            }
            let held = state.keys.entry(tenant).or_default();
            if *held >= MAX_KEYS_PER_TENANT || state.seen.len() >= MAX_KEYS {
                *state.dropped.entry(tenant).or_default() += 1;
                metrics::counter!("relay_silence_keys_dropped_total").increment(1);
                continue;
            }
            *held += 1;
            state.seen.insert((source, key.to_owned()), (tenant, at));
        }
    }

    /// What was seen since the last take, in key order (the order the store locks rows in).
    fn take(&self) -> Vec<Seen> {
        let State { seen, dropped, .. } = std::mem::take(&mut *self.lock());
        for (tenant, count) in dropped {
            tracing::warn!(tenant.id = %tenant, count, "silence alerts: new keys dropped at the tenant's bound");
        }
        let mut seen: Vec<Seen> = seen
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

    #[test]
    fn a_tenant_past_its_bound_loses_only_its_own_new_keys() {
        let activity = Activity::default();
        let (noisy, quiet) = (TenantId::new(), TenantId::new());
        let (loud_source, quiet_source) = (SourceId::new(), SourceId::new());
        let t0 = OffsetDateTime::now_utc();
        for i in 0..MAX_KEYS_PER_TENANT + 500 {
            activity.saw(noisy, loud_source, Some(&format!("dev_{i}")), t0);
        }
        activity.saw(quiet, quiet_source, Some("dev_q"), t0);
        let later = t0 + time::Duration::seconds(1);
        activity.saw(noisy, loud_source, None, later);
        {
            let state = activity.lock();
            assert_eq!(state.keys[&noisy], MAX_KEYS_PER_TENANT);
            assert_eq!(state.dropped[&noisy], 501, "each new key past the bound is counted");
            assert!(!state.dropped.contains_key(&quiet));
        }
        let seen = activity.take();
        let of = |t: TenantId| seen.iter().filter(|s| s.tenant_id == t).count();
        assert_eq!(of(noisy), MAX_KEYS_PER_TENANT);
        assert_eq!(of(quiet), 2, "the other tenant's source and device are both kept");
        let source_row = seen.iter().find(|s| s.source_id == loud_source && s.device_id.is_none()).unwrap();
        assert_eq!(source_row.at, later, "a known key still moves forward past the bound");
        assert!(activity.lock().keys.is_empty(), "a flush starts every tenant afresh");
    }
}
