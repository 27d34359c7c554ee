//! `wap-relay listen --forward-to URL`: the tenant's live event stream (`GET /v1/stream`),
//! forwarded to a local URL with the headers a destination gets (CONTRACT §4, built by
//! `relay_dispatcher::request`), signed with a `whsec_` secret kept in the config directory so it
//! stays the same across runs. One line per event: time, type, eventId, local status, ms.
//!
//! Invariants: a dropped stream is resumed with `Last-Event-ID` (the last event seen), so a
//! reconnection neither skips nor repeats an event; a local server that is down is reported on
//! the event's line and the stream goes on; only the relay refusing the token (or the filters)
//! ends the command with an error.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use anyhow::Context;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use relay_core::EventId;
use relay_core::secret::WebhookSecret;
use relay_dispatcher::request::{Outbound, headers};
use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::{Api, ApiError, error_chain};
use crate::target::{TargetArgs, config_dir, write_private};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A local server gets this long to answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Example:\n  wap-relay listen --forward-to http://localhost:3000/hook --events 'message.*'"
)]
pub struct ListenArgs {
    /// The local URL each event is POSTed to.
    #[arg(long, value_name = "URL")]
    pub forward_to: String,
    /// Only this source's events.
    #[arg(long = "source", value_name = "ID")]
    pub source: Option<String>,
    /// Only these event types (comma-separated patterns, e.g. `message.*,session.status`).
    #[arg(long, value_name = "T,…")]
    pub events: Option<String>,
    /// Start with every stored event (within retention), not only new ones.
    #[arg(long, conflicts_with = "since")]
    pub from_start: bool,
    /// Start with the events received since this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

/// One stream message: the event as the admin API shows it.
#[derive(Debug, Deserialize)]
struct StreamedEvent {
    id: EventId,
    wap_event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    payload: Box<RawValue>,
    /// The exact body, when the payload alone cannot carry it (see `GET /v1/stream`).
    body_base64: Option<String>,
}

impl StreamedEvent {
    /// The body exactly as WAPing sent it.
    fn body(&self) -> Vec<u8> {
        use base64::Engine as _;
        self.body_base64
            .as_deref()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_else(|| self.payload.get().as_bytes().to_vec())
    }
}

/// The signing secret `listen` keeps across runs (created on first use).
fn secret() -> anyhow::Result<(WebhookSecret, PathBuf)> {
    let path = config_dir()?.join("listen-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = WebhookSecret::parse(text.trim()).map_err(|e| {
                anyhow::anyhow!("{}: not a whsec_ secret ({e}); delete it to get a new one", path.display())
            })?;
            Ok((secret, path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = WebhookSecret::generate();
            write_private(&path, &format!("{}\n", secret.as_secret().expose()))?;
            Ok((secret, path))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The stream's query string.
fn query(args: &ListenArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut q = Vec::new();
    if let Some(s) = &args.source {
        q.push(("source_id", s.clone()));
    }
    if let Some(e) = &args.events {
        q.push(("event_types", e.clone()));
    }
    if args.from_start {
        q.push(("since", "1970-01-01T00:00:00Z".to_owned()));
    } else if let Some(t) = &args.since {
        OffsetDateTime::parse(t, &Rfc3339).with_context(|| format!("--since `{t}`: not an RFC 3339 time"))?;
        q.push(("since", t.clone()));
    }
    Ok(q)
}

pub async fn run(args: ListenArgs, target: &TargetArgs) -> anyhow::Result<()> {
    let forward_to = url::Url::parse(&args.forward_to)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .with_context(|| format!("--forward-to `{}`: not an http(s) URL", args.forward_to))?;
    let query = query(&args)?;
    let api = Api::new(target.resolve()?)?;
    let (secret, path) = secret()?;
    println!("Forwarding the events of {} to {forward_to}", api.target().url);
    println!("Signing secret: {}  (kept in {})", secret.as_secret().expose(), path.display());
    let local = reqwest::Client::builder().timeout(FORWARD_TIMEOUT).build()?;
    let forwarder = Forwarder { client: local, url: forward_to, secret };
    let mut last: Option<EventId> = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let session = follow(&api, &query, &forwarder, &mut last);
        tokio::select! {
            ended = session => match ended {
                Ok(got_any) => {
                    if got_any {
                        backoff = FIRST_BACKOFF;
                    }
                    eprintln!("stream ended; reconnecting in {:.1} s", backoff.as_secs_f64());
                }
                Err(Ended::Fatal(e)) => return Err(e),
                Err(Ended::Retry(why)) => eprintln!("{why}; reconnecting in {:.1} s", backoff.as_secs_f64()),
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopped");
                return Ok(());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopped");
                return Ok(());
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Ended {
    Fatal(anyhow::Error),
    Retry(String),
}

/// Follows the stream from after `last` until it ends; returns whether any event came.
async fn follow(
    api: &Api,
    query: &[(&'static str, String)],
    forwarder: &Forwarder,
    last: &mut Option<EventId>,
) -> Result<bool, Ended> {
    let mut path = String::from("/v1/stream");
    if !query.is_empty() {
        path.push('?');
        path.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish());
    }
    let mut request = api.request(reqwest::Method::GET, &path).header("accept", "text/event-stream");
    if let Some(id) = last {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request
        .send()
        .await
        .map_err(|e| Ended::Retry(format!("could not reach the relay: {}", error_chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let error = ApiError::from_problem(status, &body);
        // The relay busy or restarting: try again. Anything else will not get better.
        return Err(if status.is_server_error() || status.as_u16() == 429 {
            Ended::Retry(error.to_string())
        } else {
            Ended::Fatal(error.into())
        });
    }
    if last.is_none() {
        eprintln!("Ready: listening for events (Ctrl-C to stop)");
    }
    let mut events = response.bytes_stream().eventsource();
    let mut got_any = false;
    while let Some(message) = events.next().await {
        let message = message.map_err(|e| Ended::Retry(format!("the stream broke: {e}")))?;
        if message.data.is_empty() {
            continue;
        }
        let event: StreamedEvent = serde_json::from_str(&message.data).map_err(|e| {
            Ended::Fatal(anyhow::anyhow!("the relay sent an event this CLI cannot read: {e}"))
        })?;
        forwarder.forward(&event).await;
        *last = Some(event.id);
        got_any = true;
    }
    Ok(got_any)
}

struct Forwarder {
    client: reqwest::Client,
    url: url::Url,
    secret: WebhookSecret,
}

impl Forwarder {
    /// POSTs the event to the local URL and prints its line (never fails: a local server that
    /// is down is reported on the line).
    async fn forward(&self, event: &StreamedEvent) {
        let body = event.body();
        let outbound = Outbound {
            event_id: event.id,
            wap_event_id: &event.wap_event_id,
            event_type: &event.event_type,
            attempt: 1,
            timestamp: OffsetDateTime::now_utc().unix_timestamp(),
            body: &body,
            secrets: std::slice::from_ref(&self.secret),
        };
        let headers = headers(&http::HeaderMap::new(), &outbound);
        let started = Instant::now();
        let sent = self.client.post(self.url.clone()).headers(headers).body(body).send().await;
        let ms = started.elapsed().as_millis();
        let (status, style) = match &sent {
            Ok(r) if r.status().is_success() => (r.status().as_u16().to_string(), green()),
            Ok(r) => (r.status().as_u16().to_string(), red()),
            Err(e) => (format!("error: {}", error_chain(e)), red()),
        };
        let time = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        let line = format!(
            "{time}  {:<24} {:<28} {style}{status}{style:#}  {ms} ms",
            event.event_type, event.wap_event_id
        );
        let mut out = anstream::stdout();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn green() -> Style {
    Style::new().fg_color(Some(AnsiColor::Green.into())).bold()
}

fn red() -> Style {
    Style::new().fg_color(Some(AnsiColor::Red.into())).bold()
}
