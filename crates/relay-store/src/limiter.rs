//! The shared throughput limiter (CONTRACT §4): GCRA in Redis, one atomic Lua script per tenant
//! and round (all of a round's tenants in one pipeline, by EVALSHA), on Redis's own clock (`TIME`), so every process of a fleet shares one limit per
//! tenant and per rate-limited destination whatever their clocks say.
//!
//! A round asks, per tenant, for up to `want` attempts to each of its due destinations; the
//! script grants what the tenant's limit and each destination's limit allow, spread round-robin
//! over the destinations, and says how long until the next attempt would conform. Tokens the
//! caller could not use (another process claimed the rows first) are given back, so a limit is
//! never undershot by races between processes. Invariant: a grant is taken before the rows are
//! claimed, so a claim never picks rows the limiter would only defer.
//!
//! `None` from [`acquire`] means Redis is unavailable: the caller falls back to a local limiter.

use std::time::Duration;

use deadpool_redis::redis;
use relay_core::{DestinationId, TenantId};

use crate::redis::{LuaScript, Redis, ScriptCall};

/// GCRA over a tenant and its destinations. Times are microseconds of Redis's clock; a key holds
/// the theoretical arrival time (TAT) of its next request. An interval of 0 means "unlimited"
/// for a destination and "paused" for a tenant (a plan without deliveries).
const SCRIPT_SOURCE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS - 1
local function tat_of(key)
  local v = tonumber(redis.call('GET', key))
  if v == nil or v < now then return now end
  return v
end
local function save(key, tat)
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local ti, tb = tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[1] == 'give' then
  local total = 0
  for i = 1, n do
    local c, di = tonumber(ARGV[1 + 3 * i]), tonumber(ARGV[2 + 3 * i])
    total = total + c
    if di > 0 and c > 0 then save(KEYS[1 + i], math.max(tat_of(KEYS[1 + i]) - c * di, now)) end
  end
  if ti > 0 and total > 0 then save(KEYS[1], math.max(tat_of(KEYS[1]) - total * ti, now)) end
  return {}
end
local ttat = tat_of(KEYS[1])
local room = 0
if ti > 0 then room = math.floor((tb * ti - (ttat - now)) / ti) end
local want, cap, dtat, granted = {}, {}, {}, {}
for i = 1, n do
  want[i] = tonumber(ARGV[1 + 3 * i])
  local di, db = tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  cap[i] = want[i]
  if di > 0 then
    dtat[i] = tat_of(KEYS[1 + i])
    cap[i] = math.min(want[i], math.max(0, math.floor((db * di - (dtat[i] - now)) / di)))
  end
  granted[i] = 0
end
local more = true
while room > 0 and more do
  more = false
  for i = 1, n do
    if room > 0 and granted[i] < cap[i] then
      granted[i] = granted[i] + 1
      room = room - 1
      more = true
    end
  end
end
local total = 0
for i = 1, n do total = total + granted[i] end
local out = {}
if ti > 0 then
  if total > 0 then ttat = ttat + total * ti; save(KEYS[1], ttat) end
  out[1] = math.max(0, ttat + ti - now - tb * ti)
else
  out[1] = 1000000
end
for i = 1, n do
  local di, db = tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  local wait = 0
  if di > 0 then
    local tat = dtat[i] + granted[i] * di
    if granted[i] > 0 then save(KEYS[1 + i], tat) end
    wait = math.max(0, tat + di - now - db * di)
  end
  out[2 * i] = granted[i]
  out[2 * i + 1] = wait
end
return out
"#;

/// One tenant's request for a round.
#[derive(Debug, Clone)]
pub struct TenantAsk {
    pub tenant: TenantId,
    pub rate_per_second: u32,
    pub burst: u32,
    pub destinations: Vec<DestinationAsk>,
}

#[derive(Debug, Clone, Copy)]
pub struct DestinationAsk {
    pub destination: DestinationId,
    /// Attempts wanted now (or, when giving back, tokens to return).
    pub count: u32,
    /// The destination's own `rate_limit_per_second`, if any; its burst is one second's worth.
    pub rate_per_second: Option<u32>,
}

/// What a tenant was granted, in the order of its destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantGrant {
    pub granted: Vec<u32>,
    /// Until the tenant's next attempt conforms.
    pub tenant_wait: Duration,
    /// Until each destination's next attempt conforms (zero for unlimited destinations).
    pub destination_wait: Vec<Duration>,
}

fn interval_us(rate_per_second: u32) -> u64 {
    if rate_per_second == 0 { 0 } else { (1_000_000 / u64::from(rate_per_second)).max(1) }
}

/// Run by hash (EVALSHA) once Redis knows it: a round sends keys and numbers, not the source.
static SCRIPT: LuaScript = LuaScript::new(SCRIPT_SOURCE);

fn invocation(redis: &Redis, mode: &str, ask: &TenantAsk) -> ScriptCall {
    let mut call = ScriptCall::default();
    call.key(redis.key(&format!("gcra:tenant:{}", ask.tenant.uuid().simple())));
    for d in &ask.destinations {
        call.key(redis.key(&format!("gcra:destination:{}", d.destination.uuid().simple())));
    }
    call.arg(mode).arg(interval_us(ask.rate_per_second)).arg(ask.burst.max(1));
    for d in &ask.destinations {
        let rate = d.rate_per_second.unwrap_or(0);
        call.arg(d.count).arg(interval_us(rate)).arg(rate.max(1));
    }
    call
}

/// Takes what each tenant's and destination's limit allows now, in one round trip for all
/// tenants. `None` when Redis is unavailable.
pub async fn acquire(redis: &Redis, asks: &[TenantAsk]) -> Option<Vec<TenantGrant>> {
    if asks.is_empty() {
        return Some(Vec::new());
    }
    let calls: Vec<ScriptCall> = asks.iter().map(|ask| invocation(redis, "take", ask)).collect();
    let replies: Vec<Vec<i64>> = redis.run_script(&SCRIPT, &calls).await?;
    let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let grants = asks
        .iter()
        .zip(replies)
        .map(|(ask, reply)| {
            let n = ask.destinations.len();
            TenantGrant {
                granted: (0..n).map(|i| reply.get(1 + 2 * i).map_or(0, |&g| g.max(0) as u32)).collect(),
                tenant_wait: micros(reply.first().copied().unwrap_or(0)),
                destination_wait: (0..n)
                    .map(|i| micros(reply.get(2 + 2 * i).copied().unwrap_or(0)))
                    .collect(),
            }
        })
        .collect();
    Some(grants)
}

/// Returns unused tokens (`count` per destination). Best effort: if Redis is unavailable the
/// tokens are simply lost, which only ever slows a tenant down.
pub async fn give_back(redis: &Redis, refunds: &[TenantAsk]) {
    let calls: Vec<ScriptCall> = refunds
        .iter()
        .filter(|r| r.destinations.iter().any(|d| d.count > 0))
        .map(|refund| invocation(redis, "give", refund))
        .collect();
    let _: Option<Vec<redis::Value>> = redis.run_script(&SCRIPT, &calls).await;
}
