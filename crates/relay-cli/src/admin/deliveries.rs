//! `wap-relay deliveries …` and `wap-relay replay`: deliveries (one event to one destination,
//! `/v1/deliveries`), their attempts (`/v1/deliveries/{id}/attempts`), redelivering one, and
//! replaying a destination's deliveries of a time range (`/v1/destinations/{id}/replay`).

use relay_core::vocab::DeliveryStatus;
use relay_core::{DeliveryId, DestinationId, EventId};
use reqwest::Method;

use super::Ctx;
use super::list::ListArgs;
use super::parse::{one_of, time_arg, value_text};
use super::request::{Body, Query};
use crate::output::{Column, Section, col};

/// A delivery as a row (also in `events get`).
pub(super) const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("STATUS", "status"),
    col("ATTEMPTS", "attempts"),
    col("LAST CODE", "last_status_code"),
    col("DESTINATION", "destination_id"),
    col("EVENT", "event_id"),
    col("NEXT ATTEMPT", "next_attempt_at"),
    col("CREATED", "created_at"),
];

const ATTEMPT_COLUMNS: &[Column] = &[
    col("#", "number"),
    col("TRIGGER", "trigger"),
    col("OUTCOME", "outcome"),
    col("CODE", "status_code"),
    col("MS", "duration_ms"),
    col("STARTED", "started_at"),
    col("ERROR", "error"),
];

const SECTIONS: &[Section] =
    &[Section { key: "attempt_log", title: "Latest attempts", columns: ATTEMPT_COLUMNS }];

#[derive(Debug, clap::Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    #[command(after_help = "Example:\n  wap-relay deliveries list --status failed --since 24h")]
    List(ListDeliveries),
    /// Show one delivery with its latest attempts.
    #[command(after_help = "Example:\n  wap-relay deliveries get dlv_0192…")]
    Get {
        /// The delivery's id (dlv_…).
        id: DeliveryId,
    },
    /// List a delivery's attempts, newest first.
    #[command(after_help = "Example:\n  wap-relay deliveries attempts dlv_0192… --all")]
    Attempts {
        /// The delivery's id (dlv_…).
        id: DeliveryId,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Queue a delivery again now (also a failed one).
    #[command(after_help = "Example:\n  wap-relay deliveries redeliver dlv_0192…")]
    Redeliver {
        /// The delivery's id (dlv_…).
        id: DeliveryId,
    },
}

#[derive(Debug, clap::Args)]
pub struct ListDeliveries {
    /// Only deliveries in this state.
    #[arg(long, value_parser = one_of(DeliveryStatus::ALL, DeliveryStatus::as_str))]
    status: Option<DeliveryStatus>,
    /// Only deliveries to this destination.
    #[arg(long)]
    destination_id: Option<DestinationId>,
    /// Only deliveries of this event.
    #[arg(long)]
    event_id: Option<EventId>,
    /// Only deliveries created at or after TIME (RFC 3339, or an age such as 2h or 7d).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<String>,
    /// Only deliveries created before TIME (RFC 3339, or an age such as 30m).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<String>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The destination's id (dst_…).
    destination_id: DestinationId,
    /// Replay deliveries created at or after TIME (RFC 3339, or an age such as 6h).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: String,
    /// Replay deliveries created before TIME (default: now).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<String>,
    /// Which deliveries to queue again (the relay's default is failed).
    #[arg(long, value_enum)]
    status: Option<ReplayStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReplayStatus {
    /// Only failed deliveries.
    Failed,
    /// Every delivery, also succeeded and pending ones.
    All,
}

pub(super) async fn run(ctx: &Ctx, command: DeliveriesCommand) -> anyhow::Result<()> {
    match command {
        DeliveriesCommand::List(args) => {
            let query = Query::new()
                .opt("status", args.status)
                .opt("destination_id", args.destination_id)
                .opt("event_id", args.event_id)
                .opt("since", args.since)
                .opt("until", args.until);
            args.list.print(ctx, "/v1/deliveries", query, COLUMNS).await
        }
        DeliveriesCommand::Get { id } => {
            ctx.show(Method::GET, &format!("/v1/deliveries/{id}"), None, SECTIONS).await
        }
        DeliveriesCommand::Attempts { id, list } => {
            list.print(ctx, &format!("/v1/deliveries/{id}/attempts"), Query::new(), ATTEMPT_COLUMNS).await
        }
        DeliveriesCommand::Redeliver { id } => {
            ctx.show(Method::POST, &format!("/v1/deliveries/{id}/redeliver"), None, SECTIONS).await
        }
    }
}

pub(super) async fn replay(ctx: &Ctx, args: ReplayArgs) -> anyhow::Result<()> {
    let body = Body::new()
        .set("since", args.since)
        .opt("until", args.until)
        .opt("status", args.status.as_ref().map(value_text));
    ctx.queue(&format!("/v1/destinations/{}/replay", args.destination_id), Some(body.into_value())).await
}
