//! `wap-relay rejections list`: the ingest requests the relay refused (`/v1/rejections`), to
//! find out why WAPing's events do not arrive.

use relay_core::SourceId;

use super::Ctx;
use super::list::ListArgs;
use super::parse::time_arg;
use super::request::Query;
use crate::output::{Column, col};

const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("SOURCE", "source_id"),
    col("REASON", "reason"),
    col("STATUS", "status"),
    col("REPEATS", "repeats"),
    col("RECEIVED", "received_at"),
    col("DETAIL", "detail"),
];

#[derive(Debug, clap::Subcommand)]
pub enum RejectionsCommand {
    /// List refused ingest requests, newest first.
    #[command(after_help = "Example:\n  wap-relay rejections list --reason invalid_signature --since 1h")]
    List(ListRejections),
}

#[derive(Debug, clap::Args)]
pub struct ListRejections {
    /// Only refusals of this source.
    #[arg(long)]
    source_id: Option<SourceId>,
    /// Only refusals with this problem code (invalid_signature, invalid_event, …).
    #[arg(long)]
    reason: Option<String>,
    /// Only refusals at or after TIME (RFC 3339, or an age such as 2h or 7d).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<String>,
    #[command(flatten)]
    list: ListArgs,
}

pub(super) async fn run(ctx: &Ctx, command: RejectionsCommand) -> anyhow::Result<()> {
    let RejectionsCommand::List(args) = command;
    let query =
        Query::new().opt("source_id", args.source_id).opt("reason", args.reason).opt("since", args.since);
    args.list.print(ctx, "/v1/rejections", query, COLUMNS).await
}
