//! relay-store owns every SQL statement and every Redis key name of wap-relay. Other crates call
//! plain `async fn`s here that take `impl PgExecutor<'_>` (a pool or a transaction), so a caller
//! decides the transaction boundary and tests run against the real database.
//!
//! Invariants: every query on a tenant-owned table filters on `tenant_id`; hot paths are
//! set-based (`UNNEST` batch inserts, `FOR UPDATE SKIP LOCKED` claims), never a query per row;
//! Postgres is the source of truth and Redis only ever speeds things up.

pub mod attempts;
pub mod db;
pub mod deliveries;
pub mod destinations;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod handoff;
pub mod ingest;
pub mod ingest_limit;
pub mod keyset;
pub mod lease;
pub mod limiter;
pub mod listen;
mod live;
pub mod ordering;
pub mod outbox;
pub mod outcomes;
pub mod partitions;
pub mod redis;
pub mod rejections;
pub mod rekey;
pub mod retention;
pub mod settings;
pub mod silence;
pub mod slots;
pub mod sources;
pub mod stats;
pub mod stream;
pub mod tenants;
pub mod watched;

pub use error::StoreError;
pub use redis::Redis;
pub use sqlx::postgres::PgListener;
pub use sqlx::{PgPool, Postgres, Transaction};
