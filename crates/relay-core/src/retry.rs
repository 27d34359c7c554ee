//! The retry schedule (CONTRACT §4), pure so it can be tested without a clock: attempt `n` waits
//! `min(initial · 2^(n-1), max)` with ±20% jitter; a valid `Retry-After` raises the wait; nothing
//! is scheduled past the end of the delivery's retry window.

use std::time::Duration;

use time::OffsetDateTime;

/// A destination's retry policy, already capped by the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    pub window_seconds: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        crate::destination::RETRY
    }
}

/// The backoff after attempt `attempt` (1-based) failed. `jitter` in `[-1, 1]` scales ±20%.
pub fn backoff_delay(policy: &RetryPolicy, attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(62);
    let base = policy.initial_delay_ms.saturating_mul(1u64 << exp).min(policy.max_delay_ms);
    let factor = 1.0 + 0.2 * jitter.clamp(-1.0, 1.0);
    Duration::from_millis((base as f64 * factor).round() as u64)
}

/// When to try again after attempt `attempt` failed at `now`, or `None` when the window
/// (counted from `created_at`) is over and the delivery fails.
pub fn next_attempt_at(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: f64,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let deadline = created_at + Duration::from_secs(policy.window_seconds);
    if now >= deadline {
        return None;
    }
    let mut wait = backoff_delay(policy, attempt, jitter);
    if let Some(asked) = retry_after {
        wait = wait.max(asked);
    }
    // Capped before adding: a huge Retry-After must not overflow the date.
    let left: Duration = (deadline - now).try_into().unwrap_or(Duration::ZERO);
    Some(now + wait.min(left))
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate and the two obsolete forms HTTP still accepts (RFC 9110 §5.6.7).
    let date = OffsetDateTime::from(httpdate::parse_http_date(value).ok()?);
    Some((date - now).try_into().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const POLICY: RetryPolicy =
        RetryPolicy { initial_delay_ms: 5_000, max_delay_ms: 60_000, window_seconds: 3_600 };

    #[test]
    fn doubles_up_to_the_cap() {
        let d: Vec<u64> = (1..=6).map(|n| backoff_delay(&POLICY, n, 0.0).as_millis() as u64).collect();
        assert_eq!(d, [5_000, 10_000, 20_000, 40_000, 60_000, 60_000]);
        assert_eq!(backoff_delay(&POLICY, 500, 0.0).as_millis(), 60_000);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(backoff_delay(&POLICY, 1, 1.0).as_millis(), 6_000);
        assert_eq!(backoff_delay(&POLICY, 1, -1.0).as_millis(), 4_000);
        assert_eq!(backoff_delay(&POLICY, 1, 7.0).as_millis(), 6_000);
    }

    #[test]
    fn retry_after_raises_but_never_passes_the_window() {
        let created = datetime!(2026-01-01 00:00 UTC);
        let now = created + Duration::from_secs(10);
        let plain = next_attempt_at(&POLICY, 1, None, 0.0, created, now).unwrap();
        assert_eq!(plain, now + Duration::from_secs(5));
        let raised = next_attempt_at(&POLICY, 1, Some(Duration::from_secs(120)), 0.0, created, now).unwrap();
        assert_eq!(raised, now + Duration::from_secs(120));
        let lowered = next_attempt_at(&POLICY, 1, Some(Duration::from_secs(1)), 0.0, created, now).unwrap();
        assert_eq!(lowered, plain);
        let huge = next_attempt_at(&POLICY, 1, Some(Duration::from_secs(99_999)), 0.0, created, now).unwrap();
        assert_eq!(huge, created + Duration::from_secs(3_600));
    }

    #[test]
    fn absurd_retry_after_values_stop_at_the_window() {
        let created = datetime!(2026-01-01 00:00 UTC);
        let now = created + Duration::from_secs(10);
        let end = created + Duration::from_secs(3_600);
        let huge = next_attempt_at(&POLICY, 1, Some(Duration::from_secs(u64::MAX)), 0.0, created, now);
        assert_eq!(huge, Some(end));
        let far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now);
        assert_eq!(next_attempt_at(&POLICY, 1, far, 0.0, created, now), Some(end));
        assert_eq!(
            next_attempt_at(&POLICY, 1, parse_retry_after("99999999999999999999", now), 0.0, created, now),
            Some(now + Duration::from_secs(5))
        );
    }

    #[test]
    fn retry_after_takes_every_http_date_form() {
        let now = datetime!(1994-11-06 08:49:00 UTC);
        let in_37s = Some(Duration::from_secs(37));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), in_37s);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), in_37s);
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), in_37s);
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:48:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn window_over_means_failed() {
        let created = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            next_attempt_at(&POLICY, 9, None, 0.0, created, created + Duration::from_secs(3_600)),
            None
        );
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = datetime!(2015-10-21 07:28:00 UTC);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
