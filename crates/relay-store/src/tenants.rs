//! The `tenants` table: a SaaS customer, its plan, status and limit overrides.

use relay_core::TenantId;
use relay_core::plan::{LimitOverrides, Limits, Plan};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Result, StoreError};

pub use relay_core::vocab::TenantStatus;

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub plan: Plan,
    pub status: TenantStatus,
    pub overrides: LimitOverrides,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Tenant {
    /// The plan's limits with this tenant's overrides.
    pub fn limits(&self) -> Limits {
        self.plan.limits().with(&self.overrides)
    }
}

#[derive(FromRow)]
struct TenantRow {
    id: Uuid,
    name: String,
    plan: String,
    #[sqlx(try_from = "String")]
    status: TenantStatus,
    limits: Json<LimitOverrides>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;

    fn try_from(r: TenantRow) -> Result<Self> {
        Ok(Tenant {
            id: TenantId::from_uuid(r.id),
            name: r.name,
            plan: r.plan.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?,
            status: r.status,
            overrides: r.limits.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "id, name, plan, status, limits, created_at, updated_at";

pub async fn insert_tenant(db: impl PgExecutor<'_>, name: &str, plan: Plan) -> Result<Tenant> {
    let row: TenantRow = sqlx::query_as(
        "INSERT INTO tenants (id, name, plan) VALUES ($1, $2, $3) \
         RETURNING id, name, plan, status, limits, created_at, updated_at",
    )
    .bind(TenantId::new().uuid())
    .bind(name)
    .bind(plan.as_str())
    .fetch_one(db)
    .await?;
    row.try_into()
}

pub async fn find_tenant(db: impl PgExecutor<'_>, id: TenantId) -> Result<Option<Tenant>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"));
    let row: Option<TenantRow> = sqlx::query_as(sql).bind(id.uuid()).fetch_optional(db).await?;
    row.map(Tenant::try_from).transpose()
}

/// The tenants among `ids` that exist, in no particular order.
pub async fn find_tenants(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<Tenant>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE id = ANY($1)"));
    let rows: Vec<TenantRow> = sqlx::query_as(sql).bind(ids).fetch_all(db).await?;
    rows.into_iter().map(Tenant::try_from).collect()
}

pub async fn get_tenant(db: impl PgExecutor<'_>, id: TenantId) -> Result<Tenant> {
    find_tenant(db, id).await?.ok_or(StoreError::NotFound)
}

/// Newest first, after `before` (a keyset cursor) when given.
pub async fn list_tenants(
    db: impl PgExecutor<'_>,
    before: Option<TenantId>,
    limit: i64,
) -> Result<Vec<Tenant>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tenants WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
    ));
    let rows: Vec<TenantRow> =
        sqlx::query_as(sql).bind(before.map(TenantId::uuid)).bind(limit).fetch_all(db).await?;
    rows.into_iter().map(Tenant::try_from).collect()
}

/// What an operator may change on a tenant. `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct TenantUpdate {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub status: Option<TenantStatus>,
    pub overrides: Option<LimitOverrides>,
}

pub async fn update_tenant(db: impl PgExecutor<'_>, id: TenantId, update: &TenantUpdate) -> Result<Tenant> {
    let row: Option<TenantRow> = sqlx::query_as(
        "UPDATE tenants SET name = COALESCE($2, name), plan = COALESCE($3, plan), \
         status = COALESCE($4, status), limits = COALESCE($5, limits), updated_at = now() \
         WHERE id = $1 RETURNING id, name, plan, status, limits, created_at, updated_at",
    )
    .bind(id.uuid())
    .bind(update.name.as_deref())
    .bind(update.plan.map(Plan::as_str))
    .bind(update.status.map(TenantStatus::as_str))
    .bind(update.overrides.as_ref().map(Json))
    .fetch_optional(db)
    .await?;
    row.ok_or(StoreError::NotFound)?.try_into()
}

/// The tenant, its row locked until the transaction ends. Creations that check a plan's count
/// limit take this lock first, so two concurrent creations cannot both pass the check.
pub async fn lock_tenant(db: impl PgExecutor<'_>, id: TenantId) -> Result<Tenant> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE"));
    let row: Option<TenantRow> = sqlx::query_as(sql).bind(id.uuid()).fetch_optional(db).await?;
    row.ok_or(StoreError::NotFound)?.try_into()
}
