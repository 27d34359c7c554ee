//! `GET /v1/stream` (CONTRACT §8): the tenant's events as the relay accepts them, as
//! Server-Sent Events (axum's SSE framing and keep-alive comments). Each message is one event as
//! `GET /v1/events/{id}` shows it (without deliveries), with the relay's event id as the SSE
//! `id`, so a client reconnecting with `Last-Event-ID` resumes after that event, replaying what
//! it missed from the store (within retention).
//!
//! The store is the truth: a stream reads the events after its cursor a page at a time (the
//! store applies the filters, and the cursor moves past what they skipped, so a stream filtered
//! to a quiet source reads each event once, like any other stream), and waits between pages for a notification (`relay_store::stream`) or its poll. A stream reads
//! the next page only when the client has taken the previous one, so a slow reader holds one
//! page in memory and nobody else waits for it. Any process of a fleet serves any stream.
//!
//! A message whose body holds a CR or LF (JSON whitespace, which SSE lines cannot carry
//! exactly) also carries `body_base64`, the body's exact bytes.
//!
//! Invariants: events go out in id order, each once per connection; an event committed late
//! (its id below the cursor, from a slower batch or another process) is still sent if it is
//! committed within [`LATE_WINDOW`] of the cursor, found by the poll's look back; a stream ends
//! when its token expires.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::Stream;
use relay_core::{EventId, SourceId, TenantId};
use relay_http::{ApiError, Problem};
use relay_store::events::EventRow;
use relay_store::listen::Heard;
use relay_store::stream as store;
use relay_store::{PgPool, Redis};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::TenantAuth;
use crate::docs::{BadRequest, ValidationFailed};
use crate::events::{EventOut, filter_id};
use crate::extract::ApiQuery;

/// Concurrent streams per tenant, per process.
pub const MAX_STREAMS_PER_TENANT: usize = 10;
/// Events read per page.
const PAGE: usize = 100;
/// Events looked at per read, at most (their ids, sources and types only): what one read of a
/// stream costs, whatever its filters.
const SCAN: usize = 1_000;
/// A stream looks for new events at least this often without a notification.
const POLL: Duration = Duration::from_secs(1);
/// And this often while ingest may not know of it yet (it reads the streamed tenants once a
/// second), so the first events after connecting are not a second late.
const EARLY_POLL: Duration = Duration::from_millis(100);
const EARLY: Duration = Duration::from_millis(2_500);
/// How far below its cursor a stream's poll looks for events committed late.
const LATE_WINDOW: Duration = Duration::from_secs(5);
/// Keep-alive comments on an idle stream (proxies close silent connections).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Announcements of this process's streamed tenants last this long (renewed every second).
const ANNOUNCE_TTL: Duration = Duration::from_secs(3);

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

/// Filters of the stream.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Only this source's events.
    pub source_id: Option<String>,
    /// Comma-separated type patterns, as a destination's `event_types` (`message.*`, `*`).
    pub event_types: Option<String>,
    /// Start with the events received at or after this time (RFC 3339) instead of new ones
    /// only; ignored when `Last-Event-ID` is given.
    #[serde(default, with = "crate::extract::utc_time::option")]
    pub since: Option<OffsetDateTime>,
}

/// The tenant's events as the relay accepts them (Server-Sent Events).
#[utoipa::path(get, path = "/v1/stream", tag = "logs", params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (sent as each message's `id`)")),
    responses((status = 200, description = "`text/event-stream`: one message per event (`id`: the event id; `data`: the event as `GET /v1/events/{id}` shows it, without deliveries, plus `body_base64`, the exact body, when it holds a CR or LF), and keep-alive comments", content_type = "text/event-stream", body = String),
        (status = 400, response = BadRequest), (status = 422, response = ValidationFailed),
        (status = 429, description = "Too many concurrent streams for this tenant", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn stream_events(
    auth: TenantAuth,
    State(state): State<AdminState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let source = filter_id::<SourceId>("source_id", q.source_id.as_deref())?;
    let patterns = patterns(q.event_types.as_deref())?;
    let cursor = match headers.get("last-event-id") {
        Some(v) => {
            let id = v.to_str().ok().and_then(|s| s.trim().parse::<EventId>().ok()).ok_or_else(|| {
                ApiError::bad_request("invalid_last_event_id", "Last-Event-ID: not an event id")
            })?;
            id.uuid()
        }
        None => store::cursor_at(unix_ms(q.since.unwrap_or_else(OffsetDateTime::now_utc))),
    };
    let subscription = state.streams.subscribe(auth.tenant_id)?;
    let reader = Reader {
        pool: state.pool.clone(),
        tenant: auth.tenant_id,
        filter: store::StreamFilter { source, types: patterns },
        cursor,
        floor: cursor,
        sent: VecDeque::new(),
        sent_ids: HashSet::new(),
        pending: VecDeque::new(),
        last_poll: tokio::time::Instant::now(),
        connected: tokio::time::Instant::now(),
        ends_at: expiry(auth.claims.exp),
        subscription,
    };
    let events = futures::stream::unfold(reader, |mut r| async move { r.next().await.map(|e| (Ok(e), r)) });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn unix_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn expiry(exp: i64) -> tokio::time::Instant {
    let left = exp.saturating_sub(OffsetDateTime::now_utc().unix_timestamp()).max(0);
    tokio::time::Instant::now() + Duration::from_secs(left as u64)
}

/// The `event_types` filter: comma-separated patterns, each valid as a destination's.
fn patterns(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            relay_core::filter::validate_pattern(p)
                .map(|()| p.to_owned())
                .map_err(|e| ApiError::validation(format!("event_types: {}", e.0)))
        })
        .collect()
}

/// One connection's reading state.
struct Reader {
    pool: PgPool,
    tenant: TenantId,
    filter: store::StreamFilter,
    /// The highest event id sent or skipped by the filter (or the starting point).
    cursor: uuid::Uuid,
    /// The starting point: a look back never goes below it.
    floor: uuid::Uuid,
    /// Ids sent within the late window, oldest first (a look back never sends one twice).
    sent: VecDeque<uuid::Uuid>,
    sent_ids: HashSet<uuid::Uuid>,
    pending: VecDeque<EventRow>,
    last_poll: tokio::time::Instant,
    connected: tokio::time::Instant,
    ends_at: tokio::time::Instant,
    subscription: Subscription,
}

impl Reader {
    /// The next message, waiting for it; `None` ends the stream (token expired, or the process
    /// stops).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if *self.subscription.closing.borrow() {
                return None;
            }
            if let Some(row) = self.pending.pop_front() {
                if let Some(event) = self.send(row) {
                    return Some(event);
                }
                continue;
            }
            let wake = self.subscription.wake.clone();
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let look_back = self.last_poll.elapsed() >= POLL;
            match self.read(look_back).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "reading the event stream failed; retrying"),
            }
            let mut closing = self.subscription.closing.clone();
            let poll = if self.connected.elapsed() < EARLY { EARLY_POLL } else { POLL };
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(poll) => {}
                () = tokio::time::sleep_until(self.ends_at) => return None,
                _ = closing.wait_for(|c| *c) => return None,
            }
        }
    }

    /// Reads the next page (from below the cursor when `look_back`); whether to read again at
    /// once (it found events, or stopped at its bound). The cursor moves past every event the
    /// read looked at, wanted or skipped by the filter, so the next read starts after them.
    async fn read(&mut self, look_back: bool) -> Result<bool, relay_store::StoreError> {
        let from = if look_back {
            self.last_poll = tokio::time::Instant::now();
            let ms = store::cursor_ms(self.cursor).saturating_sub(LATE_WINDOW.as_millis() as u64);
            store::cursor_at(ms).clamp(self.floor, self.cursor)
        } else {
            self.cursor
        };
        let page = store::events_after(&self.pool, self.tenant, from, &self.filter, PAGE, SCAN).await?;
        self.cursor = self.cursor.max(page.reached);
        let fresh: Vec<EventRow> = page.rows.into_iter().filter(|r| !self.sent_ids.contains(&r.id)).collect();
        let found = !fresh.is_empty();
        self.pending.extend(fresh);
        Ok(found || page.more)
    }

    /// The message for `row` (the store applied the filters); the cursor moves past it.
    fn send(&mut self, row: EventRow) -> Option<Event> {
        self.remember(row.id);
        let id = EventId::from_uuid(row.id).to_string();
        // SSE lines cannot carry a CR or LF exactly (the payload may hold them as whitespace):
        // then the exact body travels as well, in base64.
        let raw = row.body.iter().any(|&b| b == b'\r' || b == b'\n').then(|| BASE64.encode(&row.body));
        let mut data = serde_json::to_string(&EventOut::from(row)).ok()?;
        if let Some(raw) = raw {
            data.pop();
            data.push_str(&format!(",\"body_base64\":\"{raw}\"}}"));
        }
        Some(Event::default().id(id).data(data))
    }

    fn remember(&mut self, id: uuid::Uuid) {
        self.cursor = self.cursor.max(id);
        self.sent.push_back(id);
        self.sent_ids.insert(id);
        let oldest = store::cursor_ms(self.cursor).saturating_sub(2 * LATE_WINDOW.as_millis() as u64);
        while self.sent.front().is_some_and(|&f| store::cursor_ms(f) < oldest) {
            let f = self.sent.pop_front().expect("checked");
            self.sent_ids.remove(&f);
        }
    }
}

/// The streams of this process: per tenant, how many and the signal that wakes them; one
/// LISTEN connection and one announcer for all, started with the first stream.
pub struct StreamHub {
    pool: PgPool,
    redis: Redis,
    tenants: Mutex<HashMap<TenantId, Tenant>>,
    started: std::sync::Once,
    /// Set when the process stops: every stream ends (so the server's drain is not held up).
    closing: watch::Sender<bool>,
}

struct Tenant {
    streams: usize,
    wake: Arc<Notify>,
}

/// One open stream; counted until dropped (the client went away, or the stream ended).
struct Subscription {
    hub: Arc<StreamHub>,
    tenant: TenantId,
    wake: Arc<Notify>,
    closing: watch::Receiver<bool>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut tenants = self.hub.lock();
        if let Some(t) = tenants.get_mut(&self.tenant) {
            t.streams -= 1;
            if t.streams == 0 {
                tenants.remove(&self.tenant);
            }
        }
    }
}

impl StreamHub {
    pub fn new(pool: PgPool, redis: Redis) -> Arc<Self> {
        let (closing, _) = watch::channel(false);
        Arc::new(Self { pool, redis, tenants: Mutex::default(), started: std::sync::Once::new(), closing })
    }

    /// Ends every stream (at shutdown); new ones end at once.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Tenant>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subscribe(self: &Arc<Self>, tenant: TenantId) -> Result<Subscription, ApiError> {
        self.started.call_once(|| self.start());
        let mut tenants = self.lock();
        let t = tenants.entry(tenant).or_insert_with(|| Tenant { streams: 0, wake: Arc::new(Notify::new()) });
        if t.streams >= MAX_STREAMS_PER_TENANT {
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {MAX_STREAMS_PER_TENANT} concurrent streams per tenant; close one first"),
            )
            .with_retry_after(5));
        }
        t.streams += 1;
        let wake = t.wake.clone();
        drop(tenants);
        let hub = self.clone();
        // Announced at once, so ingest starts notifying within its next refresh.
        tokio::spawn(async move { store::announce(&hub.redis, &[tenant], ANNOUNCE_TTL).await });
        Ok(Subscription { hub: self.clone(), tenant, wake, closing: self.closing.subscribe() })
    }

    fn start(self: &Arc<Self>) {
        let hub = Arc::downgrade(self);
        let pool = self.pool.clone();
        tokio::spawn(relay_store::listen::listen(pool, &[store::STREAM_CHANNEL], "streams", move |heard| {
            let Some(hub) = hub.upgrade() else { return };
            let tenants = hub.lock();
            for (id, t) in tenants.iter() {
                let concerned = match &heard {
                    Heard::Notification { payload, .. } => store::concerns(payload, *id),
                    Heard::Listening => true,
                    Heard::Lost => false,
                };
                if concerned {
                    t.wake.notify_waiters();
                }
            }
        }));
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                let tenants: Vec<TenantId> = hub.lock().keys().copied().collect();
                store::announce(&hub.redis, &tenants, ANNOUNCE_TTL).await;
            }
        });
    }
}
