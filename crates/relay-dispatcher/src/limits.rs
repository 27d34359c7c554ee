//! Throughput limits for a round: the shared GCRA limiter in Redis
//! (`relay_store::limiter`), and while Redis is unavailable a local in-process limiter
//! (governor, one GCRA state per tenant and per rate-limited destination) with the same rates, so
//! the relay keeps delivering within the limits per process.
//!
//! Invariant: a tenant's attempts never exceed its limit in the shared limiter; the local
//! fallback keeps each process within it (a fleet of n processes may reach n times the rate while
//! Redis is down, which is the price of delivering at all).

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use relay_core::{DestinationId, TenantId};
use relay_store::Redis;
use relay_store::limiter::{self, TenantAsk, TenantGrant};

/// A paused tenant (rate 0) is looked at again after this long.
const PAUSED_RETRY: Duration = Duration::from_secs(1);
/// The local maps are cleared past this many entries (they rebuild on demand).
const MAX_LOCAL_ENTRIES: usize = 100_000;

pub(crate) struct Limiter {
    redis: Redis,
    local: Mutex<Local>,
}

/// The grants of one round, and whether they came from the shared limiter (then unused tokens
/// can be given back).
pub(crate) struct Grants {
    pub tenants: Vec<TenantGrant>,
    pub shared: bool,
}

impl Limiter {
    pub fn new(redis: Redis) -> Self {
        Self { redis, local: Mutex::new(Local::default()) }
    }

    pub async fn acquire(&self, asks: &[TenantAsk]) -> Grants {
        if let Some(tenants) = limiter::acquire(&self.redis, asks).await {
            return Grants { tenants, shared: true };
        }
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        Grants { tenants: asks.iter().map(|ask| local.acquire(ask)).collect(), shared: false }
    }

    pub async fn give_back(&self, refunds: &[TenantAsk], shared: bool) {
        if shared {
            limiter::give_back(&self.redis, refunds).await;
        }
    }
}

struct Entry {
    quota: Quota,
    limiter: DefaultDirectRateLimiter,
}

#[derive(Default)]
struct Local {
    tenants: HashMap<TenantId, Entry>,
    destinations: HashMap<DestinationId, Entry>,
    clock: DefaultClock,
}

fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let period = Duration::from_secs(1) / rate.get();
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Some(Quota::with_period(period.max(Duration::from_nanos(1)))?.allow_burst(burst))
}

fn entry<K: Eq + Hash>(map: &mut HashMap<K, Entry>, key: K, quota: Quota) -> &DefaultDirectRateLimiter {
    if map.len() > MAX_LOCAL_ENTRIES {
        map.clear();
    }
    let e =
        map.entry(key).or_insert_with(|| Entry { quota, limiter: DefaultDirectRateLimiter::direct(quota) });
    if e.quota != quota {
        *e = Entry { quota, limiter: DefaultDirectRateLimiter::direct(quota) };
    }
    &e.limiter
}

impl Local {
    /// One token at a time, round-robin over the destinations, like the shared script.
    fn acquire(&mut self, ask: &TenantAsk) -> TenantGrant {
        let n = ask.destinations.len();
        let mut grant = TenantGrant {
            granted: vec![0; n],
            tenant_wait: Duration::ZERO,
            destination_wait: vec![Duration::ZERO; n],
        };
        let Some(tenant_quota) = quota(ask.rate_per_second, ask.burst) else {
            grant.tenant_wait = PAUSED_RETRY;
            return grant;
        };
        let mut open: Vec<bool> = ask.destinations.iter().map(|d| d.count > 0).collect();
        while open.iter().any(|&o| o) {
            for (i, d) in ask.destinations.iter().enumerate() {
                if !open[i] {
                    continue;
                }
                if let Some(q) = d.rate_per_second.and_then(|r| quota(r, r)) {
                    let now = self.clock.now();
                    if let Err(not_until) = entry(&mut self.destinations, d.destination, q).check() {
                        grant.destination_wait[i] = not_until.wait_time_from(now);
                        open[i] = false;
                        continue;
                    }
                }
                let now = self.clock.now();
                if let Err(not_until) = entry(&mut self.tenants, ask.tenant, tenant_quota).check() {
                    grant.tenant_wait = not_until.wait_time_from(now);
                    return grant;
                }
                grant.granted[i] += 1;
                open[i] = grant.granted[i] < d.count;
            }
        }
        grant
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_store::limiter::DestinationAsk;

    fn ask(
        tenant: TenantId,
        rate: u32,
        burst: u32,
        dests: &[(DestinationId, u32, Option<u32>)],
    ) -> TenantAsk {
        TenantAsk {
            tenant,
            rate_per_second: rate,
            burst,
            destinations: dests
                .iter()
                .map(|&(destination, count, rate_per_second)| DestinationAsk {
                    destination,
                    count,
                    rate_per_second,
                })
                .collect(),
        }
    }

    #[test]
    fn local_fallback_grants_the_burst_then_waits() {
        let mut local = Local::default();
        let (t, d1, d2) = (TenantId::new(), DestinationId::new(), DestinationId::new());
        let g = local.acquire(&ask(t, 5, 5, &[(d1, 10, None), (d2, 10, None)]));
        assert_eq!(g.granted, [3, 2]);
        assert!(g.tenant_wait > Duration::from_millis(100) && g.tenant_wait <= Duration::from_millis(200));
        let g = local.acquire(&ask(t, 5, 5, &[(d1, 1, None)]));
        assert_eq!(g.granted, [0]);
    }

    #[test]
    fn local_fallback_applies_destination_rates_and_pauses() {
        let mut local = Local::default();
        let (t, d1, d2) = (TenantId::new(), DestinationId::new(), DestinationId::new());
        let g = local.acquire(&ask(t, 100, 100, &[(d1, 10, Some(2)), (d2, 3, None)]));
        assert_eq!(g.granted, [2, 3]);
        assert!(g.destination_wait[0] > Duration::ZERO);
        let g = local.acquire(&ask(TenantId::new(), 0, 0, &[(d2, 3, None)]));
        assert_eq!((g.granted[0], g.tenant_wait), (0, PAUSED_RETRY));
    }
}
