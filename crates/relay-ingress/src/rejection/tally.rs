//! What a flood of refused requests may cost. Per process, the first [`FULL_PER_MINUTE`]
//! refusals of each source and reason in a minute are recorded in full; the rest are only
//! counted, and the counts are added (every [`FLUSH_EVERY`], in one statement) to the `repeats`
//! of the last one recorded. At most [`WRITERS`] connections of the pool ever write rejections,
//! so a flood cannot take the connections valid ingest needs.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use relay_core::{RejectionId, SourceId};
use relay_store::PgPool;
use relay_store::rejections;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Refusals per source and reason per minute recorded in full, per process.
pub const FULL_PER_MINUTE: u32 = 20;
/// Connections that may write rejections at once.
const WRITERS: usize = 2;
/// How often counted refusals are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

type Key = (SourceId, &'static str);

/// One source and reason's current minute.
struct Window {
    minute: i64,
    recorded: u32,
    /// The last rejection of this minute stored in full: where counts go.
    last: Option<RejectionId>,
    counted: i64,
}

#[derive(Default)]
struct State {
    windows: HashMap<Key, Window>,
    /// Counts of minutes that ended, waiting for the next flush.
    due: Vec<(RejectionId, i64)>,
}

pub struct Tally {
    state: Mutex<State>,
    writers: Semaphore,
}

impl Default for Tally {
    fn default() -> Self {
        Self { state: Mutex::default(), writers: Semaphore::new(WRITERS) }
    }
}

fn minute_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp().div_euclid(60)
}

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this refusal is recorded in full (under the id returned) or only counted.
    pub fn admit(&self, source: SourceId, reason: &'static str) -> Option<RejectionId> {
        let minute = minute_now();
        let mut state = self.lock();
        let State { windows, due } = &mut *state;
        let window =
            windows.entry((source, reason)).or_insert(Window { minute, recorded: 0, last: None, counted: 0 });
        if window.minute != minute {
            close(window, due);
            *window = Window { minute, recorded: 0, last: None, counted: 0 };
        }
        if window.recorded < FULL_PER_MINUTE {
            window.recorded += 1;
            Some(RejectionId::new())
        } else {
            window.counted += 1;
            None
        }
    }

    /// `id`, admitted for `source` and `reason`, is stored: later counts go to it.
    pub fn stored(&self, source: SourceId, reason: &'static str, id: RejectionId) {
        if let Some(window) = self.lock().windows.get_mut(&(source, reason)) {
            window.last = Some(id);
        }
    }

    /// A connection for a rejection write; waits while [`WRITERS`] are busy.
    pub async fn writer(&self) -> SemaphorePermit<'_> {
        self.writers.acquire().await.expect("the semaphore is never closed")
    }

    /// The counts to write now; forgets the windows of past minutes once their counts are out.
    fn take(&self) -> Vec<(RejectionId, i64)> {
        let minute = minute_now();
        let mut state = self.lock();
        let State { windows, due } = &mut *state;
        windows.retain(|_, window| {
            if window.minute != minute {
                close(window, due);
                return false;
            }
            if let (Some(last), true) = (window.last, window.counted > 0) {
                due.push((last, std::mem::take(&mut window.counted)));
            }
            true
        });
        std::mem::take(due)
    }

    /// Writes the counts every [`FLUSH_EVERY`] while the tally lives.
    pub async fn flush_forever(tally: Weak<Tally>, pool: PgPool) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(tally) = tally.upgrade() else { return };
            let repeats = tally.take();
            if repeats.is_empty() {
                continue;
            }
            let _writer = tally.writer().await;
            if let Err(e) = rejections::add_repeats(&pool, &repeats).await {
                tracing::warn!(error = %e, "could not count repeated rejections; trying again");
                tally.lock().due.extend(repeats);
            }
        }
    }
}

/// Moves a finished window's count to `due`; a count with nowhere to go (no refusal of that
/// minute could be stored) is only logged.
fn close(window: &mut Window, due: &mut Vec<(RejectionId, i64)>) {
    let counted = std::mem::take(&mut window.counted);
    match window.last {
        Some(last) if counted > 0 => due.push((last, counted)),
        None if counted > 0 => {
            metrics::counter!("relay_ingest_rejections_uncounted_total").increment(counted as u64);
            tracing::warn!(counted, "refusals counted in a minute none of whose rejections could be stored");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ones_are_recorded_and_the_rest_counted_onto_the_last() {
        let tally = Tally::default();
        let source = SourceId::new();
        let admitted: Vec<RejectionId> =
            (0..FULL_PER_MINUTE + 5).filter_map(|_| tally.admit(source, "invalid_signature")).collect();
        // A minute boundary may fall inside the loop; then more are admitted, none counted twice.
        assert!(admitted.len() >= FULL_PER_MINUTE as usize);
        for id in &admitted {
            tally.stored(source, "invalid_signature", *id);
        }
        let counted: i64 = tally.take().iter().map(|(_, n)| n).sum();
        assert_eq!(admitted.len() as i64 + counted, i64::from(FULL_PER_MINUTE) + 5);
        // Another reason has its own allowance.
        assert!(tally.admit(source, "invalid_event").is_some());
        assert!(tally.take().is_empty(), "counts are taken once");
    }
}
