//! Re-encryption of every stored secret under a new master key (`wap-relay keys rotate-master`),
//! in bounded batches while the fleet runs. The sealed columns are listed once here. A row is
//! rewritten only if its value is still the one read (compare and set), so a secret the fleet
//! changes meanwhile (sealed already with the current key) is never overwritten. It reads across
//! every tenant, like retention: an operator task, the one kind of query here without a tenant.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

/// Every column that holds a value sealed with the master key: (table, column).
pub const SEALED_COLUMNS: &[(&str, &str)] = &[
    ("sources", "secret"),
    ("sources", "previous_secret"),
    ("sources", "verify_token"),
    ("destinations", "signing_secret"),
    ("destinations", "previous_signing_secret"),
    ("destinations", "sealed_headers"),
];

/// Up to `limit` (id, sealed value) of `table.column` after `after`, by id; deleted rows too
/// (their secrets are still stored).
pub async fn sealed_batch(
    db: impl PgExecutor<'_>,
    (table, column): (&str, &str),
    after: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, Vec<u8>)>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT id, {column} FROM {table} WHERE id > $1 AND {column} IS NOT NULL ORDER BY id LIMIT $2"
    ));
    Ok(sqlx::query_as(sql).bind(after).bind(limit).fetch_all(db).await?)
}

/// Replaces `old` by `new` in `table.column` of row `id`; false when the value changed meanwhile.
pub async fn replace_sealed(
    db: impl PgExecutor<'_>,
    (table, column): (&str, &str),
    id: Uuid,
    old: &[u8],
    new: &[u8],
) -> Result<bool> {
    let sql =
        sqlx::AssertSqlSafe(format!("UPDATE {table} SET {column} = $3 WHERE id = $1 AND {column} = $2"));
    let done = sqlx::query(sql).bind(id).bind(old).bind(new).execute(db).await?;
    Ok(done.rows_affected() == 1)
}
