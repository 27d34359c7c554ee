//! What an attempt means for its delivery (CONTRACT §4), pure: success on 2xx; `410 Gone` fails
//! the delivery and disables the destination; a blocked address fails at once; everything else
//! is retried on the destination's backoff schedule (raised by `Retry-After`) until its window,
//! counted from the delivery's creation, is over.

use relay_core::retry::{RetryPolicy, next_attempt_at};
use relay_store::outcomes::{AttemptOutcome, NextState};
use time::OffsetDateTime;

use crate::attempt::Report;

/// The delivery's next state, and whether the destination must be disabled (410).
pub(crate) fn decide(
    report: &Report,
    policy: &RetryPolicy,
    attempt: u32,
    window_start: OffsetDateTime,
    now: OffsetDateTime,
    jitter: f64,
) -> (NextState, bool) {
    match report.outcome {
        AttemptOutcome::Success => (NextState::Succeeded, false),
        AttemptOutcome::Blocked => (NextState::Failed, false),
        AttemptOutcome::HttpError if report.status == Some(410) => (NextState::Failed, true),
        _ => match next_attempt_at(policy, attempt, report.retry_after, jitter, window_start, now) {
            Some(at) => (NextState::Retry(at), false),
            None => (NextState::Failed, false),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use time::macros::datetime;

    const POLICY: RetryPolicy =
        RetryPolicy { initial_delay_ms: 1_000, max_delay_ms: 8_000, window_seconds: 60 };
    const CREATED: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn report(outcome: AttemptOutcome, status: Option<u16>, retry_after: Option<u64>) -> Report {
        Report {
            started_at: CREATED,
            duration: Duration::ZERO,
            outcome,
            status,
            headers: None,
            body: None,
            error: None,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn success_gone_and_blocked_are_final() {
        let now = CREATED + Duration::from_secs(1);
        let d = |r: &Report| decide(r, &POLICY, 1, CREATED, now, 0.0);
        assert_eq!(d(&report(AttemptOutcome::Success, Some(204), None)), (NextState::Succeeded, false));
        assert_eq!(d(&report(AttemptOutcome::HttpError, Some(410), None)), (NextState::Failed, true));
        assert_eq!(d(&report(AttemptOutcome::Blocked, None, None)), (NextState::Failed, false));
    }

    #[test]
    fn other_failures_back_off_and_honour_retry_after() {
        let now = CREATED + Duration::from_secs(1);
        for outcome in [AttemptOutcome::Timeout, AttemptOutcome::ConnectError, AttemptOutcome::TlsError] {
            let (next, gone) = decide(&report(outcome, None, None), &POLICY, 3, CREATED, now, 0.0);
            assert_eq!(next, NextState::Retry(now + Duration::from_secs(4)));
            assert!(!gone);
        }
        let r = report(AttemptOutcome::HttpError, Some(503), Some(30));
        assert_eq!(
            decide(&r, &POLICY, 1, CREATED, now, 0.0).0,
            NextState::Retry(now + Duration::from_secs(30))
        );
        let r = report(AttemptOutcome::HttpError, Some(429), Some(3_600));
        assert_eq!(
            decide(&r, &POLICY, 1, CREATED, now, 0.0).0,
            NextState::Retry(CREATED + Duration::from_secs(60))
        );
    }

    #[test]
    fn a_window_that_is_over_fails_the_delivery() {
        let now = CREATED + Duration::from_secs(60);
        let r = report(AttemptOutcome::HttpError, Some(500), None);
        assert_eq!(decide(&r, &POLICY, 7, CREATED, now, 0.0), (NextState::Failed, false));
    }
}
