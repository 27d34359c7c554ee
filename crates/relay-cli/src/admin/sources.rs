//! `wap-relay sources …`: the tenant's sources (`/v1/sources`, `/v1/sources/{id}`,
//! `/v1/sources/{id}/secret/rotate`). The relay never shows a source's secret again, so a secret
//! the CLI generates (when `--secret` is left out) is printed once, on stderr, next to the answer.

use anyhow::bail;
use relay_core::SourceId;
use relay_core::secret::{MAX_PREVIOUS_VALID_SECONDS, WebhookSecret};
use reqwest::Method;
use serde_json::Value;

use super::Ctx;
use super::list::ListArgs;
use super::parse::value_text;
use super::request::{Body, Query};
use crate::output::{Column, col};

const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("NAME", "name"),
    col("SCHEME", "verification.scheme"),
    col("VERIFIED", "verified"),
    col("SECRET", "secret_hint"),
    col("CREATED", "created_at"),
];

#[derive(Debug, clap::Subcommand)]
pub enum SourcesCommand {
    /// List the tenant's sources, newest first.
    #[command(after_help = "Example:\n  wap-relay sources list --json")]
    List(ListArgs),
    /// Show one source, with its ingest URL.
    #[command(after_help = "Example:\n  wap-relay sources get src_0192…")]
    Get {
        /// The source's id (src_…).
        id: SourceId,
    },
    /// Create a source. Without --secret (and unless --scheme is none) a new secret is generated
    /// and printed once.
    #[command(
        after_help = "Example:\n  wap-relay sources create --name \"WAPing prod\" --secret \"$WAP_SECRET\""
    )]
    Create(CreateArgs),
    /// Change a source; fields left out stay as they are.
    #[command(
        after_help = "Example:\n  wap-relay sources update src_0192… --name \"WAPing staging\" --verify-token t0k3n"
    )]
    Update(UpdateArgs),
    /// Delete a source: its ingest URL stops accepting events.
    #[command(after_help = "Example:\n  wap-relay sources delete src_0192…")]
    Delete {
        /// The source's id (src_…).
        id: SourceId,
    },
    /// Replace a source's secret, keeping the previous one valid for a grace period. Without
    /// --secret a new secret is generated and printed once.
    #[command(after_help = "Example:\n  wap-relay sources rotate-secret src_0192… --grace-seconds 3600")]
    RotateSecret(RotateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// A name for people, 1 to 200 characters.
    #[arg(long)]
    name: String,
    /// The secret WAPing signs with: 8 to 1024 characters, a whsec_ secret for standard_webhooks
    /// (default: a new whsec_ secret).
    #[arg(long)]
    secret: Option<String>,
    #[command(flatten)]
    verification: VerificationArgs,
    /// The token WAPing's GET handshake must present (1 to 256 characters).
    #[arg(long)]
    verify_token: Option<String>,
    /// JSON pointers whose values identify an event for dedupe besides its eventId, e.g.
    /// `/deviceId,/message/id`.
    #[arg(long, value_delimiter = ',', value_name = "POINTERS")]
    dedupe_key: Option<Vec<String>>,
    /// Report the source, and each device seen on it, silent after this many seconds without
    /// events (60 to 2592000; relay.source.silent / relay.device.silent).
    #[arg(long, value_name = "SECONDS", value_parser = silence_seconds())]
    silence_alert_seconds: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The source's id (src_…).
    id: SourceId,
    /// A new name.
    #[arg(long)]
    name: Option<String>,
    /// A new secret, replacing the current one at once (rotate-secret keeps the old one valid).
    #[arg(long)]
    secret: Option<String>,
    #[command(flatten)]
    verification: VerificationArgs,
    /// A new verify token.
    #[arg(long, conflicts_with = "clear_verify_token")]
    verify_token: Option<String>,
    /// Remove the verify token.
    #[arg(long)]
    clear_verify_token: bool,
    /// A new dedupe key (JSON pointers, comma-separated); applies to events received afterwards.
    #[arg(long, value_delimiter = ',', value_name = "POINTERS", conflicts_with = "clear_dedupe_key")]
    dedupe_key: Option<Vec<String>>,
    /// Identify events by their eventId alone again.
    #[arg(long)]
    clear_dedupe_key: bool,
    /// New silence alert seconds (60 to 2592000); applies at once.
    #[arg(long, value_name = "SECONDS", value_parser = silence_seconds(), conflicts_with = "clear_silence_alert")]
    silence_alert_seconds: Option<u32>,
    /// Turn silence alerts off.
    #[arg(long)]
    clear_silence_alert: bool,
}

fn silence_seconds() -> clap::builder::RangedI64ValueParser<u32> {
    use relay_core::operational::{SILENCE_MAX_SECONDS, SILENCE_MIN_SECONDS};
    clap::value_parser!(u32).range(i64::from(SILENCE_MIN_SECONDS)..=i64::from(SILENCE_MAX_SECONDS))
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The source's id (src_…).
    id: SourceId,
    /// The new secret (default: a new whsec_ secret).
    #[arg(long)]
    secret: Option<String>,
    /// How long the previous secret keeps verifying, in seconds (the relay's default is 86400).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_PREVIOUS_VALID_SECONDS)))]
    grace_seconds: Option<u32>,
}

/// How a source's requests are verified (the API's `verification` object).
#[derive(Debug, clap::Args)]
pub struct VerificationArgs {
    /// How WAPing's requests are verified (the relay's default is hmac_sha256).
    #[arg(long, value_enum)]
    scheme: Option<Scheme>,
    /// The header carrying the signature (hmac_sha256 schemes; default X-Wap-Signature).
    #[arg(long, requires = "scheme")]
    signature_header: Option<String>,
    /// The largest accepted age of a signed timestamp, in seconds (timestamped schemes; default 300).
    #[arg(long, requires = "scheme", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    tolerance_seconds: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scheme {
    #[value(name = "hmac_sha256")]
    HmacSha256,
    #[value(name = "hmac_sha256_timestamped")]
    HmacSha256Timestamped,
    #[value(name = "standard_webhooks")]
    StandardWebhooks,
    #[value(name = "none")]
    None,
}

pub(super) async fn run(ctx: &Ctx, command: SourcesCommand) -> anyhow::Result<()> {
    match command {
        SourcesCommand::List(list) => list.print(ctx, "/v1/sources", Query::new(), COLUMNS).await,
        SourcesCommand::Get { id } => ctx.show(Method::GET, &format!("/v1/sources/{id}"), None, &[]).await,
        SourcesCommand::Create(args) => create(ctx, args).await,
        SourcesCommand::Update(args) => update(ctx, args).await,
        SourcesCommand::Delete { id } => {
            ctx.delete(&format!("/v1/sources/{id}"), &format!("Deleted source {id}.")).await
        }
        SourcesCommand::RotateSecret(args) => rotate_secret(ctx, args).await,
    }
}

async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    let verification = args.verification.to_value()?;
    let unverified = args.verification.scheme == Some(Scheme::None);
    let generated = (args.secret.is_none() && !unverified).then(new_secret);
    let body = Body::new()
        .set("name", &args.name)
        .opt("secret", args.secret.as_ref().or(generated.as_ref()))
        .opt("verification", verification)
        .opt("verify_token", args.verify_token)
        .opt("dedupe_key", args.dedupe_key)
        .opt("silence_alert_seconds", args.silence_alert_seconds);
    ctx.show(Method::POST, "/v1/sources", Some(body.into_value()), &[]).await?;
    announce(generated.as_deref());
    Ok(())
}

async fn update(ctx: &Ctx, args: UpdateArgs) -> anyhow::Result<()> {
    let mut body = Body::new()
        .opt("name", args.name)
        .opt("secret", args.secret)
        .opt("verification", args.verification.to_value()?)
        .opt("verify_token", args.verify_token)
        .opt("dedupe_key", args.dedupe_key)
        .opt("silence_alert_seconds", args.silence_alert_seconds);
    if args.clear_verify_token {
        body = body.set("verify_token", Value::Null);
    }
    if args.clear_dedupe_key {
        body = body.set("dedupe_key", Value::Null);
    }
    if args.clear_silence_alert {
        body = body.set("silence_alert_seconds", Value::Null);
    }
    if body.is_empty() {
        bail!(
            "nothing to change: give --name, --secret, --scheme, --verify-token, --dedupe-key, --silence-alert-seconds or a --clear-… flag"
        );
    }
    ctx.show(Method::PATCH, &format!("/v1/sources/{}", args.id), Some(body.into_value()), &[]).await
}

async fn rotate_secret(ctx: &Ctx, args: RotateArgs) -> anyhow::Result<()> {
    let generated = args.secret.is_none().then(new_secret);
    let secret = args.secret.or_else(|| generated.clone());
    let body = Body::new().set("secret", secret).opt("previous_valid_seconds", args.grace_seconds);
    let path = format!("/v1/sources/{}/secret/rotate", args.id);
    ctx.show(Method::POST, &path, Some(body.into_value()), &[]).await?;
    announce(generated.as_deref());
    Ok(())
}

impl VerificationArgs {
    /// The `verification` object, when a scheme is given; refuses options of another scheme.
    fn to_value(&self) -> anyhow::Result<Option<Value>> {
        let Some(scheme) = self.scheme else { return Ok(None) };
        let hmac = matches!(scheme, Scheme::HmacSha256 | Scheme::HmacSha256Timestamped);
        if self.signature_header.is_some() && !hmac {
            bail!("--signature-header applies to the hmac_sha256 and hmac_sha256_timestamped schemes only");
        }
        let timestamped = matches!(scheme, Scheme::HmacSha256Timestamped | Scheme::StandardWebhooks);
        if self.tolerance_seconds.is_some() && !timestamped {
            bail!(
                "--tolerance-seconds applies to the hmac_sha256_timestamped and standard_webhooks schemes only"
            );
        }
        let body = Body::new()
            .set("scheme", value_text(&scheme))
            .opt("header", self.signature_header.as_deref())
            .opt("tolerance_seconds", self.tolerance_seconds);
        Ok(Some(body.into_value()))
    }
}

/// A new random secret, fit for every scheme (`whsec_` + base64 of 32 bytes).
fn new_secret() -> String {
    WebhookSecret::generate().as_secret().expose().to_owned()
}

/// Prints a generated secret: the relay never shows it again.
fn announce(generated: Option<&str>) {
    if let Some(secret) = generated {
        eprintln!("New secret (shown only now; configure WAPing with it): {secret}");
    }
}
