//! Integration tests of the admin API through the real router against real Postgres
//! (`#[sqlx::test]` gives every test a fresh, migrated database; run with
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`).

mod access;
mod auth;
mod dashboard;
mod destinations;
mod hardening;
mod logs;
mod manual_work;
mod openapi;
mod perf;
mod recovery;
mod sources;
mod stats;
mod stream_cost;
mod support;
mod tenants;
