//! The admin API's budget for heavy reads (CONTRACT §10): statistics, series, the logs' lists and
//! lookups. They run on their own pool ([`ReadBudget::pool`], a few connections with a
//! `statement_timeout`), never on the pool of ingest and the dispatcher, and each tenant runs at
//! most [`ReadBudget::per_tenant`] of them at once in a process.
//!
//! Invariant: a handler that reads through [`HeavyRead`] holds its tenant's permit until it
//! answers; past the bound the request is refused at once (429 `too_many_reads` with
//! `Retry-After`), so a tenant's burst queues nothing in front of another tenant's reads. A read
//! past the statement timeout answers 503 `query_timeout` (relay-http maps the store's error).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use relay_core::TenantId;
use relay_http::ApiError;
use relay_store::PgPool;

use crate::AdminState;
use crate::auth::TenantAuth;

/// Heavy reads a tenant may run at once in a process, by default.
pub const DEFAULT_READS_PER_TENANT: usize = 4;

/// Where heavy admin reads run, and how many per tenant.
#[derive(Clone)]
pub struct ReadBudget {
    /// Connections for reads only, each with a `statement_timeout`.
    pub pool: PgPool,
    /// Heavy reads one tenant may run at once in this process.
    pub per_tenant: usize,
    running: Arc<Mutex<HashMap<TenantId, usize>>>,
}

impl ReadBudget {
    pub fn new(pool: PgPool, per_tenant: usize) -> Self {
        Self { pool, per_tenant: per_tenant.max(1), running: Arc::default() }
    }

    /// A permit for one more read of `tenant`, or `None` while it runs `per_tenant` already.
    fn permit(&self, tenant: TenantId) -> Option<ReadPermit> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let n = running.entry(tenant).or_default();
        if *n >= self.per_tenant {
            return None;
        }
        *n += 1;
        Some(ReadPermit { running: self.running.clone(), tenant })
    }
}

/// One running read; the count goes down when it is dropped (the entry goes at zero, so the map
/// holds only tenants reading now).
struct ReadPermit {
    running: Arc<Mutex<HashMap<TenantId, usize>>>,
    tenant: TenantId,
}

impl Drop for ReadPermit {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.tenant);
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
        let Some(permit) = state.reads.permit(auth.tenant_id) else {
            let detail = format!(
                "at most {} statistics or log reads of a tenant run at once; retry when one has answered",
                state.reads.per_tenant
            );
            let refused = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_reads", detail);
            return Err(refused.with_retry_after(1).into_response());
        };
        Ok(Self { tenant_id: auth.tenant_id, pool: state.reads.pool.clone(), _permit: permit })
    }
}
