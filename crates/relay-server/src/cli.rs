//! The command line: `serve`, `migrate`, `tenant create`, `token issue`, `openapi`, and the
//! commands against a running relay (`relay_cli`).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use relay_core::TenantId;
use relay_core::plan::Plan;
use relay_store::tenants;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::app;
use crate::settings::SettingsArgs;

#[derive(Debug, Parser)]
#[command(name = "wap-relay", version, about = "Hosted, multi-tenant webhook relay for WAPing events")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub client: relay_cli::ClientArgs,
}

// Parsed once per run: the size of the admin commands' arguments does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (ingress, admin API and dispatcher, or the roles given by --roles).
    Serve,
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Issue admin API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Rotate the master key that encrypts stored secrets.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    #[command(flatten)]
    Admin(relay_cli::admin::AdminCommand),
    /// Forward the tenant's live events to a local URL, signed as a destination's are.
    Listen(relay_cli::listen::ListenArgs),
    /// Print a shell completion script, e.g. `wap-relay completions bash > ~/.local/share/bash-completion/completions/wap-relay`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print it as JSON, with a tenant token.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        plan: Plan,
        /// Lifetime of the tenant token printed with it, e.g. `12h`, `30d`.
        #[arg(long, default_value = "30d", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every stored secret under a new master key, in batches, while the fleet runs
    /// (first roll the fleet to RELAY_MASTER_KEY=<new> with RELAY_MASTER_KEY_PREVIOUS=<old>).
    #[command(
        after_help = "Example:\n  RELAY_MASTER_KEY=<new> RELAY_MASTER_KEY_PREVIOUS=<old> wap-relay keys rotate-master --new-key <new>"
    )]
    RotateMaster {
        /// The new key: 32 bytes, base64 (`openssl rand -base64 32`).
        #[arg(long, env = "RELAY_NEW_MASTER_KEY", hide_env_values = true)]
        new_key: relay_core::secret::Secret,
        /// Rows read per batch.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed admin token.
    Issue {
        /// An operator token.
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        operator: bool,
        /// A token of this tenant.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Lifetime, e.g. `3600`, `90m`, `12h`, `30d`.
        #[arg(long, default_value = "30d", value_parser = parse_ttl)]
        ttl: Duration,
        /// Print the token alone (for scripts: `TOKEN=$(wap-relay token issue --tenant ID --raw)`).
        #[arg(long)]
        raw: bool,
    },
}

/// The longest token lifetime: ten years.
const MAX_TTL_SECONDS: u64 = 10 * 365 * 86_400;

/// `3600` (seconds), or a number with `s`, `m`, `h` or `d`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration like 3600, 90m, 12h or 30d"))?;
    let unit_seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("unknown unit in `{text}`: use s, m, h or d")),
    };
    let seconds =
        n.checked_mul(unit_seconds).filter(|s| (1..=MAX_TTL_SECONDS).contains(s)).ok_or_else(|| {
            format!("the lifetime must be between 1 second and {} days", MAX_TTL_SECONDS / 86_400)
        })?;
    Ok(Duration::from_secs(seconds))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Commands against a running relay need none of the server's settings.
    let command = match cli.command {
        Command::Admin(command) => {
            return relay_cli::admin::run(command, &cli.client.target, cli.client.json).await;
        }
        Command::Listen(args) => return relay_cli::listen::run(args, &cli.client.target).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "wap-relay",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
        other => other,
    };
    let settings = cli.settings.resolve()?;
    crate::telemetry::init(&settings.log_format);
    match command {
        Command::Admin(_) | Command::Listen(_) | Command::Completions { .. } => unreachable!("handled above"),
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding {}", settings.listen))?;
            app::serve(settings, listener, app::shutdown_signal()).await
        }
        Command::Migrate => {
            app::prepare(&settings).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Keys { command: KeysCommand::RotateMaster { new_key, batch } } => {
            if settings.master_key.is_none() {
                bail!(
                    "keys rotate-master needs RELAY_MASTER_KEY (the development key kept in the database is not rotated)"
                );
            }
            let new = relay_core::secret::MasterKey::from_base64(new_key.expose()).context("--new-key")?;
            let deps = app::prepare(&settings).await?;
            let done = crate::keys::rotate_master(&deps.pool, &deps.master_key, &new, batch).await?;
            eprintln!(
                "done: {} re-encrypted, {} already under the new key, {} changed meanwhile",
                done.rewritten, done.already_new, done.changed_meanwhile
            );
            Ok(())
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&relay_admin::openapi())?);
            Ok(())
        }
        Command::Tenant { command: TenantCommand::Create { name, plan, ttl } } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                bail!("--name must be 1 to 200 characters");
            }
            let deps = app::prepare(&settings).await?;
            let tenant = tenants::insert_tenant(&deps.pool, name, plan).await?;
            let (token, expires_at) =
                relay_admin::issue_token(&deps.jwt, relay_admin::Role::Tenant, Some(tenant.id), ttl);
            // The tenant exactly as the admin API shows it, plus its first token.
            let mut out = serde_json::to_value(relay_admin::TenantOut::from(&tenant))?;
            out["token"] = json!(token);
            out["token_expires_at"] = json!(expires_at.format(&Rfc3339)?);
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Token { command: TokenCommand::Issue { operator, tenant, ttl, raw } } => {
            let deps = app::prepare(&settings).await?;
            let keys = &deps.jwt;
            let (role, tenant) = match (operator, tenant) {
                (true, None) => (relay_admin::Role::Operator, None),
                (false, Some(id)) => {
                    tenants::find_tenant(&deps.pool, id).await?.with_context(|| format!("no tenant {id}"))?;
                    (relay_admin::Role::Tenant, Some(id))
                }
                _ => bail!("give exactly one of --operator or --tenant ID"),
            };
            let (token, expires_at) = relay_admin::issue_token(keys, role, tenant, ttl);
            if raw {
                println!("{token}");
                return Ok(());
            }
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "token": token, "expires_at": expires_at.format(&Rfc3339)? })
                )?
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_boolean_flag_does_not_swallow_the_command() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["wap-relay", "--allow-private-destinations", "serve"]).unwrap();
        assert!(matches!(cli.command, Command::Serve));
        assert_eq!(cli.settings.allow_private_destinations, Some(true));
        let cli = Cli::try_parse_from(["wap-relay", "serve", "--require-https-destinations=false"]).unwrap();
        assert_eq!(cli.settings.require_https_destinations, Some(false));
    }

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ttl("30d").unwrap(), Duration::from_secs(2_592_000));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("99999999999999d").is_err());
        assert!(parse_ttl("3651d").is_err());
        assert!(parse_ttl("5y").is_err());
        assert!(parse_ttl("abc").is_err());
    }
}
