//! Keyset pagination helpers shared by the list queries. Every id is a UUIDv7 whose first 48 bits
//! are its creation time in Unix milliseconds, so "newest first" is a backward scan of a
//! `(tenant_id, id)` index, and a page after a cursor is `id < cursor`: new rows never shift a
//! page, and no query ever uses OFFSET.
//!
//! Time filters (`since`, `until`) are exact on the row's own timestamp column, and are also turned
//! into an id range widened by [`CLOCK_MARGIN`] so the index scan stops at the range's end instead
//! of walking the tenant's whole history. The margin covers the gap between the clock that minted
//! the id and the one that stamped the row.

use sqlx::{Postgres, QueryBuilder};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How far an id's embedded time may differ from its row's timestamp column.
pub const CLOCK_MARGIN: Duration = Duration::minutes(10);

/// The smallest UUIDv7 that could have been minted at `t - CLOCK_MARGIN`; the nil UUID when that
/// instant is before the calendar's start (`t` comes from user input, so it may be any date).
pub fn id_floor(t: OffsetDateTime) -> Uuid {
    t.checked_sub(CLOCK_MARGIN).map_or(Uuid::nil(), |t| v7_bound(t, 0x00))
}

/// The largest UUIDv7 that could have been minted at `t + CLOCK_MARGIN`; the max UUID when that
/// instant is past the calendar's end.
pub fn id_ceiling(t: OffsetDateTime) -> Uuid {
    t.checked_add(CLOCK_MARGIN).map_or(Uuid::max(), |t| v7_bound(t, 0xff))
}

fn v7_bound(t: OffsetDateTime, fill: u8) -> Uuid {
    let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut bytes = [fill; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

/// A time range on a row's timestamp column.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeRange {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Appends ` AND id < $before`, the time range on `column` and its id range. The builder must
/// already hold a `WHERE` clause.
pub(crate) fn push_range(
    q: &mut QueryBuilder<Postgres>,
    before: Option<Uuid>,
    column: &str,
    range: TimeRange,
) {
    if let Some(before) = before {
        q.push(" AND id < ").push_bind(before);
    }
    if let Some(since) = range.since {
        q.push(" AND id >= ").push_bind(id_floor(since));
        q.push(format!(" AND {column} >= ")).push_bind(since);
    }
    if let Some(until) = range.until {
        q.push(" AND id <= ").push_bind(id_ceiling(until));
        q.push(format!(" AND {column} < ")).push_bind(until);
    }
}

/// How a list reaches its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Backwards through a `(tenant_id, id)` index.
    ///
    /// The tenant is written as a one-value range and the order as `tenant_id DESC, id DESC`:
    /// with a plain `tenant_id = $1` the planner treats the tenant as a constant, drops it from
    /// the order, and may walk an index on `id` alone backwards instead, filtering out every newer
    /// row of the other tenants (hundreds of milliseconds when a big tenant has been quiet while
    /// others were busy). Written this way only the tenant index yields the order.
    ByTenant,
    /// Through another index that leads with an equality filter (a destination, an event, a
    /// delivery); the tenant is an exact filter on top.
    ByFilter,
}

/// Appends the tenant condition (the builder ends with `WHERE `).
pub(crate) fn push_tenant(q: &mut QueryBuilder<Postgres>, tenant: Uuid, scan: Scan) {
    match scan {
        Scan::ByTenant => {
            q.push("tenant_id >= ").push_bind(tenant).push(" AND tenant_id <= ").push_bind(tenant)
        }
        Scan::ByFilter => q.push("tenant_id = ").push_bind(tenant),
    };
}

/// Appends the newest-first order and the row limit.
pub(crate) fn push_page_end(q: &mut QueryBuilder<Postgres>, limit: i64, scan: Scan) {
    match scan {
        Scan::ByTenant => q.push(" ORDER BY tenant_id DESC, id DESC LIMIT "),
        Scan::ByFilter => q.push(" ORDER BY id DESC LIMIT "),
    };
    q.push_bind(limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_enclose_ids_minted_at_that_time() {
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        assert!(id_floor(now) < id);
        assert!(id_ceiling(now) > id);
        assert!(id_ceiling(now - Duration::hours(1)) < id);
        assert!(id_floor(now + Duration::hours(1)) > id);
    }

    #[test]
    fn bounds_saturate_at_the_ends_of_the_calendar() {
        let last = time::PrimitiveDateTime::MAX.assume_utc();
        let first = time::PrimitiveDateTime::MIN.assume_utc();
        let id = Uuid::now_v7();
        assert_eq!(id_ceiling(last), Uuid::max());
        assert_eq!(id_floor(first), Uuid::nil());
        assert!(id_floor(last) > id && id_ceiling(first) < id);
        // Before the Unix epoch no UUIDv7 exists: the bounds clamp to its start.
        assert!(id_ceiling(first) < Uuid::from_u128(1 << 80));
    }
}
