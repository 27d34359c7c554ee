//! `wap-relay destinations …`: the URLs events fan out to (`/v1/destinations`, `/{id}`,
//! `/{id}/secret`, `/{id}/secret/rotate`). A destination's URL is `--endpoint`: `--url` is the
//! relay's own URL, an option every command shares.

use std::collections::BTreeMap;

use anyhow::bail;
use relay_core::destination::{MAX_IN_FLIGHT_LIMIT, MAX_TIMEOUT_MS};
use relay_core::secret::MAX_PREVIOUS_VALID_SECONDS;
use relay_core::{DestinationId, SourceId};
use reqwest::Method;
use serde_json::{Value, json};

use super::Ctx;
use super::list::ListArgs;
use super::parse::{header_arg, value_text};
use super::request::{Body, Query};
use crate::output::{Column, col};

const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("URL", "url"),
    col("ENABLED", "enabled"),
    col("PAUSED", "paused"),
    col("EVENT TYPES", "event_types"),
    col("FAILING SINCE", "failing_since"),
    col("CREATED", "created_at"),
];

#[derive(Debug, clap::Subcommand)]
pub enum DestinationsCommand {
    /// List the tenant's destinations, newest first.
    #[command(after_help = "Example:\n  wap-relay destinations list --limit 10")]
    List(ListArgs),
    /// Show one destination.
    #[command(after_help = "Example:\n  wap-relay destinations get dst_0192…")]
    Get {
        /// The destination's id (dst_…).
        id: DestinationId,
    },
    /// Create a destination; the answer shows its signing secret.
    #[command(
        after_help = "Example:\n  wap-relay destinations create --endpoint https://example.com/hooks \\\n    \
                            --event-types 'message.*,call.ended' --header X-Api-Key=abc123 --timeout-ms 5000"
    )]
    Create(CreateArgs),
    /// Change a destination; fields left out stay as they are.
    #[command(
        after_help = "Example:\n  wap-relay destinations update dst_0192… --max-in-flight 4 --clear source-ids"
    )]
    Update(UpdateArgs),
    /// Delete a destination: nothing more is delivered to it.
    #[command(after_help = "Example:\n  wap-relay destinations delete dst_0192…")]
    Delete {
        /// The destination's id (dst_…).
        id: DestinationId,
    },
    /// Enable a destination (also one the relay disabled).
    #[command(after_help = "Example:\n  wap-relay destinations enable dst_0192…")]
    Enable {
        /// The destination's id (dst_…).
        id: DestinationId,
    },
    /// Disable a destination: events are no longer delivered to it.
    #[command(after_help = "Example:\n  wap-relay destinations disable dst_0192…")]
    Disable {
        /// The destination's id (dst_…).
        id: DestinationId,
    },
    /// Pause a destination: its deliveries collect, none is attempted, until it is resumed.
    #[command(after_help = "Example:\n  wap-relay destinations pause dst_0192…")]
    Pause {
        /// The destination's id (dst_…).
        id: DestinationId,
    },
    /// Resume a paused destination: its deliveries flow in the order they were accepted.
    #[command(after_help = "Example:\n  wap-relay destinations resume dst_0192…")]
    Resume {
        /// The destination's id (dst_…).
        id: DestinationId,
    },
    /// Show a destination's signing secrets (the previous one too, during a rotation).
    #[command(after_help = "Example:\n  wap-relay destinations secret dst_0192…")]
    Secret {
        /// The destination's id (dst_…).
        id: DestinationId,
    },
    /// Replace a destination's signing secret; deliveries carry both signatures for a grace period.
    #[command(after_help = "Example:\n  wap-relay destinations rotate-secret dst_0192… --grace-seconds 3600")]
    RotateSecret {
        /// The destination's id (dst_…).
        id: DestinationId,
        /// How long the previous secret keeps signing, in seconds (the relay's default is 86400).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_PREVIOUS_VALID_SECONDS)))]
        grace_seconds: Option<u32>,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Where events are delivered: https:// (or http:// unless the relay requires https).
    #[arg(long, value_name = "URL")]
    pub(super) endpoint: String,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    fields: Fields,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The destination's id (dst_…).
    id: DestinationId,
    /// A new URL to deliver to.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    #[command(flatten)]
    fields: Fields,
    /// Remove a setting (comma-separated or repeated): filters then match everything, headers
    /// are all removed, the rate limit is lifted.
    #[arg(long, value_enum, value_delimiter = ',')]
    clear: Vec<Clear>,
}

/// The settings create and update share.
#[derive(Debug, clap::Args)]
struct Fields {
    /// A note for people.
    #[arg(long)]
    description: Option<String>,
    /// Event types to deliver, comma-separated: exact types, `prefix.*` or `*` (default `*`).
    #[arg(long, value_delimiter = ',', value_name = "TYPES")]
    event_types: Option<Vec<String>>,
    /// Only events from these sources, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    source_ids: Option<Vec<SourceId>>,
    /// Only events from these devices, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    device_ids: Option<Vec<String>>,
    /// An extra request header, NAME=VALUE; repeat for more. On update, the headers given replace
    /// all the current ones.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = header_arg)]
    headers: Vec<(String, String)>,
    /// Timeout of one attempt, in milliseconds (default 10000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TIMEOUT_MS)))]
    timeout_ms: Option<u32>,
    /// Attempts in flight at once (default 16).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_IN_FLIGHT_LIMIT)))]
    max_in_flight: Option<u32>,
    /// Deliveries per second at most (default: no limit of its own).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_per_second: Option<u32>,
    /// Wait before the second attempt, in milliseconds; doubles per attempt (default 5000).
    #[arg(long)]
    retry_initial_delay_ms: Option<u64>,
    /// Longest wait between attempts, in milliseconds (default 3600000).
    #[arg(long)]
    retry_max_delay_ms: Option<u64>,
    /// How long a delivery is retried, in seconds (default 86400, at most the plan's window).
    #[arg(long)]
    retry_window_seconds: Option<u32>,
    /// When it answers again after a failing streak, replay the streak's failed deliveries.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    replay_on_recovery: Option<bool>,
    /// What it receives: `waping` (the event as received) or `meta_cloud_api` (Meta's
    /// WhatsApp Cloud API webhooks, signed with X-Hub-Signature-256 too).
    #[arg(long, value_parser = ["waping", "meta_cloud_api"])]
    format: Option<String>,
    /// `none` (any order) or `per_device`: one delivery at a time per deviceId, in the order
    /// the relay accepted the events; a retried one holds back that device's later ones.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
        relay_core::vocab::DeliveryOrdering::ALL.iter().map(|o| o.as_str())))]
    ordering: Option<String>,
    /// For meta_cloud_api: the Meta envelope's `phone_number_id`.
    #[arg(long)]
    meta_phone_number_id: Option<String>,
    /// For meta_cloud_api: `metadata.display_phone_number` (digits only).
    #[arg(long)]
    meta_display_phone_number: Option<String>,
    /// For meta_cloud_api: `entry[0].id` (the WhatsApp Business Account id).
    #[arg(long)]
    meta_waba_id: Option<String>,
}

/// A setting `update --clear` removes, with the API field and the value that removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Clear {
    Description,
    SourceIds,
    DeviceIds,
    Headers,
    RateLimitPerSecond,
}

pub(super) async fn run(ctx: &Ctx, command: DestinationsCommand) -> anyhow::Result<()> {
    use DestinationsCommand as C;
    match command {
        C::List(list) => list.print(ctx, "/v1/destinations", Query::new(), COLUMNS).await,
        C::Get { id } => ctx.show(Method::GET, &format!("/v1/destinations/{id}"), None, &[]).await,
        C::Create(args) => {
            let body = args.fields.body(Body::new().set("url", &args.endpoint))?;
            let body = if args.disabled { body.set("enabled", false) } else { body };
            ctx.show(Method::POST, "/v1/destinations", Some(body.into_value()), &[]).await
        }
        C::Update(args) => update(ctx, args).await,
        C::Delete { id } => {
            ctx.delete(&format!("/v1/destinations/{id}"), &format!("Deleted destination {id}.")).await
        }
        C::Enable { id } => set_flag(ctx, id, "enabled", true).await,
        C::Disable { id } => set_flag(ctx, id, "enabled", false).await,
        C::Pause { id } => set_flag(ctx, id, "paused", true).await,
        C::Resume { id } => set_flag(ctx, id, "paused", false).await,
        C::Secret { id } => ctx.show(Method::GET, &format!("/v1/destinations/{id}/secret"), None, &[]).await,
        C::RotateSecret { id, grace_seconds } => {
            let body = Body::new().opt("previous_valid_seconds", grace_seconds).or_none();
            ctx.show(Method::POST, &format!("/v1/destinations/{id}/secret/rotate"), body, &[]).await
        }
    }
}

async fn update(ctx: &Ctx, args: UpdateArgs) -> anyhow::Result<()> {
    let mut body = args.fields.body(Body::new().opt("url", args.endpoint))?;
    for clear in args.clear {
        let (field, value) = clear.field();
        if body.has(field) {
            bail!("--clear {} and a new value for it: give one of them", value_text(&clear));
        }
        body = body.set(field, value);
    }
    if body.is_empty() {
        bail!("nothing to change: give a setting to change (see --help) or --clear");
    }
    ctx.show(Method::PATCH, &format!("/v1/destinations/{}", args.id), Some(body.into_value()), &[]).await
}

/// PATCHes one boolean setting (`enabled`, `paused`).
async fn set_flag(ctx: &Ctx, id: DestinationId, field: &str, on: bool) -> anyhow::Result<()> {
    let body = json!({ field: on });
    ctx.show(Method::PATCH, &format!("/v1/destinations/{id}"), Some(body), &[]).await
}

impl Fields {
    /// `body` with the settings given.
    fn body(self, body: Body) -> anyhow::Result<Body> {
        let retry = Body::new()
            .opt("initial_delay_ms", self.retry_initial_delay_ms)
            .opt("max_delay_ms", self.retry_max_delay_ms)
            .opt("window_seconds", self.retry_window_seconds)
            .or_none();
        let meta = Body::new()
            .opt("waba_id", self.meta_waba_id)
            .opt("phone_number_id", self.meta_phone_number_id)
            .opt("display_phone_number", self.meta_display_phone_number)
            .or_none();
        Ok(body
            .opt("description", self.description)
            .opt("event_types", self.event_types)
            .opt("source_ids", self.source_ids)
            .opt("device_ids", self.device_ids)
            .opt("headers", header_map(self.headers)?)
            .opt("timeout_ms", self.timeout_ms)
            .opt("max_in_flight", self.max_in_flight)
            .opt("rate_limit_per_second", self.rate_limit_per_second)
            .opt("replay_on_recovery", self.replay_on_recovery)
            .opt("format", self.format)
            .opt("ordering", self.ordering)
            .opt("meta", meta)
            .opt("retry_policy", retry))
    }
}

/// The `headers` object, refusing a name given twice (header names ignore case).
fn header_map(headers: Vec<(String, String)>) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    if headers.is_empty() {
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    for (name, value) in headers {
        if map.keys().any(|k: &String| k.eq_ignore_ascii_case(&name)) {
            bail!("--header {name} is given twice");
        }
        map.insert(name, value);
    }
    Ok(Some(map))
}

impl Clear {
    fn field(self) -> (&'static str, Value) {
        match self {
            Clear::Description => ("description", Value::Null),
            Clear::SourceIds => ("source_ids", Value::Null),
            Clear::DeviceIds => ("device_ids", Value::Null),
            // Headers are not nullable: an empty set replaces them all.
            Clear::Headers => ("headers", json!({})),
            Clear::RateLimitPerSecond => ("rate_limit_per_second", Value::Null),
        }
    }
}
