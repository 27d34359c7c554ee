//! Plans and their limits (CONTRACT §6). A tenant's effective limits are its plan's defaults with
//! the operator's per-tenant overrides laid over them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    Starter,
    Growth,
    Pro,
    Enterprise,
}

impl Plan {
    pub const ALL: [Plan; 5] = [Plan::Free, Plan::Starter, Plan::Growth, Plan::Pro, Plan::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Starter => "starter",
            Plan::Growth => "growth",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    /// The plan's default limits. `free` has no webhooks, so its numbers are all zero.
    pub fn limits(self) -> Limits {
        const H24: u32 = 86_400;
        const H72: u32 = 3 * 86_400;
        let (webhooks, sources, destinations, rate, burst, backlog, window, retention) = match self {
            Plan::Free => (false, 0, 0, 0, 0, 0, 0, 0),
            Plan::Starter => (true, 1, 3, 10, 50, 10_000, H24, 3),
            Plan::Growth => (true, 2, 10, 50, 200, 100_000, H24, 7),
            Plan::Pro => (true, 5, 25, 200, 1_000, 1_000_000, H72, 30),
            Plan::Enterprise => (true, 20, 100, 1_000, 5_000, 5_000_000, H72, 90),
        };
        // Ingest may outpace delivery (events fan out, bursts queue): a few times the delivery
        // rate, so the limit stops abuse, not a tenant's normal peaks.
        let (ingest_rate, ingest_burst) = (rate * 5, burst * 10);
        Limits {
            webhooks,
            sources,
            destinations,
            deliveries_per_second: rate,
            burst,
            backlog,
            retry_window_seconds: window,
            retention_days: retention,
            ingest_per_second: ingest_rate,
            ingest_burst,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plan `{0}`: expected free, starter, growth, pro or enterprise")]
pub struct UnknownPlan(pub String);

impl FromStr for Plan {
    type Err = UnknownPlan;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownPlan(s.to_owned()))
    }
}

/// Effective limits of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub webhooks: bool,
    pub sources: u32,
    pub destinations: u32,
    pub deliveries_per_second: u32,
    pub burst: u32,
    pub backlog: u64,
    pub retry_window_seconds: u32,
    pub retention_days: u32,
    /// Events per second the tenant's sources may post, across the fleet (429 past it).
    pub ingest_per_second: u32,
    /// Events the tenant may post at once above that rate.
    pub ingest_burst: u32,
}

/// Per-tenant overrides: each field set here replaces the plan's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliveries_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_window_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_burst: Option<u32>,
}

impl Limits {
    /// A destination's retry window (`window_seconds` as stored), capped by the plan: at least 1 s.
    pub fn retry_window(&self, window_seconds: i64) -> u64 {
        u64::try_from(window_seconds).unwrap_or(1).min(u64::from(self.retry_window_seconds)).max(1)
    }

    pub fn with(mut self, o: &LimitOverrides) -> Limits {
        macro_rules! lay {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { self.$f = v; } )* };
        }
        lay!(
            webhooks,
            sources,
            destinations,
            deliveries_per_second,
            burst,
            backlog,
            retry_window_seconds,
            retention_days,
            ingest_per_second,
            ingest_burst
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_table_matches_the_contract() {
        let s = Plan::Starter.limits();
        assert_eq!(
            (s.sources, s.destinations, s.deliveries_per_second, s.burst, s.backlog),
            (1, 3, 10, 50, 10_000)
        );
        assert_eq!((s.retry_window_seconds, s.retention_days), (86_400, 3));
        let e = Plan::Enterprise.limits();
        assert_eq!(
            (e.sources, e.destinations, e.deliveries_per_second, e.burst, e.backlog),
            (20, 100, 1_000, 5_000, 5_000_000)
        );
        assert!(!Plan::Free.limits().webhooks);
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let o: LimitOverrides = serde_json::from_str(r#"{"burst":5,"deliveries_per_second":5}"#).unwrap();
        let l = Plan::Growth.limits().with(&o);
        assert_eq!((l.burst, l.deliveries_per_second, l.sources), (5, 5, 2));
        assert!(serde_json::from_str::<LimitOverrides>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn plans_parse_from_their_names() {
        for p in Plan::ALL {
            assert_eq!(p.as_str().parse::<Plan>().unwrap(), p);
        }
        assert!("gold".parse::<Plan>().is_err());
    }
}
