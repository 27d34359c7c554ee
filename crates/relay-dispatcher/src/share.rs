//! Fairness between tenants (CONTRACT §4): a round's free capacity is shared max-min fairly —
//! first between tenants, then between each tenant's destinations — so a tenant with a huge
//! backlog gets no more than an equal share while others have due work, and an idle share is
//! passed on to whoever can use it. Remainders rotate (`start`) so no tenant is always first.

use std::collections::HashMap;

use relay_core::TenantId;

/// Shares `budget` over `wants` (one entry per destination, tagged with its tenant); returns the
/// share of each entry, in order.
pub(crate) fn share(budget: u32, wants: &[(TenantId, u32)], start: usize) -> Vec<u32> {
    // Tenants in order of first appearance (so `start` rotates over a stable order), found by a
    // map: linear in the number of destinations.
    let mut tenants: Vec<(TenantId, Vec<usize>)> = Vec::new();
    let mut index: HashMap<TenantId, usize> = HashMap::with_capacity(wants.len());
    for (i, (tenant, _)) in wants.iter().enumerate() {
        let k = *index.entry(*tenant).or_insert_with(|| {
            tenants.push((*tenant, Vec::new()));
            tenants.len() - 1
        });
        tenants[k].1.push(i);
    }
    let tenant_wants: Vec<u32> =
        tenants.iter().map(|(_, members)| members.iter().map(|&i| wants[i].1).sum()).collect();
    let tenant_shares = fill(budget, &tenant_wants, start);
    let mut out = vec![0; wants.len()];
    for ((_, members), tenant_share) in tenants.iter().zip(tenant_shares) {
        let member_wants: Vec<u32> = members.iter().map(|&i| wants[i].1).collect();
        for (&i, s) in members.iter().zip(fill(tenant_share, &member_wants, start)) {
            out[i] = s;
        }
    }
    out
}

/// Max-min fair division ("water filling"): every want below the level is met in full, the rest
/// get the level, and what is left over goes one each to the larger wants starting at `start`.
fn fill(budget: u32, wants: &[u32], start: usize) -> Vec<u32> {
    let total: u64 = wants.iter().map(|&w| u64::from(w)).sum();
    if total <= u64::from(budget) {
        return wants.to_vec();
    }
    let used = |level: u32| -> u64 { wants.iter().map(|&w| u64::from(w.min(level))).sum() };
    let (mut lo, mut hi) = (0u32, wants.iter().copied().max().unwrap_or(0));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if used(mid) <= u64::from(budget) { lo = mid } else { hi = mid - 1 }
    }
    let mut out: Vec<u32> = wants.iter().map(|&w| w.min(lo)).collect();
    let mut left = u64::from(budget) - used(lo);
    let n = wants.len();
    for k in 0..n {
        let i = (start + k) % n;
        if left == 0 {
            break;
        }
        if wants[i] > lo {
            out[i] += 1;
            left -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_meets_small_wants_and_levels_large_ones() {
        assert_eq!(fill(100, &[3, 4], 0), [3, 4]);
        assert_eq!(fill(10, &[1, 100, 100], 0), [1, 5, 4]);
        assert_eq!(fill(10, &[1, 100, 100], 1), [1, 5, 4]);
        assert_eq!(fill(10, &[1, 100, 100], 2), [1, 4, 5]);
        assert_eq!(fill(0, &[5, 5], 0), [0, 0]);
        assert_eq!(fill(7, &[], 0), Vec::<u32>::new());
    }

    #[test]
    fn a_huge_backlog_gets_an_equal_share_not_everything() {
        let a = TenantId::new();
        let b = TenantId::new();
        // Tenant A: two destinations with thousands due; tenant B: 20 due.
        let wants = [(a, 5_000), (a, 5_000), (b, 20)];
        let s = share(100, &wants, 0);
        assert_eq!(s[2], 20);
        assert_eq!(s[0] + s[1], 80);
        assert_eq!((s[0], s[1]), (40, 40));
        let s = share(30, &wants, 0);
        assert_eq!((s[0] + s[1], s[2]), (15, 15));
    }

    #[test]
    fn tenants_keep_their_order_of_first_appearance() {
        let (a, b) = (TenantId::new(), TenantId::new());
        // Interleaved entries: the unit left over goes to the tenant at `start` in order of first
        // appearance (a, then b), and within a tenant to its destination at `start`.
        let wants = [(a, 5), (b, 5), (a, 5), (b, 5)];
        assert_eq!(share(2, &wants, 0), [1, 1, 0, 0]);
        assert_eq!(share(3, &wants, 0), [1, 1, 1, 0]);
        assert_eq!(share(3, &wants, 1), [0, 1, 1, 1]);
    }

    #[test]
    fn many_tenants_each_get_an_equal_share() {
        let tenants: Vec<TenantId> = (0..5_000).map(|_| TenantId::new()).collect();
        let wants: Vec<(TenantId, u32)> = (0..20_000).map(|i| (tenants[i % 5_000], 3)).collect();
        let s = share(10_000, &wants, 7);
        assert_eq!(s.iter().sum::<u32>(), 10_000);
        // Every tenant gets its equal share of 2, spread over its destinations.
        for t in 0..5_000 {
            assert_eq!((0..4).map(|k| s[t + 5_000 * k]).sum::<u32>(), 2);
        }
    }

    #[test]
    fn shares_never_exceed_wants_or_budget() {
        let t: Vec<TenantId> = (0..5).map(|_| TenantId::new()).collect();
        let wants: Vec<(TenantId, u32)> = (0..20).map(|i| (t[i % 5], (i as u32 * 37) % 23)).collect();
        for budget in [0, 1, 7, 50, 1_000] {
            for start in 0..5 {
                let s = share(budget, &wants, start);
                assert!(s.iter().zip(&wants).all(|(s, (_, w))| s <= w));
                let total: u32 = s.iter().sum();
                let want: u32 = wants.iter().map(|(_, w)| w).sum();
                assert_eq!(total, budget.min(want));
            }
        }
    }
}
