//! The write queue, shared fairly between tenants (CONTRACT §10): each tenant has its own line,
//! batches take from the lines in turn, and the bounds refuse the tenant that holds more than
//! its share, never the others.
//!
//! - **Admission.** A tenant whose own oldest request has waited `max_wait` is refused (its
//!   events come faster than the writer takes them). Past the queue's count or byte bound, a
//!   request is refused only when its tenant already holds at least an equal share of the queue
//!   (count or bytes); a tenant below its share is still let in, up to twice the bounds, past which
//!   everyone is refused. So one tenant alone may use the whole queue (work-conserving), and a
//!   tenant flooding it is refused while a quiet one is not.
//! - **Batches.** A batch takes one request from each tenant's line in turn (starting after the
//!   tenant the last batch started with), and at most `tenant_batch_bytes` of one tenant's bodies
//!   beyond its first request, so a tenant of 1 MB events makes short commits that another
//!   tenant's small events do not wait long behind.
//!
//! Invariant: `jobs` and `bytes` are the sums over the lines, and a tenant has a line exactly when
//! it has requests waiting.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use relay_core::TenantId;

/// What the queue needs to know of a request.
pub(crate) trait Queued {
    fn tenant(&self) -> TenantId;
    fn bytes(&self) -> usize;
    fn queued_at(&self) -> Instant;
}

/// The bounds of the queue and of one batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub queue: usize,
    pub queue_bytes: usize,
    pub max_wait: Duration,
    pub max_batch: usize,
    pub max_batch_bytes: usize,
    pub tenant_batch_bytes: usize,
}

/// Why a request was not let in (the caller answers 503 `overloaded` either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The tenant's own oldest request has waited too long.
    Behind,
    /// The queue is full and the tenant holds at least its share.
    OverShare,
}

struct Line<T> {
    jobs: VecDeque<T>,
    bytes: usize,
}

pub(crate) struct FairQueue<T> {
    lines: HashMap<TenantId, Line<T>>,
    /// Tenants with requests waiting, in turn order.
    turn: VecDeque<TenantId>,
    jobs: usize,
    bytes: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        Self { lines: HashMap::new(), turn: VecDeque::new(), jobs: 0, bytes: 0 }
    }
}

impl<T: Queued> FairQueue<T> {
    /// Queues `job`, or says why not.
    pub(crate) fn push(&mut self, job: T, bounds: &Bounds) -> Result<(), (Full, T)> {
        let tenant = job.tenant();
        let len = job.bytes();
        if let Some(line) = self.lines.get(&tenant) {
            if line.jobs.front().is_some_and(|j| j.queued_at().elapsed() >= bounds.max_wait) {
                return Err((Full::Behind, job));
            }
            let full = self.jobs >= bounds.queue || self.bytes + len > bounds.queue_bytes;
            let hard = self.jobs >= 2 * bounds.queue || self.bytes + len > 2 * bounds.queue_bytes;
            let tenants = self.lines.len();
            let at_share = line.jobs.len() * tenants >= self.jobs || line.bytes * tenants >= self.bytes;
            if hard || (full && at_share) {
                return Err((Full::OverShare, job));
            }
        } else if self.jobs >= 2 * bounds.queue
            || (self.jobs > 0 && self.bytes + len > 2 * bounds.queue_bytes)
        {
            return Err((Full::OverShare, job));
        }
        self.jobs += 1;
        self.bytes += len;
        let line = self.lines.entry(tenant).or_insert_with(|| {
            self.turn.push_back(tenant);
            Line { jobs: VecDeque::new(), bytes: 0 }
        });
        line.bytes += len;
        line.jobs.push_back(job);
        Ok(())
    }

    /// Takes the next batch: requests from each tenant in turn, within the batch's bounds (at
    /// least one request when any waits).
    pub(crate) fn take_batch(&mut self, bounds: &Bounds) -> Vec<T> {
        let mut batch: Vec<T> = Vec::new();
        let mut batch_bytes = 0;
        let mut taken: HashMap<TenantId, usize> = HashMap::new();
        // The tenants that may still give to this batch, in turn order; the next batch starts
        // after this one's first tenant.
        let mut open: VecDeque<TenantId> = self.turn.iter().copied().collect();
        self.turn.rotate_left(usize::from(!self.turn.is_empty()));
        while let Some(tenant) = open.pop_front() {
            let Some(line) = self.lines.get_mut(&tenant) else { continue };
            let Some(next) = line.jobs.front() else { continue };
            let len = next.bytes();
            let mine = taken.get(&tenant).copied();
            let tenant_full = mine.is_some_and(|b| b + len > bounds.tenant_batch_bytes);
            let batch_full = !batch.is_empty()
                && (batch.len() >= bounds.max_batch || batch_bytes + len > bounds.max_batch_bytes);
            if batch_full {
                break;
            }
            if tenant_full {
                continue;
            }
            let job = line.jobs.pop_front().expect("front exists");
            line.bytes -= len;
            self.jobs -= 1;
            self.bytes -= len;
            batch_bytes += len;
            *taken.entry(tenant).or_default() += len;
            batch.push(job);
            if line.jobs.is_empty() {
                self.lines.remove(&tenant);
                self.turn.retain(|t| *t != tenant);
            } else {
                open.push_back(tenant);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests;
