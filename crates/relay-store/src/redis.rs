//! Redis access with a circuit breaker. Redis only speeds things up (dedupe fast path, shared
//! rate limits, wake-ups); every caller has a Postgres or in-process fallback. So every operation
//! here is bounded by a short timeout, and after a failure Redis is skipped for a moment instead
//! of making each request wait for a dead server. All key names are built here, under a prefix
//! (one per deployment, or one per test).
//!
//! Every operation of the process shares one multiplexed connection (commands from concurrent
//! tasks are pipelined on it), made by the deadpool pool and taken out of it: a pooled checkout
//! costs a PING round trip each time, which doubled Redis's work. A failure drops the shared
//! connection, and the next operation after the breaker makes a new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis::aio::MultiplexedConnection as Connection;
use deadpool_redis::redis::{self, FromRedisValue, ToRedisArgs};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use relay_core::SourceId;

const OP_TIMEOUT: Duration = Duration::from_millis(250);
const BACKOFF_AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The connection every operation shares, once made.
    shared: Mutex<Option<Connection>>,
    prefix: String,
    /// Unix milliseconds until which Redis is considered down.
    down_until_ms: AtomicU64,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("prefix", &self.inner.prefix).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Redis {
    /// Builds the pool; nothing connects until the first use, so a process starts while Redis
    /// is down.
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let mut config = Config::from_url(url);
        config.pool = Some(PoolConfig {
            max_size: 32,
            timeouts: Timeouts {
                wait: Some(OP_TIMEOUT),
                create: Some(OP_TIMEOUT),
                recycle: Some(OP_TIMEOUT),
            },
            ..PoolConfig::default()
        });
        let pool = config.create_pool(Some(Runtime::Tokio1)).map_err(|e| e.to_string())?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                shared: Mutex::new(None),
                prefix: prefix.to_owned(),
                down_until_ms: AtomicU64::new(0),
            }),
        })
    }

    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.inner.prefix)
    }

    pub fn is_available(&self) -> bool {
        now_ms() >= self.inner.down_until_ms.load(Ordering::Relaxed)
    }

    fn mark_down(&self, error: &dyn std::fmt::Display) {
        self.inner.shared.lock().unwrap_or_else(|p| p.into_inner()).take();
        let until = now_ms() + BACKOFF_AFTER_FAILURE.as_millis() as u64;
        let previous = self.inner.down_until_ms.swap(until, Ordering::Relaxed);
        if previous < now_ms() {
            tracing::warn!(error = %error, "redis unavailable; falling back for a moment");
        }
    }

    async fn conn(&self) -> Option<Connection> {
        if !self.is_available() {
            return None;
        }
        if let Some(c) = self.inner.shared.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Some(c);
        }
        match self.inner.pool.get().await {
            Ok(c) => {
                let c = deadpool_redis::Connection::take(c);
                *self.inner.shared.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                Some(c)
            }
            Err(e) => {
                self.mark_down(&e);
                None
            }
        }
    }

    /// Awaits one exchange with Redis within the operation timeout; an error or a timeout opens
    /// the circuit breaker and gives `None`.
    async fn bounded<T>(
        &self,
        exchange: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(OP_TIMEOUT, exchange).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.mark_down(&e);
                None
            }
            Err(_) => {
                self.mark_down(&"timed out");
                None
            }
        }
    }

    /// Whether Redis answers a PING now (readiness reports it).
    pub async fn ping(&self) -> bool {
        self.query::<String>(&redis::cmd("PING")).await.is_some()
    }

    /// Runs a command; `None` when Redis is down, slow or answers an error.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.conn().await?;
        self.bounded(cmd.query_async::<T>(&mut conn)).await
    }

    /// Runs a pipeline; `None` as for [`Redis::query`].
    pub async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let mut conn = self.conn().await?;
        self.bounded(pipe.query_async::<T>(&mut conn)).await
    }

    /// Runs `calls` of `script` in one pipeline, by hash (EVALSHA: the source is not sent). The
    /// hash comes from `SCRIPT LOAD` on first use; when Redis has forgotten the script
    /// (`NOSCRIPT`: a restart, a failover, `SCRIPT FLUSH`) it is loaded again and the pipeline
    /// runs once more (a NOSCRIPT reply means no call ran). One reply per call; `None` as for
    /// [`Redis::query`], and the timeout covers the whole exchange.
    pub async fn run_script<T: FromRedisValue>(
        &self,
        script: &LuaScript,
        calls: &[ScriptCall],
    ) -> Option<Vec<T>> {
        if calls.is_empty() {
            return Some(Vec::new());
        }
        let mut conn = self.conn().await?;
        let exchange = async {
            let sha = match script.sha() {
                Some(sha) => sha,
                None => script.load(&mut conn).await?,
            };
            match script.pipeline(&sha, calls).query_async::<Vec<T>>(&mut conn).await {
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    let sha = script.load(&mut conn).await?;
                    script.pipeline(&sha, calls).query_async::<Vec<T>>(&mut conn).await
                }
                other => other,
            }
        };
        self.bounded(exchange).await
    }

    /// The fast path's key of an identity: a fixed-size digest, so Redis holds the same few
    /// bytes per event whatever its eventId or dedupe values (CONTRACT §10).
    fn dedupe_key(&self, source: SourceId, identity: &str) -> String {
        self.key(&format!("d:{}", relay_core::dedupe::digest(source, identity)))
    }

    /// The fast path of dedupe: `Some(true)` only for an event known to be stored (the key is
    /// written after the commit). `None` means "ask Postgres".
    pub async fn seen_event(&self, source: SourceId, identity: &str) -> Option<bool> {
        let exists: i64 = self.query(redis::cmd("EXISTS").arg(self.dedupe_key(source, identity))).await?;
        Some(exists > 0)
    }

    /// Remembers stored events, each for its own `ttl` (its tenant's retention): best effort.
    pub async fn remember_events(&self, events: &[(SourceId, &str, Duration)]) {
        if events.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (source, id, ttl) in events {
            pipe.cmd("SET")
                .arg(self.dedupe_key(*source, id))
                .arg(1)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .ignore();
        }
        let _: Option<()> = self.query_pipe(&pipe).await;
    }
}

/// A Lua script for [`Redis::run_script`]: its source, and its hash once Redis has told it.
pub struct LuaScript {
    source: &'static str,
    sha: Mutex<Option<String>>,
}

impl LuaScript {
    pub const fn new(source: &'static str) -> Self {
        Self { source, sha: Mutex::new(None) }
    }

    fn sha(&self) -> Option<String> {
        self.sha.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn load(&self, conn: &mut Connection) -> redis::RedisResult<String> {
        let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(self.source).query_async(conn).await?;
        *self.sha.lock().unwrap_or_else(|p| p.into_inner()) = Some(sha.clone());
        Ok(sha)
    }

    fn pipeline(&self, sha: &str, calls: &[ScriptCall]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for call in calls {
            let cmd = pipe.cmd("EVALSHA").arg(sha).arg(call.keys.len());
            for key in &call.keys {
                cmd.arg(key);
            }
            for arg in &call.args {
                cmd.arg(arg.as_slice());
            }
        }
        pipe
    }
}

/// One call of a script: its keys (`KEYS`), then its arguments (`ARGV`).
#[derive(Debug, Clone, Default)]
pub struct ScriptCall {
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
}

impl ScriptCall {
    pub fn key(&mut self, key: String) -> &mut Self {
        self.keys.push(key);
        self
    }

    pub fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_redis() -> Redis {
        let prefix = format!("test:store:{}:", uuid::Uuid::new_v4().simple());
        Redis::new("redis://127.0.0.1:6379", &prefix).unwrap()
    }

    /// A script no one has loaded: its source carries a fresh id.
    fn fresh_script() -> &'static LuaScript {
        let source = format!("-- {}\nreturn tonumber(ARGV[1]) + #KEYS", uuid::Uuid::new_v4());
        Box::leak(Box::new(LuaScript::new(Box::leak(source.into_boxed_str()))))
    }

    fn calls(redis: &Redis, values: &[i64]) -> Vec<ScriptCall> {
        values
            .iter()
            .map(|&v| {
                let mut call = ScriptCall::default();
                call.key(redis.key("a")).key(redis.key("b")).arg(v);
                call
            })
            .collect()
    }

    #[tokio::test]
    async fn a_script_runs_by_hash_and_is_loaded_again_when_redis_forgot_it() {
        let redis = test_redis();
        let script = fresh_script();
        let first: Vec<i64> = redis.run_script(script, &calls(&redis, &[1, 40])).await.unwrap();
        assert_eq!(first, [3, 42]);
        let sha = script.sha().expect("the hash is known after the first run");
        let known: Vec<i64> = redis.query(redis::cmd("SCRIPT").arg("EXISTS").arg(&sha)).await.unwrap();
        assert_eq!(known, [1]);

        // A hash Redis does not know (as after a restart or SCRIPT FLUSH): NOSCRIPT, then the
        // script is loaded again and the calls run once.
        let forgotten = LuaScript::new(script.source);
        *forgotten.sha.lock().unwrap() = Some("0".repeat(40));
        let again: Vec<i64> = redis.run_script(&forgotten, &calls(&redis, &[5])).await.unwrap();
        assert_eq!(again, [7]);
        assert_eq!(forgotten.sha().as_deref(), Some(sha.as_str()));
        assert!(redis.is_available(), "NOSCRIPT is not a failure of Redis");
    }
}
