//! `wap-relay events …`: the events the relay stored (`/v1/events`, `/v1/events/{id}`) and
//! redelivering one (`/v1/events/{id}/redeliver`).

use relay_core::{DestinationId, EventId, SourceId};
use reqwest::Method;

use super::Ctx;
use super::deliveries::COLUMNS as DELIVERY_COLUMNS;
use super::list::ListArgs;
use super::parse::time_arg;
use super::request::{Body, Query};
use crate::output::{Column, Section, col};

const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("TYPE", "type"),
    col("SOURCE", "source_id"),
    col("DEVICE", "device_id"),
    col("WAP EVENT ID", "wap_event_id"),
    col("RECEIVED", "received_at"),
];

const SECTIONS: &[Section] = &[Section { key: "deliveries", title: "Deliveries", columns: DELIVERY_COLUMNS }];

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// List stored events, newest first.
    #[command(after_help = "Example:\n  wap-relay events list --type message.received --since 1h")]
    List(ListEvents),
    /// Show one event: its payload and its deliveries.
    #[command(after_help = "Example:\n  wap-relay events get evt_0192…")]
    Get {
        /// The event's id (evt_…).
        id: EventId,
    },
    /// Deliver an event again: to every enabled destination whose filters match, or to those
    /// given.
    #[command(after_help = "Example:\n  wap-relay events redeliver evt_0192… --destination-id dst_0192…")]
    Redeliver {
        /// The event's id (evt_…).
        id: EventId,
        /// Only to these destinations (comma-separated or repeated).
        #[arg(long, value_delimiter = ',', value_name = "ID")]
        destination_id: Vec<DestinationId>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ListEvents {
    /// Only events of this source.
    #[arg(long)]
    source_id: Option<SourceId>,
    /// Only events of this type.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Only events of this device.
    #[arg(long)]
    device_id: Option<String>,
    /// Only events with this WAPing `eventId`.
    #[arg(long)]
    wap_event_id: Option<String>,
    /// Only events received at or after TIME (RFC 3339, or an age such as 2h or 7d).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<String>,
    /// Only events received before TIME (RFC 3339, or an age such as 30m).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<String>,
    #[command(flatten)]
    list: ListArgs,
}

pub(super) async fn run(ctx: &Ctx, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::List(args) => {
            let query = Query::new()
                .opt("source_id", args.source_id)
                .opt("type", args.event_type)
                .opt("device_id", args.device_id)
                .opt("wap_event_id", args.wap_event_id)
                .opt("since", args.since)
                .opt("until", args.until);
            args.list.print(ctx, "/v1/events", query, COLUMNS).await
        }
        EventsCommand::Get { id } => ctx.show(Method::GET, &format!("/v1/events/{id}"), None, SECTIONS).await,
        EventsCommand::Redeliver { id, destination_id } => {
            let ids = (!destination_id.is_empty()).then_some(destination_id);
            let body = Body::new().opt("destination_ids", ids).or_none();
            ctx.queue(&format!("/v1/events/{id}/redeliver"), body).await
        }
    }
}
