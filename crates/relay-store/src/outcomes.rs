//! Recording what attempts did: the `attempts` rows, each delivery's new state (its queue row
//! leaves the queue or is rescheduled, its log row is updated in place), and each destination's
//! health, for a whole batch of attempts in one statement.
//!
//! Invariants: a delivery's state changes only if the recorder still holds the row's lease (the
//! attempt row is stored either way: the request did happen); the log row's update touches no
//! indexed column, so it is a HOT update; the destination's failure streak (`failing_since`) is
//! looked at only for the destinations the caller names in `health` (those whose streak may
//! change), so the success path costs no destination reads or writes; a destination is disabled
//! on `410 Gone`, or when every attempt has failed for the configured period. Concurrent batches
//! apply in commit order, as one writer's batches would. A delivery that becomes failed is
//! reported (`relay.delivery.failed`, through the outbox) in the same statement, and marks its
//! destination's streak as notable, so the streak's end is reported too (the destination
//! trigger of migration 0018 reports disabling, re-enabling and recovery).

use std::collections::HashMap;
use std::time::Duration;

use relay_core::{AttemptId, DeliveryId, DestinationId, TenantId};
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dispatch::Trigger;
use crate::error::Result;

pub use relay_core::vocab::AttemptOutcome;

/// The delivery's state after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    /// Still pending; try again at this time.
    Retry(OffsetDateTime),
    Succeeded,
    Failed,
}

/// One finished attempt and its consequences.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub tenant_id: TenantId,
    pub destination_id: DestinationId,
    pub lease_token: Uuid,
    /// 1-based, as sent in `X-Relay-Attempt`.
    pub number: i32,
    pub trigger: Trigger,
    pub started_at: OffsetDateTime,
    pub duration_ms: i32,
    pub url: String,
    pub outcome: AttemptOutcome,
    pub status_code: Option<i32>,
    /// A JSON object of the response headers.
    pub response_headers: Option<serde_json::Value>,
    /// The first 4 KiB of the response body.
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub next: NextState,
    /// The destination answered `410 Gone`: disable it.
    pub gone: bool,
    /// The destination's failure streak as the dispatcher last read it (`Some(None)`: healthy);
    /// `None` when unknown. Only destinations whose streak this batch may change are looked at.
    pub known_failing_since: Option<Option<OffsetDateTime>>,
}

/// What a batch changed.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Deliveries whose state was updated (the others had lost their lease).
    pub applied: u64,
    /// Destinations this batch disabled, with the reason.
    pub disabled: Vec<(DestinationId, String)>,
}

/// Per destination in a batch: whether an attempt succeeded, and the first failure after the
/// last success.
struct Health {
    tenant: Uuid,
    reset: bool,
    last_success: Option<OffsetDateTime>,
    first_failure: Option<OffsetDateTime>,
    gone: bool,
    /// A delivery to it became failed: its streak is notable.
    failed: bool,
}

/// Whether a batch's attempts to one destination can change its streak or disable it, given what
/// the dispatcher knew of the streak: a success on a healthy destination and a failure inside a
/// known streak that is not yet `unhealthy_after` old change nothing.
fn may_change(h: &Health, known: Option<Option<OffsetDateTime>>, unhealthy_after: Duration) -> bool {
    let Some(known) = known else { return true };
    let failed = h.first_failure.is_some();
    let too_long = known.is_some_and(|since| {
        OffsetDateTime::now_utc() - since
            >= time::Duration::try_from(unhealthy_after).unwrap_or(time::Duration::MAX)
    });
    h.gone || h.failed || (h.reset && known.is_some()) || (failed && (known.is_none() || too_long))
}

fn health_of(records: &[AttemptRecord], unhealthy_after: Duration) -> HashMap<Uuid, Health> {
    let mut by_dest: HashMap<Uuid, Health> = HashMap::new();
    for r in records.iter().filter(|r| r.outcome == AttemptOutcome::Success) {
        let h = by_dest.entry(r.destination_id.uuid()).or_insert(Health {
            tenant: r.tenant_id.uuid(),
            reset: true,
            last_success: None,
            first_failure: None,
            gone: false,
            failed: false,
        });
        h.last_success = h.last_success.max(Some(r.started_at));
    }
    for r in records.iter().filter(|r| r.outcome != AttemptOutcome::Success) {
        let h = by_dest.entry(r.destination_id.uuid()).or_insert(Health {
            tenant: r.tenant_id.uuid(),
            reset: false,
            last_success: None,
            first_failure: None,
            gone: false,
            failed: false,
        });
        h.gone |= r.gone;
        h.failed |= r.next == NextState::Failed;
        if h.last_success.is_none_or(|s| r.started_at > s) {
            h.first_failure = Some(h.first_failure.map_or(r.started_at, |f| f.min(r.started_at)));
        }
    }
    let known: HashMap<Uuid, Option<Option<OffsetDateTime>>> =
        records.iter().map(|r| (r.destination_id.uuid(), r.known_failing_since)).collect();
    by_dest.retain(|id, h| may_change(h, known.get(id).copied().flatten(), unhealthy_after));
    by_dest
}

/// Stores the attempts, applies each delivery's new state (lease holders only), updates the
/// destinations' failure streaks and disables the ones that answered `410` or have failed every
/// attempt for `unhealthy_after`. One statement, so one round trip and atomic. When a delivery
/// held in per-device order leaves the queue, it NOTIFYs the dispatchers (at commit): the
/// device's next delivery is due now, not at the next poll.
///
/// Safe to run concurrently (the dispatcher writes a few batches at once): only the destinations
/// whose health changes are locked, in id order (so two batches cannot deadlock), and their new
/// state is computed from the row as locked (the latest), not from the statement's snapshot; the
/// common path (a success on a healthy destination) locks no destination.
pub async fn record_attempts(
    db: impl PgExecutor<'_>,
    records: &[AttemptRecord],
    unhealthy_after: Duration,
) -> Result<Recorded> {
    if records.is_empty() {
        return Ok(Recorded::default());
    }
    let col = |f: &dyn Fn(&AttemptRecord) -> Uuid| records.iter().map(f).collect::<Vec<Uuid>>();
    let ids = col(&|r| r.id.uuid());
    let deliveries = col(&|r| r.delivery_id.uuid());
    let tenants = col(&|r| r.tenant_id.uuid());
    let destinations = col(&|r| r.destination_id.uuid());
    let leases = col(&|r| r.lease_token);
    let numbers: Vec<i32> = records.iter().map(|r| r.number).collect();
    let triggers: Vec<&str> = records.iter().map(|r| r.trigger.as_str()).collect();
    let started: Vec<OffsetDateTime> = records.iter().map(|r| r.started_at).collect();
    let durations: Vec<i32> = records.iter().map(|r| r.duration_ms).collect();
    let urls: Vec<&str> = records.iter().map(|r| r.url.as_str()).collect();
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    let codes: Vec<Option<i32>> = records.iter().map(|r| r.status_code).collect();
    let headers: Vec<Option<String>> =
        records.iter().map(|r| r.response_headers.as_ref().map(|h| h.to_string())).collect();
    let bodies: Vec<Option<&str>> = records.iter().map(|r| r.response_body.as_deref()).collect();
    let errors: Vec<Option<&str>> = records.iter().map(|r| r.error.as_deref()).collect();
    let statuses: Vec<&str> = records
        .iter()
        .map(|r| match r.next {
            NextState::Retry(_) => "pending",
            NextState::Succeeded => "succeeded",
            NextState::Failed => "failed",
        })
        .collect();
    let next_at: Vec<Option<OffsetDateTime>> = records
        .iter()
        .map(|r| match r.next {
            NextState::Retry(at) => Some(at),
            _ => None,
        })
        .collect();

    let health = health_of(records, unhealthy_after);
    let h_dest: Vec<Uuid> = health.keys().copied().collect();
    let h_tenant: Vec<Uuid> = health.values().map(|h| h.tenant).collect();
    let h_reset: Vec<bool> = health.values().map(|h| h.reset).collect();
    let h_first: Vec<Option<OffsetDateTime>> = health.values().map(|h| h.first_failure).collect();
    let h_gone: Vec<bool> = health.values().map(|h| h.gone).collect();
    let h_failed: Vec<bool> = health.values().map(|h| h.failed).collect();
    let period_ms = i64::try_from(unhealthy_after.as_millis()).unwrap_or(i64::MAX);

    let sql = sqlx::AssertSqlSafe(format!(
        "WITH a AS ( \
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::int[], \
             $7::text[], $8::timestamptz[], $9::int[], $10::text[], $11::text[], $12::int[], $13::text[], \
             $14::text[], $15::text[], $16::text[], $17::timestamptz[]) \
           AS a(id, delivery_id, tenant_id, destination_id, lease_token, number, trigger, started_at, \
                duration_ms, url, outcome, status_code, response_headers, response_body, error, \
                status, next_attempt_at) \
         ), ins AS ( \
           INSERT INTO attempts (id, tenant_id, delivery_id, destination_id, number, trigger, started_at, \
             duration_ms, url, outcome, status_code, response_headers, response_body, error, next_attempt_at, \
             keep_days) \
           SELECT id, tenant_id, delivery_id, destination_id, number, trigger, started_at, duration_ms, url, \
             outcome, status_code, response_headers::jsonb, response_body, error, next_attempt_at, \
             COALESCE((SELECT q.keep_days FROM delivery_queue q \
               WHERE q.tenant_id = a.tenant_id AND q.delivery_id = a.delivery_id), 0::smallint) FROM a \
         ), done AS ( \
           DELETE FROM delivery_queue q USING a \
           WHERE q.tenant_id = a.tenant_id AND q.delivery_id = a.delivery_id \
             AND q.lease_token = a.lease_token AND a.status <> 'pending' \
           RETURNING q.delivery_id, q.lease_token, q.started, q.device_key, q.event_id, q.keep_days, \
             q.destination_id \
         ), promoted AS ({}), again AS ( \
           UPDATE delivery_queue q SET due_at = a.next_attempt_at, lease_token = NULL, \"trigger\" = 'auto' \
           FROM a WHERE q.tenant_id = a.tenant_id AND q.delivery_id = a.delivery_id \
             AND q.lease_token = a.lease_token AND a.status = 'pending' \
           RETURNING q.delivery_id, a.lease_token, q.started \
         ), upd AS ( \
           UPDATE deliveries d SET status = a.status, attempts = d.attempts + 1, \
             attempts_started = greatest(d.attempts_started, o.started), \
             next_attempt_at = a.next_attempt_at, next_trigger = 'auto', \
             last_status_code = a.status_code, last_error = a.error, \
             completed_at = CASE WHEN a.status = 'pending' THEN NULL ELSE now() END \
           FROM a JOIN (SELECT delivery_id, lease_token, started FROM done UNION ALL SELECT * FROM again) o \
             ON o.delivery_id = a.delivery_id AND o.lease_token = a.lease_token \
           WHERE d.tenant_id = a.tenant_id AND d.id = a.delivery_id \
           RETURNING d.id, d.attempts \
         ), hin AS ( \
           SELECT * FROM UNNEST($18::uuid[], $19::uuid[], $20::bool[], $21::timestamptz[], $22::bool[], \
             $25::bool[]) AS h(dest, tenant, reset, first_failure, gone, failed) \
         ), lk AS ( \
           SELECT d0.id, d0.tenant_id, d0.failing_since FROM destinations d0 \
           JOIN hin ON d0.id = hin.dest AND d0.tenant_id = hin.tenant \
           CROSS JOIN LATERAL (SELECT CASE WHEN hin.reset THEN hin.first_failure \
                                      ELSE COALESCE(d0.failing_since, hin.first_failure) END AS fs) f \
           WHERE d0.failing_since IS DISTINCT FROM f.fs OR (hin.failed AND NOT d0.streak_notable) \
             OR (d0.enabled AND (hin.gone OR f.fs <= now() - $23 * interval '1 millisecond')) \
           ORDER BY d0.id FOR NO KEY UPDATE OF d0 \
         ), h AS ( \
           SELECT lk.id AS dest, lk.tenant_id AS tenant, f.fs, hin.gone, hin.failed, \
             (hin.gone OR (f.fs IS NOT NULL AND f.fs <= now() - $23 * interval '1 millisecond')) AS disable \
           FROM lk JOIN hin ON hin.dest = lk.id AND hin.tenant = lk.tenant_id \
           CROSS JOIN LATERAL (SELECT CASE WHEN hin.reset THEN hin.first_failure \
                                      ELSE COALESCE(lk.failing_since, hin.first_failure) END AS fs) f \
         ), dis AS ( \
           UPDATE destinations ds SET failing_since = h.fs, streak_notable = ds.streak_notable OR h.failed, \
             enabled = ds.enabled AND NOT h.disable, \
             disabled_reason = CASE WHEN ds.enabled AND h.disable THEN \
               CASE WHEN h.gone THEN 'the destination answered 410 Gone' \
                    ELSE 'every attempt has failed since ' \
                         || to_char(h.fs AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END \
               ELSE ds.disabled_reason END, \
             disabled_at = CASE WHEN ds.enabled AND h.disable THEN now() ELSE ds.disabled_at END \
           FROM h WHERE ds.id = h.dest AND ds.tenant_id = h.tenant \
             AND (ds.failing_since IS DISTINCT FROM h.fs OR (ds.enabled AND h.disable) \
               OR (h.failed AND NOT ds.streak_notable)) \
           RETURNING ds.id, ds.tenant_id, ds.enabled, ds.disabled_reason, (ds.disabled_at = now()) AS just_disabled \
         ), wake AS ( \
           SELECT pg_notify($24, '') FROM (SELECT 1 FROM done WHERE device_key IS NOT NULL LIMIT 1) one \
         ), fl AS ( \
           SELECT a.tenant_id, a.delivery_id, a.destination_id, done.event_id, \
             jsonb_build_object('attempts', upd.attempts, 'lastStatusCode', a.status_code, 'lastError', a.error) AS detail \
           FROM a JOIN done ON done.delivery_id = a.delivery_id AND done.lease_token = a.lease_token \
           JOIN upd ON upd.id = a.delivery_id \
           WHERE a.status = 'failed' \
         ), {} \
         SELECT (SELECT count(*) FROM upd) + 0 * (SELECT count(*) FROM wake) + 0 * (SELECT n FROM failed_wake) \
           + 0 * (SELECT count(*) FROM promoted), \
           COALESCE((SELECT array_agg(id ORDER BY id) FROM dis WHERE NOT enabled AND just_disabled), '{{}}'), \
           COALESCE((SELECT array_agg(disabled_reason ORDER BY id) FROM dis WHERE NOT enabled AND just_disabled), '{{}}')",
        crate::ordering::promote_sql("done"),
        crate::outbox::failed_sql("fl")
    ));
    let (applied, disabled_ids, disabled_reasons): (i64, Vec<Uuid>, Vec<String>) = sqlx::query_as(sql)
        .bind(ids)
        .bind(deliveries)
        .bind(tenants)
        .bind(destinations)
        .bind(leases)
        .bind(numbers)
        .bind(triggers)
        .bind(started)
        .bind(durations)
        .bind(urls)
        .bind(outcomes)
        .bind(codes)
        .bind(headers)
        .bind(bodies)
        .bind(errors)
        .bind(statuses)
        .bind(next_at)
        .bind(h_dest)
        .bind(h_tenant)
        .bind(h_reset)
        .bind(h_first)
        .bind(h_gone)
        .bind(period_ms)
        .bind(crate::deliveries::WAKE_CHANNEL)
        .bind(h_failed)
        .fetch_one(db)
        .await?;
    Ok(Recorded {
        applied: u64::try_from(applied).unwrap_or(0),
        disabled: disabled_ids.into_iter().map(DestinationId::from_uuid).zip(disabled_reasons).collect(),
    })
}
