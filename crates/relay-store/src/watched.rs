//! A per-process cache of configuration rows that the fleet may change at any moment (sources,
//! destinations, tenants), kept correct by the config announcements: entries are dropped as soon
//! as a change is heard, nothing is cached while the LISTEN is not in place (a change could be
//! missed), and everything is dropped when it is lost.
//!
//! Invariant: a value loaded while a change was announced is not cached (a generation counter
//! moves on every change; [`Watched::put`] takes the generation seen before the load), so a
//! stale row never outlives its notification. Entries also expire after `ttl`, as a last
//! resort, and the cache never holds more than `max` entries.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Watched<K, V> {
    ttl: Duration,
    max: usize,
    state: Mutex<State<K, V>>,
}

struct State<K, V> {
    entries: HashMap<K, (Instant, V)>,
    generation: u64,
    listening: bool,
}

/// The generation seen before a load; a value loaded under it is cached only if nothing changed.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl<K: Eq + Hash, V: Clone> Watched<K, V> {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            state: Mutex::new(State { entries: HashMap::new(), generation: 0, listening: false }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, if the cache is live and the entry fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        let state = self.lock();
        if !state.listening {
            return None;
        }
        state.entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    /// Take before loading a value to [`Watched::put`].
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    /// Caches a value loaded after `ticket`, unless a change was heard since (or not listening).
    pub fn put(&self, ticket: Ticket, key: K, value: V) {
        let mut state = self.lock();
        if !state.listening || state.generation != ticket.0 {
            return;
        }
        if state.entries.len() >= self.max {
            let ttl = self.ttl;
            state.entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if state.entries.len() >= self.max {
                state.entries.clear();
            }
        }
        state.entries.insert(key, (Instant::now(), value));
    }

    /// A change was heard: drops the entries it concerns (`stale`), and makes every load in
    /// progress uncacheable.
    pub fn forget(&self, mut stale: impl FnMut(&K, &V) -> bool) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.retain(|k, (_, v)| !stale(k, v));
    }

    /// The LISTEN started (`true`) or was lost (`false`): either way, start afresh.
    pub fn set_listening(&self, on: bool) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
        state.listening = on;
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_only_while_listening_and_without_a_change_in_between() {
        let c: Watched<u32, &str> = Watched::new(Duration::from_secs(60), 10);
        c.put(c.ticket(), 1, "a");
        assert_eq!(c.get(&1), None, "not listening: nothing is cached");
        c.set_listening(true);
        let t = c.ticket();
        c.forget(|_, _| false);
        c.put(t, 1, "stale");
        assert_eq!(c.get(&1), None, "a change during the load keeps the value out");
        c.put(c.ticket(), 1, "a");
        c.put(c.ticket(), 2, "b");
        assert_eq!(c.get(&1), Some("a"));
        c.forget(|k, _| *k == 1);
        assert_eq!((c.get(&1), c.get(&2)), (None, Some("b")));
        c.set_listening(false);
        assert_eq!(c.get(&2), None);
    }

    #[test]
    fn stays_bounded() {
        let c: Watched<u32, u32> = Watched::new(Duration::from_secs(60), 3);
        c.set_listening(true);
        for i in 0..10 {
            c.put(c.ticket(), i, i);
        }
        assert!(c.len() <= 3);
    }
}
