//! The admin commands: one subcommand per resource of the admin API (`sources`, `destinations`,
//! `events`, `deliveries`, `replay`, `rejections`, `stats`, `tenants`), plus `login`/`logout`.
//! Each is a thin call of [`crate::api::Api`]: arguments are checked while parsing, so bad input
//! never reaches the relay; the answer prints as a table, or with `--json` as the API's JSON.
//!
//! Homes: request building in [`request`], pagination in [`list`], argument parsing in [`parse`],
//! tables in [`crate::output`]. A resource module only names its paths, fields and columns.

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

use crate::api::Api;
use crate::output::{self, Section};
use crate::target::TargetArgs;

mod deliveries;
mod destinations;
mod events;
mod list;
mod login;
mod parse;
mod rejections;
mod request;
mod sources;
mod stats;
mod tenants;

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Sources: the ingest URLs WAPing posts events to, and how their requests are verified.
    #[command(
        subcommand,
        after_help = "Example:\n  wap-relay sources create --name \"WAPing prod\" --secret \"$WAP_SECRET\""
    )]
    Sources(sources::SourcesCommand),
    /// Destinations: the URLs events fan out to, their filters, limits and signing secrets.
    #[command(
        subcommand,
        after_help = "Example:\n  wap-relay destinations create --endpoint https://example.com/hooks --event-types 'message.*'"
    )]
    Destinations(destinations::DestinationsCommand),
    /// Events the relay stored, and redelivering one.
    #[command(
        subcommand,
        after_help = "Example:\n  wap-relay events list --type message.received --since 1h"
    )]
    Events(events::EventsCommand),
    /// Deliveries (one event to one destination), their attempts, and redelivering one.
    #[command(subcommand, after_help = "Example:\n  wap-relay deliveries list --status failed")]
    Deliveries(deliveries::DeliveriesCommand),
    /// Queue a destination's deliveries created in a time range again (POST /v1/destinations/{id}/replay).
    #[command(after_help = "Example:\n  wap-relay replay dst_0192… --since 6h --status failed")]
    Replay(deliveries::ReplayArgs),
    /// Ingest requests the relay refused (bad signature, invalid event, …).
    #[command(subcommand, after_help = "Example:\n  wap-relay rejections list --reason invalid_signature")]
    Rejections(rejections::RejectionsCommand),
    /// The tenant's delivery statistics, per destination (GET /v1/stats).
    #[command(after_help = "Example:\n  wap-relay stats --since 24h")]
    Stats(stats::StatsArgs),
    /// Tenants, and minting a tenant's tokens (needs an operator token).
    #[command(subcommand, after_help = "Example:\n  wap-relay tenants create --name Acme --plan growth")]
    Tenants(tenants::TenantsCommand),
    /// Check a relay URL and token, then save them as the profile later commands use.
    #[command(after_help = "Example:\n  wap-relay login --url https://relay.example.com --token \"$TOKEN\"")]
    Login,
    /// Remove the profile `login` saved.
    #[command(after_help = "Example:\n  wap-relay logout")]
    Logout,
}

/// Runs an admin command against the relay of `target`; `json` prints the API's JSON as is.
pub async fn run(command: AdminCommand, target: &TargetArgs, json: bool) -> anyhow::Result<()> {
    match command {
        AdminCommand::Login => return login::login(target).await,
        AdminCommand::Logout => return login::logout(),
        _ => {}
    }
    let ctx = Ctx { api: Api::new(target.resolve()?)?, json };
    match command {
        AdminCommand::Sources(command) => sources::run(&ctx, command).await,
        AdminCommand::Destinations(command) => destinations::run(&ctx, command).await,
        AdminCommand::Events(command) => events::run(&ctx, command).await,
        AdminCommand::Deliveries(command) => deliveries::run(&ctx, command).await,
        AdminCommand::Replay(args) => deliveries::replay(&ctx, args).await,
        AdminCommand::Rejections(command) => rejections::run(&ctx, command).await,
        AdminCommand::Stats(args) => stats::run(&ctx, args).await,
        AdminCommand::Tenants(command) => tenants::run(&ctx, command).await,
        AdminCommand::Login | AdminCommand::Logout => unreachable!("handled above"),
    }
}

/// What every command works with: the API client and the output mode.
pub(crate) struct Ctx {
    api: Api,
    pub(crate) json: bool,
}

impl Ctx {
    /// Sends a request; an error names it (`GET /v1/sources/src_…: not_found (404): …`).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let what = format!("{method} {path}");
        self.api.call(method, path, body.as_ref()).await.context(what)
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// Sends a request answered by one object and prints it (its `sections` as tables).
    pub(crate) async fn show(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        sections: &[Section],
    ) -> anyhow::Result<()> {
        let value = self.call(method, path, body).await?;
        self.print(&value, || output::detail(&value, sections))
    }

    /// Sends a request answered by `{"queued": N}` and says how many deliveries were queued.
    pub(crate) async fn queue(&self, path: &str, body: Option<Value>) -> anyhow::Result<()> {
        let value = self.call(Method::POST, path, body).await?;
        self.print(&value, || match value["queued"].as_u64() {
            Some(1) => "Queued 1 delivery.".to_owned(),
            Some(n) => format!("Queued {n} deliveries."),
            None => output::detail(&value, &[]),
        })
    }

    /// Sends a DELETE (answered without a body) and says what it did; `--json` prints nothing,
    /// as the API answered nothing.
    pub(crate) async fn delete(&self, path: &str, done: &str) -> anyhow::Result<()> {
        self.call(Method::DELETE, path, None).await?;
        if !self.json {
            println!("{done}");
        }
        Ok(())
    }

    /// Prints `value` as pretty JSON with `--json`, else the table `table` renders.
    pub(crate) fn print(&self, value: &Value, table: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{}", table());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The commands as the binary mounts them: flattened, next to the global client options.
    #[derive(Debug, Parser)]
    #[command(name = "wap-relay")]
    struct Cli {
        #[command(subcommand)]
        command: AdminCommand,
        #[command(flatten)]
        client: crate::ClientArgs,
    }

    #[test]
    fn the_commands_are_well_formed_and_each_has_an_example() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        let mut stack: Vec<(String, &clap::Command)> =
            cli.get_subcommands().map(|c| (c.get_name().into(), c)).collect();
        while let Some((name, command)) = stack.pop() {
            let help = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            if !help.contains("Example:\n  wap-relay ") {
                missing.push(name.clone());
            }
            stack.extend(command.get_subcommands().map(|c| (format!("{name} {}", c.get_name()), c)));
        }
        assert!(missing.is_empty(), "commands without an example: {missing:?}");
    }

    #[test]
    fn bad_arguments_are_refused_while_parsing() {
        let refused = |args: &[&str]| {
            let mut argv = vec!["wap-relay"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).expect_err("refused").to_string()
        };
        let header =
            refused(&["destinations", "create", "--endpoint", "https://x.example", "--header", "X-Key"]);
        assert!(header.contains("NAME=VALUE"), "{header}");
        assert!(refused(&["sources", "get", "dst_0192"]).contains("not a valid source id"));
        assert!(refused(&["deliveries", "list", "--status", "lost"]).contains("possible values"));
        assert!(refused(&["events", "list", "--since", "yesterday"]).contains("is not a time"));
        assert!(refused(&["tenants", "create", "--name", "A", "--plan", "gold"]).contains("possible values"));
    }

    #[test]
    fn the_relay_url_and_a_destination_url_are_different_options() {
        let cli = Cli::try_parse_from([
            "wap-relay",
            "--url",
            "http://relay.example:8080",
            "destinations",
            "create",
            "--endpoint",
            "https://hooks.example/in",
        ])
        .unwrap();
        assert_eq!(cli.client.target.url.as_deref(), Some("http://relay.example:8080"));
        let AdminCommand::Destinations(destinations::DestinationsCommand::Create(args)) = cli.command else {
            panic!("parsed as destinations create");
        };
        assert_eq!(args.endpoint, "https://hooks.example/in");
    }
}
