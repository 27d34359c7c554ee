//! The admin API's budget for heavy reads (CONTRACT §10): statistics, series, the logs' lists and
//! lookups. They run on their own pool ([`ReadBudget::pool`], a few connections with a
//! `statement_timeout`), never on the pool of ingest and the dispatcher, and each tenant runs at
//! most [`ReadBudget::per_tenant`] of them at once in a process.
//!
//! Invariant: a handler that reads through [`HeavyRead`] holds its tenant's permit until it
//! answers; past the bound a request waits its tenant's turn (a second at most, behind a bounded
//! number of that tenant's reads), then is refused (429 `too_many_reads` with `Retry-After`), so
//! a tenant's burst queues nothing in front of another tenant's reads, and a client that asks
//! again at once is slowed to the pace of its own reads. A read
//! past the statement timeout answers 503 `query_timeout` (relay-http maps the store's error).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use relay_core::TenantId;
use relay_http::ApiError;
use relay_store::PgPool;
use tokio::sync::Notify;

use crate::AdminState;
use crate::auth::TenantAuth;

/// Heavy reads a tenant may run at once in a process, by default.
pub const DEFAULT_READS_PER_TENANT: usize = 2;
/// Reads of one tenant that may wait for a turn; past it the next is refused at once.
const MAX_WAITING_PER_TENANT: usize = 32;
/// How long a read waits for its tenant's turn before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Where heavy admin reads run, and how many per tenant.
#[derive(Clone)]
pub struct ReadBudget {
    /// Connections for reads only, each with a `statement_timeout`.
    pub pool: PgPool,
    /// Heavy reads one tenant may run at once in this process.
    pub per_tenant: usize,
    tenants: Arc<Mutex<HashMap<TenantId, Turns>>>,
}

/// One tenant's reads: running, waiting, and the signal of a freed turn.
#[derive(Default)]
struct Turns {
    running: usize,
    waiting: usize,
    freed: Arc<Notify>,
}

impl ReadBudget {
    pub fn new(pool: PgPool, per_tenant: usize) -> Self {
        Self { pool, per_tenant: per_tenant.max(1), tenants: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Turns>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit for one more read of `tenant`: at once while it runs fewer than `per_tenant`,
    /// else after waiting (at most [`MAX_WAIT`], behind at most [`MAX_WAITING_PER_TENANT`]) for
    /// one of its reads to end; `None` past those. A client that ignores `Retry-After` and asks
    /// again at once thus waits instead of making the process answer a flood of refusals.
    async fn permit(&self, tenant: TenantId) -> Option<ReadPermit> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        let mut waiting = false;
        loop {
            let freed = {
                let mut tenants = self.lock();
                let turns = tenants.entry(tenant).or_default();
                if waiting {
                    turns.waiting -= 1;
                }
                if turns.running < self.per_tenant {
                    turns.running += 1;
                    return Some(ReadPermit { budget: self.clone(), tenant });
                }
                if turns.waiting >= MAX_WAITING_PER_TENANT || tokio::time::Instant::now() >= deadline {
                    return None;
                }
                turns.waiting += 1;
                waiting = true;
                turns.freed.clone()
            };
            let _ = tokio::time::timeout_at(deadline, freed.notified()).await;
        }
    }
}

/// One running read; the count goes down when it is dropped and a waiting read of the tenant is
/// woken (the entry goes once nothing runs or waits, so the map holds only tenants reading now).
struct ReadPermit {
    budget: ReadBudget,
    tenant: TenantId,
}

impl Drop for ReadPermit {
    fn drop(&mut self) {
        let mut tenants = self.budget.lock();
        if let Some(turns) = tenants.get_mut(&self.tenant) {
            turns.running -= 1;
            turns.freed.notify_one();
            if turns.running == 0 && turns.waiting == 0 {
                tenants.remove(&self.tenant);
            }
        }
    }
}

/// The calling tenant, for a heavy read: its id, the read pool, and its permit.
pub(crate) struct HeavyRead {
    pub tenant_id: TenantId,
    pub pool: PgPool,
    _permit: ReadPermit,
}

impl FromRequestParts<AdminState> for HeavyRead {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Response> {
        let auth = TenantAuth::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let Some(permit) = state.reads.permit(auth.tenant_id).await else {
            let detail = format!(
                "at most {} statistics or log reads of a tenant run at once, and more waited a second \
                 for their turn; retry when one has answered",
                state.reads.per_tenant
            );
            let refused = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_reads", detail);
            return Err(refused.with_retry_after(1).into_response());
        };
        Ok(Self { tenant_id: auth.tenant_id, pool: state.reads.pool.clone(), _permit: permit })
    }
}
