//! `wap-relay stats`: the tenant's delivery statistics (`/v1/stats`), totals first, then one row
//! per destination.

use reqwest::Method;

use super::Ctx;
use super::parse::time_arg;
use super::request::Query;
use crate::output::{Column, Section, col};

const DESTINATION_COLUMNS: &[Column] = &[
    col("DESTINATION", "destination_id"),
    col("PENDING", "deliveries.pending"),
    col("SUCCEEDED", "deliveries.succeeded"),
    col("FAILED", "deliveries.failed"),
    col("ATTEMPTS", "attempts"),
    col("SUCCESS RATE", "success_rate"),
    col("P50 MS", "latency_ms.p50"),
    col("P99 MS", "latency_ms.p99"),
];

const SECTIONS: &[Section] =
    &[Section { key: "destinations", title: "Destinations", columns: DESTINATION_COLUMNS }];

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The window's start: TIME (RFC 3339, or an age such as 24h; the relay's default is a day).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<String>,
}

pub(super) async fn run(ctx: &Ctx, args: StatsArgs) -> anyhow::Result<()> {
    let path = Query::new().opt("since", args.since).to_path("/v1/stats");
    ctx.show(Method::GET, &path, None, SECTIONS).await
}
