//! `max_in_flight` across a fleet (CONTRACT §4): the Redis side. Every dispatcher process
//! heartbeats into one sorted set (member: its id; score: when it is to be thought dead, on
//! Redis's clock), and holds its slots of a destination as one field of that destination's hash
//! (`h:<process>` = the number of concurrent attempts it may run). A process asks for the slots
//! it wants; the script grants what `max_in_flight` leaves after the slots of the *live* holders,
//! so the slots of a process that died are free once its heartbeat expires, and never before.
//!
//! Invariant: the sum of the grants of live processes never exceeds a destination's
//! `max_in_flight`, except by a process's `floor` (the attempts it already runs, which the grant
//! never goes below: they are in flight whatever Redis says). `None` from these functions means
//! Redis is unavailable; the caller falls back to its own per-process count.

use std::time::Duration;

use relay_core::DestinationId;

use crate::redis::{LuaScript, Redis, ScriptCall};

/// Registers a process (or takes it out, `leave`) and answers how many dispatchers are live,
/// whether the caller was (re)added rather than renewed, and the processes whose heartbeat it
/// found expired. Taking them out is atomic, so exactly one live process learns of each death.
const BEAT_SOURCE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {}
end
local ttl = tonumber(ARGV[3])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local added = redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 10)
local reply = {tostring(redis.call('ZCARD', KEYS[1])), tostring(added)}
for _, d in ipairs(dead) do
  if d ~= ARGV[1] then table.insert(reply, d) end
end
return reply
"#;

/// One destination: grants this process up to `desired` slots within what the live holders
/// leave, never below `floor`; forgets the fields of processes whose heartbeat expired.
const SYNC_SOURCE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, max, floor, desired = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local fields = redis.call('HGETALL', KEYS[2])
local others = 0
for i = 1, #fields, 2 do
  local holder = string.sub(fields[i], 3)
  if holder ~= me then
    local dies = redis.call('ZSCORE', KEYS[1], holder)
    if dies and tonumber(dies) > now then
      others = others + tonumber(fields[i + 1])
    else
      redis.call('HDEL', KEYS[2], fields[i])
    end
  end
end
local grant = math.max(floor, math.min(desired, max - others))
if grant > 0 then
  redis.call('HSET', KEYS[2], 'h:' .. me, grant)
  redis.call('PEXPIRE', KEYS[2], 3600000)
else
  redis.call('HDEL', KEYS[2], 'h:' .. me)
end
return grant
"#;

static BEAT: LuaScript = LuaScript::new(BEAT_SOURCE);
static SYNC: LuaScript = LuaScript::new(SYNC_SOURCE);

fn members_key(redis: &Redis) -> String {
    redis.key("dispatchers")
}

/// What a heartbeat learnt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Beat {
    /// Dispatchers alive, the caller included.
    pub live: u32,
    /// The caller was not in the live set: its first beat, or it had been thought dead.
    pub added: bool,
    /// Processes whose heartbeat had expired, taken out by this beat (no other beat sees them).
    pub dead: Vec<String>,
}

/// Says `me` is alive for `ttl`; answers what the fleet looks like (see [`Beat`]).
pub async fn beat(redis: &Redis, me: &str, ttl: Duration) -> Option<Beat> {
    let mut call = ScriptCall::default();
    call.key(members_key(redis)).arg(me).arg("beat").arg(ttl.as_millis().max(1) as u64);
    let replies: Vec<Vec<String>> = redis.run_script(&BEAT, &[call]).await?;
    let mut reply = replies.into_iter().next()?.into_iter();
    let live = reply.next()?.parse().unwrap_or(0);
    let added = reply.next().is_some_and(|a| a != "0");
    Some(Beat { live, added, dead: reply.collect() })
}

/// Takes `me` out of the live dispatchers (at shutdown; best effort).
pub async fn leave(redis: &Redis, me: &str) {
    let mut call = ScriptCall::default();
    call.key(members_key(redis)).arg(me).arg("leave");
    let _: Option<Vec<Vec<String>>> = redis.run_script(&BEAT, &[call]).await;
}

/// What a process asks of one destination's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotAsk {
    pub destination: DestinationId,
    pub max_in_flight: u32,
    /// The attempts this process runs now: the grant never goes below.
    pub floor: u32,
    /// The slots it would like (its attempts in flight plus what waits).
    pub desired: u32,
}

/// The slots granted per ask, in one round trip. `None` when Redis is unavailable.
pub async fn sync(redis: &Redis, me: &str, asks: &[SlotAsk]) -> Option<Vec<u32>> {
    let members = members_key(redis);
    let calls: Vec<ScriptCall> = asks
        .iter()
        .map(|a| {
            let mut call = ScriptCall::default();
            call.key(members.clone())
                .key(redis.key(&format!("slots:{}", a.destination.uuid().simple())))
                .arg(me)
                .arg(a.max_in_flight)
                .arg(a.floor)
                .arg(a.desired);
            call
        })
        .collect();
    let replies: Vec<i64> = redis.run_script(&SYNC, &calls).await?;
    Some(replies.into_iter().map(|g| u32::try_from(g).unwrap_or(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_redis() -> Redis {
        let prefix = format!("test:slots:{}:", uuid::Uuid::new_v4().simple());
        Redis::new("redis://127.0.0.1:6379", &prefix).unwrap()
    }

    fn ask(destination: DestinationId, floor: u32, desired: u32) -> SlotAsk {
        SlotAsk { destination, max_in_flight: 3, floor, desired }
    }

    #[tokio::test]
    async fn live_holders_share_max_in_flight_and_a_dead_ones_slots_come_free() {
        let redis = test_redis();
        let d = DestinationId::new();
        let live = Duration::from_secs(30);
        assert_eq!(beat(&redis, "a", live).await.map(|b| (b.live, b.added)), Some((1, true)));
        assert_eq!(beat(&redis, "b", Duration::from_millis(300)).await.map(|b| b.live), Some(2));
        assert_eq!(sync(&redis, "b", &[ask(d, 0, 2)]).await, Some(vec![2]));
        // a gets what b leaves of 3, never below what it already runs.
        assert_eq!(sync(&redis, "a", &[ask(d, 0, 3)]).await, Some(vec![1]));
        assert_eq!(sync(&redis, "a", &[ask(d, 2, 3)]).await, Some(vec![2]));
        // b gives one back; a can take it.
        assert_eq!(sync(&redis, "a", &[ask(d, 0, 1)]).await, Some(vec![1]));
        assert_eq!(sync(&redis, "b", &[ask(d, 1, 1)]).await, Some(vec![1]));
        assert_eq!(sync(&redis, "a", &[ask(d, 0, 3)]).await, Some(vec![2]));
        // b stops beating: once its heartbeat is over, its slot is a's to take.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if sync(&redis, "a", &[ask(d, 0, 3)]).await == Some(vec![3]) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "b's slot never came free");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // a's next beat takes b out and is the only one to hear of it.
        let heard = beat(&redis, "a", live).await.unwrap();
        assert_eq!(heard, Beat { live: 1, added: false, dead: vec!["b".into()] });
        assert_eq!(beat(&redis, "a", live).await.unwrap().dead, Vec::<String>::new());
        leave(&redis, "a").await;
        assert_eq!(beat(&redis, "c", live).await.map(|b| b.live), Some(1));
    }
}
