//! The ingest write: a batch of events and the deliveries they fan out to, stored by one
//! statement (so one implicit transaction and one round trip). Only events that are new get
//! their deliveries; duplicates (same source and `eventId` or dedupe id, stored or earlier in
//! the batch) are skipped by the dedupe table `event_keys`. Each delivery gets its log row and its queue row;
//! a delivery handed to this process's own dispatcher is queued already leased to it, the others
//! are due now and the dispatchers are woken by a NOTIFY that Postgres delivers at commit.

use relay_core::EventId;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::deliveries::{NewDelivery, WAKE_CHANNEL};
use crate::error::Result;
use crate::events::NewEvent;

/// Inserts `$1..$7` (delivery ids, tenants, events, destinations, lease lengths in ms with 0 for
/// "due now", the lease token, device keys for per-device ordering) into the log and the queue,
/// for the rows whose event is in `ins` (a CTE of the new events' `id` and `keep_days`, the class
/// the deliveries are written in too); `dq` returns each queue row's lease and whether it is due
/// now. A keyed row behind an earlier one of its device (queued, or earlier in this batch) is
/// parked (`crate::ordering`). Every caller that creates deliveries goes through this text, so the
/// log and the queue can never disagree.
pub(crate) fn queue_sql(first: usize) -> String {
    let p = |k: usize| format!("${}", first + k);
    let due = crate::ordering::due_or_parked(
        "now() + d.lease_ms * interval '1 millisecond'",
        "d.destination_id",
        "d.device_key",
        "d.id",
        "k.rn > 1",
    );
    format!(
        "d AS ( \
           SELECT d.*, ins.keep_days FROM UNNEST({0}::uuid[], {1}::uuid[], {2}::uuid[], {3}::uuid[], \
             {4}::int[], {6}::text[]) AS d(id, tenant_id, event_id, destination_id, lease_ms, device_key) \
           JOIN ins ON ins.id = d.event_id \
         ), dl AS ( \
           INSERT INTO deliveries (id, tenant_id, event_id, destination_id, next_attempt_at, keep_days) \
           SELECT id, tenant_id, event_id, destination_id, now(), keep_days FROM d RETURNING 1 \
         ), dq AS ( \
           INSERT INTO delivery_queue (tenant_id, delivery_id, destination_id, event_id, due_at, \
             lease_token, started, window_started_at, keep_days, device_key) \
           SELECT d.tenant_id, d.id, d.destination_id, d.event_id, {due}, \
             CASE WHEN d.lease_ms > 0 THEN {5}::uuid END, (d.lease_ms > 0)::int, now(), d.keep_days, \
             d.device_key \
           FROM d LEFT JOIN (SELECT id, row_number() OVER (PARTITION BY destination_id, device_key \
               ORDER BY id) AS rn FROM d WHERE device_key IS NOT NULL) k ON k.id = d.id \
           RETURNING lease_token, due_at < 'infinity' AS due \
         )",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    )
}

/// The bind values of [`queue_sql`], in order.
pub(crate) struct QueueColumns {
    pub ids: Vec<Uuid>,
    pub tenants: Vec<Uuid>,
    pub events: Vec<Uuid>,
    pub destinations: Vec<Uuid>,
    pub lease_ms: Vec<i32>,
    pub lease_token: Uuid,
    pub device_keys: Vec<Option<String>>,
}

impl QueueColumns {
    pub fn of(deliveries: &[NewDelivery], lease_token: Uuid) -> Self {
        Self {
            ids: deliveries.iter().map(|d| d.id.uuid()).collect(),
            tenants: deliveries.iter().map(|d| d.tenant_id.uuid()).collect(),
            events: deliveries.iter().map(|d| d.event_id.uuid()).collect(),
            destinations: deliveries.iter().map(|d| d.destination_id.uuid()).collect(),
            lease_ms: deliveries.iter().map(|d| d.lease_ms.map_or(0, |ms| ms.max(1) as i32)).collect(),
            lease_token,
            device_keys: deliveries.iter().map(|d| d.device_key.clone()).collect(),
        }
    }

    pub fn bind<'q, O>(
        self,
        q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        q.bind(self.ids)
            .bind(self.tenants)
            .bind(self.events)
            .bind(self.destinations)
            .bind(self.lease_ms)
            .bind(self.lease_token)
            .bind(self.device_keys)
    }
}

/// The dedupe (`k`): every identity of each event of `e` (its eventId, and its dedupe id when it
/// has one) into `event_keys`, whose primary key makes it exact under any concurrency; `k`
/// returns the identities that were new, and an event is new when all of its identities are. A
/// batch may hold one identity twice: the first event wins, like two separate requests.
const KEYS: &str = "k AS ( \
       INSERT INTO event_keys (source_id, key, event_id, keep_days) \
       SELECT source_id, 'e:' || wap_event_id, id, keep_days FROM e \
       UNION ALL SELECT source_id, dedupe_id, id, keep_days FROM e WHERE dedupe_id IS NOT NULL \
       ON CONFLICT DO NOTHING RETURNING event_id \
     )";

/// Stores `events` and, for those that are new, their `candidates` (deliveries whose `event_id`
/// is one of the events). Candidates with a `lease_ms` are queued leased under `lease_token`.
/// Returns the ids of the events that were new.
pub async fn store_events(
    db: impl PgExecutor<'_>,
    events: &[NewEvent],
    candidates: &[NewDelivery],
    lease_token: Uuid,
) -> Result<Vec<EventId>> {
    Ok(store_events_in_xact(db, events, candidates, lease_token).await?.0)
}

/// As [`store_events`], also returning the id of the transaction that stored them (when any was
/// new), so a backlog count can tell whether it already saw them
/// ([`crate::deliveries::count_backlogs`]).
pub async fn store_events_in_xact(
    db: impl PgExecutor<'_>,
    events: &[NewEvent],
    candidates: &[NewDelivery],
    lease_token: Uuid,
) -> Result<(Vec<EventId>, Option<i64>)> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id.uuid()).collect();
    let tenants: Vec<Uuid> = events.iter().map(|e| e.tenant_id.uuid()).collect();
    let sources: Vec<Uuid> = events.iter().map(|e| e.source_id.uuid()).collect();
    let wap_ids: Vec<&str> = events.iter().map(|e| e.wap_event_id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let devices: Vec<Option<&str>> = events.iter().map(|e| e.device_id.as_deref()).collect();
    let stamps: Vec<OffsetDateTime> = events.iter().map(|e| e.timestamp).collect();
    let bodies: Vec<&[u8]> = events.iter().map(|e| e.body.as_ref()).collect();
    let dedupe_ids: Vec<Option<&str>> = events.iter().map(|e| e.dedupe_id.as_deref()).collect();
    let keeps: Vec<i16> = events.iter().map(|e| e.keep_days).collect();
    // `wake` is evaluated once, and notifies only when deliveries due now were queued.
    let sql = sqlx::AssertSqlSafe(format!(
        "WITH e AS ( \
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
             $7::timestamptz[], $8::bytea[], $17::text[], $18::smallint[]) \
             AS e(id, tenant_id, source_id, wap_event_id, type, device_id, ts, body, dedupe_id, keep_days) \
         ), {KEYS}, \
         ins AS ( \
           INSERT INTO events (id, tenant_id, source_id, wap_event_id, type, device_id, \"timestamp\", body, \
             dedupe_id, keep_days) \
           SELECT e.* FROM e JOIN (SELECT event_id, count(*) AS n FROM k GROUP BY event_id) kc \
             ON kc.event_id = e.id WHERE kc.n = 1 + (e.dedupe_id IS NOT NULL)::int \
           RETURNING id, keep_days \
         ), {} \
         SELECT ins.id, pg_current_xact_id()::text::bigint FROM ins, \
           (SELECT count(pg_notify($16, '')) FROM (SELECT 1 FROM dq WHERE lease_token IS NULL AND due LIMIT 1) one) wake",
        queue_sql(9)
    ));
    let q = sqlx::query_as::<_, (Uuid, i64)>(sql)
        .bind(ids)
        .bind(tenants)
        .bind(sources)
        .bind(wap_ids)
        .bind(types)
        .bind(devices)
        .bind(stamps)
        .bind(bodies);
    let inserted = QueueColumns::of(candidates, lease_token)
        .bind(q)
        .bind(WAKE_CHANNEL)
        .bind(dedupe_ids)
        .bind(keeps)
        .fetch_all(db)
        .await?;
    let xact = inserted.first().map(|(_, x)| *x);
    Ok((inserted.into_iter().map(|(id, _)| EventId::from_uuid(id)).collect(), xact))
}
