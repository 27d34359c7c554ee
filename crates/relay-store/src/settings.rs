//! Process-wide settings kept in the database, such as the generated development secrets that
//! every process of a fleet must share.

use sqlx::PgExecutor;

use crate::error::Result;

/// Returns the stored value of `key`, storing `generate()` first if there is none. Concurrent
/// callers all get the one value that won.
pub async fn get_or_init(
    db: impl PgExecutor<'_> + Copy,
    key: &str,
    generate: impl FnOnce() -> String,
) -> Result<String> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(generate())
        .execute(db)
        .await?;
    let value =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_one(db).await?;
    Ok(value)
}
