//! Connecting to Postgres: create the database if it is missing, then apply the embedded
//! migrations. Every process of a fleet may run this at once: sqlx's migrator takes an advisory
//! lock, so concurrent starts apply each migration exactly once.

use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::error::Result;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Pool settings: the pool is the bound on how much Postgres work a process does at once.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(3) }
    }
}

fn pool_options(config: &PoolConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
}

/// Creates the database if missing, connects, and migrates.
pub async fn connect_and_migrate(url: &str, config: &PoolConfig) -> Result<PgPool> {
    if !Postgres::database_exists(url).await? {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!("created the database"),
            // Another process of the fleet created it first.
            Err(e) if Postgres::database_exists(url).await.unwrap_or(false) => {
                tracing::debug!(error = %e, "database appeared concurrently");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let pool = pool_options(config).connect(url).await?;
    migrate(&pool).await?;
    Ok(pool)
}

pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => e.into(),
        other => crate::StoreError::Corrupt(format!("migration failed: {other}")),
    })
}

/// A pool that connects on first use: the process starts even while Postgres is down, and
/// requests answer 503 until it is back.
pub fn connect_lazy(options: PgConnectOptions, config: &PoolConfig) -> PgPool {
    pool_options(config).connect_lazy_with(options)
}

/// The admin API's pool for reads (CONTRACT §10): its own connections, apart from the pool of
/// ingest and the dispatcher, each with `statement_timeout` so no read holds one for longer.
/// Connects on first use; `options` are the main pool's (`PgPool::connect_options`).
pub fn connect_reads(options: &PgConnectOptions, config: &PoolConfig, statement_timeout: Duration) -> PgPool {
    let ms = statement_timeout.as_millis().max(1).to_string();
    let options = options.clone().options([("statement_timeout", ms.as_str())]);
    pool_options(config).connect_lazy_with(options)
}

/// `SELECT 1`: readiness.
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Whether every migration this binary knows has been applied (readiness: a process of an
/// older schema must not take traffic it cannot store).
pub async fn migrations_applied(pool: &PgPool) -> Result<bool> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(pool).await?;
    Ok(applied.unwrap_or(0) >= latest)
}
