//! Queries shared by the soft-deleted, tenant-owned tables (`sources`, `destinations`): a page
//! of live rows, their count, and which given ids are not live rows. Table and column names are
//! compile-time constants of the calling module, never user input.

use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::keyset::{Scan, TimeRange, push_page_end, push_range, push_tenant};

/// A page of a tenant's live (not soft-deleted) rows of `table`, newest first, after `before`.
pub(crate) async fn list_live<T>(
    db: impl sqlx::PgExecutor<'_>,
    table: &str,
    columns: &str,
    tenant: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> crate::error::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut q = QueryBuilder::new(format!("SELECT {columns} FROM {table} WHERE deleted_at IS NULL AND "));
    push_tenant(&mut q, tenant, Scan::ByTenant);
    push_range(&mut q, before, "created_at", TimeRange::default());
    push_page_end(&mut q, limit, Scan::ByTenant);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// The ids among `ids` that are not live rows of `table` for the tenant.
pub(crate) async fn missing_live(
    db: impl sqlx::PgExecutor<'_>,
    table: &str,
    tenant: Uuid,
    ids: Vec<Uuid>,
) -> crate::error::Result<Vec<Uuid>> {
    let sql = format!(
        "SELECT i.id FROM UNNEST($2::uuid[]) AS i(id) WHERE NOT EXISTS \
         (SELECT 1 FROM {table} t WHERE t.tenant_id = $1 AND t.id = i.id AND t.deleted_at IS NULL)"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(ids).fetch_all(db).await?)
}

/// How many live rows of `table` the tenant has (plan limits and usage).
pub(crate) async fn count_live(
    db: impl sqlx::PgExecutor<'_>,
    table: &str,
    tenant: Uuid,
) -> crate::error::Result<i64> {
    let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1 AND deleted_at IS NULL");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(tenant).fetch_one(db).await?)
}
