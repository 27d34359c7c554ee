//! The one LISTEN helper of the relay: a dedicated connection listening on some channels, kept
//! in place for as long as the process runs (reconnecting after a pause), that tells its owner
//! when it starts listening, each notification, and when it lost the connection. Every watcher
//! of the process (the config caches, the dispatcher's wake-up) uses it, so they agree on what a
//! lost connection means.
//!
//! The connection is the listener's own, outside the pool, so listening never takes a
//! connection that requests need: a process opens its pool's connections plus one per listener.
//!
//! Invariant: `Heard::Lost` is reported before any reconnection, and `Heard::Listening` only once
//! every channel is listened to; notifications sent while not listening are lost, so a watcher
//! must treat `Listening` as "anything may have changed meanwhile".

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use uuid::Uuid;

const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The channel on which every change to a source, tenant or destination is announced (by
/// triggers, whoever makes the change).
pub const CONFIG_CHANNEL: &str = "wap_relay_config";

/// What the listener tells its owner.
#[derive(Debug)]
pub enum Heard<'a> {
    /// Listening on every channel (at start and after each reconnection).
    Listening,
    Notification {
        channel: &'a str,
        payload: &'a str,
    },
    /// The connection is gone; notifications are missed until the next `Listening`.
    Lost,
}

/// Listens on `channels` forever, calling `hear` for each event. `name` appears in the logs.
/// Returns once `pool` is closed (the process is stopping); the listener connects with `pool`'s
/// options but not through it.
pub async fn listen(pool: PgPool, channels: &[&str], name: &str, mut hear: impl FnMut(Heard<'_>) + Send) {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(pool.connect_options().as_ref().clone());
    let stopping = pool.close_event();
    tokio::pin!(stopping);
    while !pool.is_closed() {
        match PgListener::connect_with(&own).await {
            Ok(mut listener) => match listener.listen_all(channels.iter().copied()).await {
                Ok(()) => {
                    hear(Heard::Listening);
                    // try_recv, not recv: recv would reconnect silently and hide the
                    // notifications missed meanwhile.
                    loop {
                        let received = tokio::select! {
                            received = listener.try_recv() => received,
                            () = &mut stopping => break,
                        };
                        match received {
                            Ok(Some(n)) => {
                                hear(Heard::Notification { channel: n.channel(), payload: n.payload() })
                            }
                            Ok(None) => {
                                tracing::warn!(listener = name, "LISTEN connection lost; reconnecting");
                                break;
                            }
                            Err(_) if pool.is_closed() => break,
                            Err(e) => {
                                tracing::warn!(listener = name, error = %e, "LISTEN connection lost; reconnecting");
                                break;
                            }
                        }
                    }
                    hear(Heard::Lost);
                }
                Err(_) if pool.is_closed() => return,
                Err(e) => tracing::warn!(listener = name, error = %e, "LISTEN failed; retrying"),
            },
            Err(e) => tracing::debug!(listener = name, error = %e, "LISTEN cannot connect; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
            () = &mut stopping => break,
        }
    }
    own.close().await;
}

/// One announcement on [`CONFIG_CHANNEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Source(Uuid),
    Tenant(Uuid),
    Destination {
        tenant: Uuid,
        id: Uuid,
    },
    /// Anything else: treat as "everything may have changed".
    Unknown,
}

impl Change {
    pub fn parse(payload: &str) -> Self {
        let mut parts = payload.split(':');
        let kind = parts.next();
        let mut id = || parts.next().and_then(|p| p.parse::<Uuid>().ok());
        match kind {
            Some("source") => id().map_or(Change::Unknown, Change::Source),
            Some("tenant") => id().map_or(Change::Unknown, Change::Tenant),
            Some("destination") => match (id(), id()) {
                (Some(tenant), Some(id)) => Change::Destination { tenant, id },
                _ => Change::Unknown,
            },
            _ => Change::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(Change::parse(&format!("source:{a}")), Change::Source(a));
        assert_eq!(Change::parse(&format!("tenant:{a}")), Change::Tenant(a));
        assert_eq!(Change::parse(&format!("destination:{a}:{b}")), Change::Destination { tenant: a, id: b });
        assert_eq!(Change::parse("destination:nope"), Change::Unknown);
        assert_eq!(Change::parse(""), Change::Unknown);
    }
}
