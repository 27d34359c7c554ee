//! Lease tokens that name the process holding them, and handing back the leases of a process
//! that died.
//!
//! A token is 16 bytes: the first 8 are the holder's id (random per dispatcher process, the same
//! id it heartbeats under in Redis, see `crate::slots`), the last 8 are random per claim. So the
//! leases of one process are one range of `lease_token`, and a claim costs exactly what it cost
//! before (one token per statement, no extra column or index).
//!
//! Invariant: [`release_leases_of`] touches only rows still leased (`due_at` in the future) under
//! a token of the named processes; it leaves `started` as it is (the dead process may have sent
//! the attempt), so a released row is an ordinary retry, exactly as if its lease had run out.
//! The statement works across tenants, like the claim: it selects by lease, never by tenant.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

/// The process part of a lease token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseHolder(u64);

impl LeaseHolder {
    /// A fresh holder id for a starting process.
    pub fn random() -> Self {
        Self(Uuid::new_v4().as_u64_pair().1)
    }

    /// The holder's id as text (16 hex digits): its name in the fleet's heartbeat.
    pub fn id(&self) -> String {
        format!("{:016x}", self.0)
    }

    /// The holder named by a heartbeat member; `None` for a name that is not a holder id (a
    /// process of an older version).
    pub fn parse(id: &str) -> Option<Self> {
        (id.len() == 16).then(|| u64::from_str_radix(id, 16).ok()).flatten().map(Self)
    }

    /// A new lease token of this holder.
    pub fn mint(&self) -> Uuid {
        Uuid::from_u64_pair(self.0, Uuid::new_v4().as_u64_pair().1)
    }

    /// The first and last token of this holder (Postgres orders `uuid` bytewise).
    fn range(&self) -> (Uuid, Uuid) {
        (Uuid::from_u64_pair(self.0, 0), Uuid::from_u64_pair(self.0, u64::MAX))
    }
}

/// Makes every row leased by `holders` due now, without waiting for its lease to end; one
/// statement for all of them. Returns the rows released.
pub async fn release_leases_of(db: impl PgExecutor<'_>, holders: &[LeaseHolder]) -> Result<u64> {
    if holders.is_empty() {
        return Ok(0);
    }
    let (firsts, lasts): (Vec<Uuid>, Vec<Uuid>) = holders.iter().map(LeaseHolder::range).unzip();
    let done = sqlx::query(
        "UPDATE delivery_queue q SET due_at = now(), lease_token = NULL \
         WHERE q.lease_token IS NOT NULL AND q.due_at > now() \
           AND EXISTS (SELECT 1 FROM UNNEST($1::uuid[], $2::uuid[]) AS h(first, last) \
                       WHERE q.lease_token BETWEEN h.first AND h.last)",
    )
    .bind(firsts)
    .bind(lasts)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holders_tokens_fall_in_its_range_and_no_other() {
        let (a, b) = (LeaseHolder::random(), LeaseHolder::random());
        let (first, last) = a.range();
        for _ in 0..100 {
            let t = a.mint();
            assert!(first <= t && t <= last);
            let u = b.mint();
            assert!(!(first <= u && u <= last));
        }
        assert_eq!(LeaseHolder::parse(&a.id()), Some(a));
        assert_eq!(LeaseHolder::parse(&Uuid::now_v7().simple().to_string()), None);
    }
}
