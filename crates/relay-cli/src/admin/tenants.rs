//! `wap-relay tenants …`: the operator's commands (`/v1/tenants`, `/v1/tenants/{id}`,
//! `/v1/tenants/{id}/tokens`); they need an operator token. A minted token is shown once: the
//! relay does not store it.

use anyhow::bail;
use relay_core::TenantId;
use relay_core::plan::Plan;
use relay_core::vocab::TenantStatus;
use reqwest::Method;

use super::Ctx;
use super::list::ListArgs;
use super::parse::one_of;
use super::request::{Body, Query};
use crate::output::{Column, col};

const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("NAME", "name"),
    col("PLAN", "plan"),
    col("STATUS", "status"),
    col("CREATED", "created_at"),
];

#[derive(Debug, clap::Subcommand)]
pub enum TenantsCommand {
    /// List tenants, newest first.
    #[command(after_help = "Example:\n  wap-relay tenants list --all")]
    List(ListArgs),
    /// Show one tenant with its limits.
    #[command(after_help = "Example:\n  wap-relay tenants get ten_0192…")]
    Get {
        /// The tenant's id (ten_…).
        id: TenantId,
    },
    /// Create a tenant (then mint its token with `tenants token`).
    #[command(after_help = "Example:\n  wap-relay tenants create --name Acme --plan growth")]
    Create {
        /// A name for people, 1 to 200 characters.
        #[arg(long)]
        name: String,
        /// The plan, which sets the tenant's limits.
        #[arg(long, value_parser = one_of(&Plan::ALL, Plan::as_str))]
        plan: Plan,
    },
    /// Change a tenant's name, plan or status; fields left out stay as they are.
    #[command(after_help = "Example:\n  wap-relay tenants update ten_0192… --plan pro --status active")]
    Update {
        /// The tenant's id (ten_…).
        id: TenantId,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new plan.
        #[arg(long, value_parser = one_of(&Plan::ALL, Plan::as_str))]
        plan: Option<Plan>,
        /// suspended: the tenant's sources refuse events; active: they accept them again.
        #[arg(long, value_parser = one_of(TenantStatus::ALL, TenantStatus::as_str))]
        status: Option<TenantStatus>,
    },
    /// Mint a token of a tenant (shown once).
    #[command(after_help = "Example:\n  wap-relay tenants token ten_0192… --ttl-seconds 86400")]
    Token {
        /// The tenant's id (ten_…).
        id: TenantId,
        /// The token's lifetime in seconds (the relay's default is 30 days).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        ttl_seconds: Option<u64>,
    },
}

pub(super) async fn run(ctx: &Ctx, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::List(list) => list.print(ctx, "/v1/tenants", Query::new(), COLUMNS).await,
        TenantsCommand::Get { id } => ctx.show(Method::GET, &format!("/v1/tenants/{id}"), None, &[]).await,
        TenantsCommand::Create { name, plan } => {
            let body = Body::new().set("name", name).set("plan", plan.as_str());
            ctx.show(Method::POST, "/v1/tenants", Some(body.into_value()), &[]).await
        }
        TenantsCommand::Update { id, name, plan, status } => {
            let body = Body::new()
                .opt("name", name)
                .opt("plan", plan.map(Plan::as_str))
                .opt("status", status.map(TenantStatus::as_str));
            if body.is_empty() {
                bail!("nothing to change: give --name, --plan or --status");
            }
            ctx.show(Method::PATCH, &format!("/v1/tenants/{id}"), Some(body.into_value()), &[]).await
        }
        TenantsCommand::Token { id, ttl_seconds } => {
            let body = Body::new().opt("ttl_seconds", ttl_seconds).or_none();
            ctx.show(Method::POST, &format!("/v1/tenants/{id}/tokens"), body, &[]).await
        }
    }
}
