//! A destination's delivery settings when the tenant does not give them, and their bounds: the
//! one home for the admin API (defaults and validation), the store and the dispatcher. The
//! migration's column defaults say the same (a test in relay-store checks that they do).

use crate::retry::RetryPolicy;

/// Timeout of one attempt, in milliseconds.
pub const TIMEOUT_MS: u32 = 10_000;
/// The longest timeout a destination may set.
pub const MAX_TIMEOUT_MS: u32 = 30_000;
/// Attempts in flight at once to one destination.
pub const MAX_IN_FLIGHT: u32 = 16;
/// The most a destination may set.
pub const MAX_IN_FLIGHT_LIMIT: u32 = 1_000;
/// The retry policy of a destination that gives none (the window is capped by the plan).
pub const RETRY: RetryPolicy =
    RetryPolicy { initial_delay_ms: 5_000, max_delay_ms: 3_600_000, window_seconds: 86_400 };
