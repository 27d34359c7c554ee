//! End-to-end scenarios across crates: the whole service (in-process, or the real `wap-relay`
//! binary where a process must die), real Postgres, real Redis, and recording HTTP receivers on
//! loopback standing in for destinations.

mod support;

mod cli;
mod cli_admin;
mod crash;
mod delivery;
mod faults;
mod http;
mod keys;
mod listen;
mod operational;
mod operations;
mod ordering;
mod postgres_restart;
mod redis_outage;
