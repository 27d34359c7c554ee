//! The per-tenant ingest limit (plan limits `ingest_per_second` and `ingest_burst`): GCRA in
//! Redis, one key per tenant, on Redis's own clock, so every process of a fleet shares one limit.
//! While Redis is unavailable each process holds the limit alone (governor, one GCRA state per
//! tenant): a fleet of n processes may then accept n times the rate, which is the price of
//! accepting events at all. The same limiter, under another name, keeps other per-tenant rates
//! ([`IngestLimiter::named`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use relay_core::TenantId;

use crate::redis::{LuaScript, Redis, ScriptCall};

/// One request against a tenant's GCRA: 0 when it conforms (and is counted), else the
/// microseconds until one would. Times are microseconds of Redis's clock.
const SCRIPT_SOURCE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local wait = tat + interval - now - burst * interval
if wait > 0 then return wait end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', math.ceil((tat + interval - now) / 1000) + 1000)
return 0
"#;

static SCRIPT: LuaScript = LuaScript::new(SCRIPT_SOURCE);

/// The local states are forgotten past this many tenants (they rebuild on demand).
const MAX_LOCAL_TENANTS: usize = 10_000;

pub struct IngestLimiter {
    redis: Redis,
    /// The limit's name in its Redis keys (`ingest`, or another per-tenant limit's).
    name: &'static str,
    local: Mutex<HashMap<TenantId, (Quota, DefaultDirectRateLimiter)>>,
    clock: DefaultClock,
}

impl IngestLimiter {
    pub fn new(redis: Redis) -> Self {
        Self::named(redis, "ingest")
    }

    /// Another per-tenant limit shared by the fleet, kept by the same rule under keys of its own
    /// (the admin API's limit on manual work is `manual`).
    pub fn named(redis: Redis, name: &'static str) -> Self {
        Self { redis, name, local: Mutex::default(), clock: DefaultClock::default() }
    }

    /// Counts one event of `tenant` against `rate` per second with `burst`; `Err(wait)` when it
    /// does not conform (nothing is counted then).
    pub async fn admit(&self, tenant: TenantId, rate: u32, burst: u32) -> Result<(), Duration> {
        let rate = rate.max(1);
        let burst = burst.max(1);
        let mut call = ScriptCall::default();
        call.key(self.redis.key(&format!("{}:tenant:{}", self.name, tenant.uuid().simple())));
        call.arg((1_000_000 / u64::from(rate)).max(1)).arg(burst);
        match self.redis.run_script::<i64>(&SCRIPT, &[call]).await.and_then(|r| r.first().copied()) {
            Some(0) => Ok(()),
            Some(wait) => Err(Duration::from_micros(u64::try_from(wait).unwrap_or(0))),
            None => self.admit_locally(tenant, rate, burst),
        }
    }

    fn admit_locally(&self, tenant: TenantId, rate: u32, burst: u32) -> Result<(), Duration> {
        let quota = Quota::with_period(Duration::from_secs(1) / rate)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if local.len() >= MAX_LOCAL_TENANTS && !local.contains_key(&tenant) {
            local.clear();
        }
        let entry = local.entry(tenant).or_insert_with(|| (quota, DefaultDirectRateLimiter::direct(quota)));
        if entry.0 != quota {
            *entry = (quota, DefaultDirectRateLimiter::direct(quota));
        }
        entry.1.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}
