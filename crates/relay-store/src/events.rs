//! The `events` table: each accepted WAPing event with its raw body. Inserted in batches by the
//! ingest group commit; the dedupe is `event_keys` (the event's eventId, and its dedupe id for a
//! source with a dedupe key), since the partitioned `events` cannot hold a unique index across
//! its history (migration 0016).

use relay_core::{EventId, SourceId, TenantId};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub tenant_id: TenantId,
    /// [`relay_core::operational::RELAY_SOURCE`] for the relay's own events.
    pub source_id: SourceId,
    pub wap_event_id: String,
    pub event_type: String,
    pub device_id: Option<String>,
    pub timestamp: OffsetDateTime,
    pub body: bytes::Bytes,
    /// The identity from the source's dedupe key, when it has one and the event holds its
    /// values (an event is a duplicate when its eventId or this was seen).
    pub dedupe_id: Option<String>,
    /// The history class it is written in: the tenant's retention in days
    /// ([`crate::partitions::keep_days`]).
    pub keep_days: i16,
}

impl NewEvent {
    /// What the Redis fast path remembers: the dedupe id, or the eventId.
    pub fn dedupe_identity(&self) -> &str {
        self.dedupe_id.as_deref().unwrap_or(&self.wap_event_id)
    }

    /// What destination filters look at.
    pub fn key(&self) -> relay_core::filter::EventKey<'_> {
        relay_core::filter::EventKey {
            source_id: self.source_id,
            event_type: &self.event_type,
            device_id: self.device_id.as_deref(),
        }
    }
}

/// Inserts the events that are not duplicates and returns the ids of those inserted. A batch may
/// hold the same (source, eventId) twice: the first one wins, like two separate requests.
pub async fn insert_events(db: impl PgExecutor<'_>, events: &[NewEvent]) -> Result<Vec<EventId>> {
    crate::ingest::store_events(db, events, &[], Uuid::nil()).await
}

/// A stored event, as the admin API lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub source_id: Uuid,
    pub wap_event_id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub device_id: Option<String>,
    pub timestamp: OffsetDateTime,
    pub received_at: OffsetDateTime,
    pub body: Vec<u8>,
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, tenant_id, source_id, wap_event_id, type, device_id, \"timestamp\", received_at, body";

/// Filters of the event log; `range` applies to `received_at`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub source_id: Option<SourceId>,
    pub event_type: Option<String>,
    pub device_id: Option<String>,
    pub wap_event_id: Option<String>,
    pub range: crate::keyset::TimeRange,
}

/// The tenant's events, newest first, after `before` (a keyset cursor) when given.
pub async fn list_events(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    filter: &EventFilter,
    before: Option<EventId>,
    limit: i64,
) -> Result<Vec<EventRow>> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE "));
    push_list_events(&mut q, tenant, filter, before, limit);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// The plan Postgres chooses for [`list_events`] with these arguments (`EXPLAIN`, without
/// running it), one line per plan node: for tests and for operators looking into a slow log.
pub async fn explain_list_events(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    filter: &EventFilter,
    before: Option<EventId>,
    limit: i64,
) -> Result<String> {
    let mut q = sqlx::QueryBuilder::new(format!("EXPLAIN SELECT {EVENT_COLUMNS} FROM events WHERE "));
    push_list_events(&mut q, tenant, filter, before, limit);
    let lines: Vec<String> = q.build_query_scalar().fetch_all(db).await?;
    Ok(lines.join("\n"))
}

/// Appends the conditions, order and limit of [`list_events`] (the builder ends with `WHERE `).
fn push_list_events(
    q: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    tenant: TenantId,
    filter: &EventFilter,
    before: Option<EventId>,
    limit: i64,
) {
    // WAPing's eventId finds at most one event per source, through the dedupe table's key
    // (source_id, 'e:' || eventId) over the tenant's sources (a few), then a sort of those few.
    // Other filters, source included, scan the primary key (tenant_id, id) newest first.
    let scan = match filter.wap_event_id {
        Some(_) => crate::keyset::Scan::ByFilter,
        None => crate::keyset::Scan::ByTenant,
    };
    crate::keyset::push_tenant(q, tenant.uuid(), scan);
    if let Some(w) = &filter.wap_event_id {
        q.push(" AND id IN (SELECT event_id FROM event_keys WHERE key = 'e:' || ").push_bind(w.clone());
        match filter.source_id {
            Some(source) => q.push(" AND source_id = ").push_bind(source.uuid()),
            // The relay's own events are keyed under its (nil) source id.
            None => q
                .push(" AND source_id IN (SELECT id FROM sources WHERE tenant_id = ")
                .push_bind(tenant.uuid())
                .push(" UNION ALL SELECT ")
                .push_bind(relay_core::operational::RELAY_SOURCE.uuid())
                .push(")"),
        };
        q.push(")");
    }
    if let Some(source) = filter.source_id {
        q.push(" AND source_id = ").push_bind(source.uuid());
    }
    if let Some(t) = &filter.event_type {
        q.push(" AND type = ").push_bind(t.clone());
    }
    if let Some(d) = &filter.device_id {
        q.push(" AND device_id = ").push_bind(d.clone());
    }
    if let Some(w) = &filter.wap_event_id {
        q.push(" AND wap_event_id = ").push_bind(w.clone());
    }
    crate::keyset::push_range(q, before.map(EventId::uuid), "received_at", filter.range);
    crate::keyset::push_page_end(q, limit, scan);
}

/// One event of this tenant.
pub async fn find_event(db: impl PgExecutor<'_>, tenant: TenantId, id: EventId) -> Result<Option<EventRow>> {
    let sql =
        sqlx::AssertSqlSafe(format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?)
}

/// Locks one event of this tenant until the transaction ends (serialises redeliveries of it);
/// `None` also for an event past its retention (its history slice may be about to go).
pub async fn lock_event(db: impl PgExecutor<'_>, tenant: TenantId, id: EventId) -> Result<Option<EventRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2 AND {} FOR UPDATE",
        crate::within_retention!()
    ));
    Ok(sqlx::query_as(sql).bind(tenant.uuid()).bind(id.uuid()).fetch_optional(db).await?)
}
