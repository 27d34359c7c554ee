//! Redis access with a circuit breaker. Redis only speeds things up (dedupe fast path, shared
//! rate limits, wake-ups); every caller has a Postgres or in-process fallback. So every operation
//! here is bounded by a short timeout, and after a failure Redis is skipped for a moment instead
//! of making each request wait for a dead server. All key names are built here, under a prefix
//! (one per deployment, or one per test).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis::{self, FromRedisValue};
use deadpool_redis::{Config, Connection, Pool, PoolConfig, Runtime, Timeouts};
use relay_core::SourceId;

const OP_TIMEOUT: Duration = Duration::from_millis(250);
const BACKOFF_AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
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
            inner: Arc::new(Inner { pool, prefix: prefix.to_owned(), down_until_ms: AtomicU64::new(0) }),
        })
    }

    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.inner.prefix)
    }

    pub fn is_available(&self) -> bool {
        now_ms() >= self.inner.down_until_ms.load(Ordering::Relaxed)
    }

    fn mark_down(&self, error: &dyn std::fmt::Display) {
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
        match self.inner.pool.get().await {
            Ok(c) => Some(c),
            Err(e) => {
                self.mark_down(&e);
                None
            }
        }
    }

    /// Runs a command; `None` when Redis is down, slow or answers an error.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.conn().await?;
        match tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
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

    /// Runs a pipeline; `None` as for [`Redis::query`].
    pub async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let mut conn = self.conn().await?;
        match tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<T>(&mut conn)).await {
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

    fn dedupe_key(&self, source: SourceId, wap_event_id: &str) -> String {
        self.key(&format!("dedupe:{}:{wap_event_id}", source.uuid().simple()))
    }

    /// The fast path of dedupe: `Some(true)` only for an event known to be stored (the key is
    /// written after the commit). `None` means "ask Postgres".
    pub async fn seen_event(&self, source: SourceId, wap_event_id: &str) -> Option<bool> {
        let exists: i64 = self.query(redis::cmd("EXISTS").arg(self.dedupe_key(source, wap_event_id))).await?;
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
