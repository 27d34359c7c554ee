//! relay-cli: the commands a developer runs against a running relay, over HTTP only (never the
//! database): the admin commands (`sources`, `destinations`, `events`, `deliveries`, `replay`,
//! `rejections`, `stats`, `tenants`), `login` (a saved profile), and `listen` (the tenant's live
//! event stream, forwarded to a local URL with the relay's own signed headers).
//!
//! Invariant: every command resolves its relay and token the same way ([`target`]): `--url` /
//! `--token`, else `WAP_RELAY_URL` / `WAP_RELAY_TOKEN`, else the saved profile.

pub mod admin;
pub mod api;
pub mod listen;
mod output;
pub mod target;

/// The options every client command shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub target: target::TargetArgs,
    /// Print the API's JSON instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}
