//! Fairness between tenants (CONTRACT §4, §10): a round's free capacity is shared max-min
//! fairly — first between tenants, then between each tenant's destinations — counting the slots
//! each tenant already holds, so a tenant whose slow endpoints hold many attempts gets nothing
//! more while another tenant holds fewer and has due work, and an idle share is passed on to
//! whoever can use it (one tenant alone gets all it may hold). Remainders rotate (`start`) so no
//! tenant is always first.

use std::collections::HashMap;

use relay_core::TenantId;

/// Shares `budget` over `wants` (one entry per destination, tagged with its tenant); `held` is
/// what each tenant holds in flight already and `room` the most more it may hold (its cap, see
/// `InFlight::tenant_room`). Returns the share of each entry, in order.
pub(crate) fn share(
    budget: u32,
    wants: &[(TenantId, u32)],
    held: impl Fn(TenantId) -> u32,
    room: impl Fn(TenantId) -> u32,
    start: usize,
) -> Vec<u32> {
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
    let tenant_wants: Vec<u32> = tenants
        .iter()
        .map(|(t, members)| members.iter().map(|&i| wants[i].1).sum::<u32>().min(room(*t)))
        .collect();
    let floors: Vec<u32> = tenants.iter().map(|(t, _)| held(*t)).collect();
    let tenant_shares = fill_above(budget, &tenant_wants, &floors, start);
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
    fill_above(budget, wants, &vec![0; wants.len()], start)
}

/// [`fill`] where each party already holds `floors[i]`: the level is of holdings plus shares, so
/// a party that holds more gets less (nothing while it holds more than the level).
fn fill_above(budget: u32, wants: &[u32], floors: &[u32], start: usize) -> Vec<u32> {
    let total: u64 = wants.iter().map(|&w| u64::from(w)).sum();
    if total <= u64::from(budget) {
        return wants.to_vec();
    }
    let given =
        |level: u64, i: usize| -> u64 { level.saturating_sub(u64::from(floors[i])).min(u64::from(wants[i])) };
    let used = |level: u64| -> u64 { (0..wants.len()).map(|i| given(level, i)).sum() };
    let top = (0..wants.len()).map(|i| u64::from(floors[i]) + u64::from(wants[i])).max().unwrap_or(0);
    let (mut lo, mut hi) = (0u64, top);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if used(mid) <= u64::from(budget) { lo = mid } else { hi = mid - 1 }
    }
    let mut out: Vec<u32> = (0..wants.len()).map(|i| given(lo, i) as u32).collect();
    let mut left = u64::from(budget) - used(lo);
    let n = wants.len();
    for k in 0..n {
        let i = (start + k) % n;
        if left == 0 {
            break;
        }
        // Those at the level with want left get one more each.
        if out[i] < wants[i] && u64::from(floors[i]) + u64::from(out[i]) == lo {
            out[i] += 1;
            left -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: TenantId) -> u32 {
        0
    }

    fn all(_: TenantId) -> u32 {
        u32::MAX
    }

    #[test]
    fn slots_already_held_count_against_their_tenant() {
        let (a, b) = (TenantId::new(), TenantId::new());
        // A holds 300 slots on slow endpoints and wants 200 more; B holds 10 and wants 100: of
        // 100 free slots, B gets them all (it is far below A's level).
        let wants = [(a, 200), (b, 100)];
        let held = |t: TenantId| if t == a { 300 } else { 10 };
        assert_eq!(share(100, &wants, held, all, 0), [0, 100]);
        // With more free than B wants, the rest goes to A: an idle share is passed on.
        assert_eq!(share(150, &wants, held, all, 0), [50, 100]);
        // Holdings level out: 40 free, A holds 20, B holds 0: B gets 30, A 10 (both at 30).
        let held = |t: TenantId| if t == a { 20 } else { 0 };
        assert_eq!(share(40, &wants, held, all, 0), [10, 30]);
    }

    #[test]
    fn a_tenant_gets_no_more_than_its_room() {
        let (a, b) = (TenantId::new(), TenantId::new());
        let wants = [(a, 500), (b, 5)];
        let room = |t: TenantId| if t == a { 20 } else { u32::MAX };
        assert_eq!(share(512, &wants, none, room, 0), [20, 5]);
    }

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
        let s = share(100, &wants, none, all, 0);
        assert_eq!(s[2], 20);
        assert_eq!(s[0] + s[1], 80);
        assert_eq!((s[0], s[1]), (40, 40));
        let s = share(30, &wants, none, all, 0);
        assert_eq!((s[0] + s[1], s[2]), (15, 15));
    }

    #[test]
    fn tenants_keep_their_order_of_first_appearance() {
        let (a, b) = (TenantId::new(), TenantId::new());
        // Interleaved entries: the unit left over goes to the tenant at `start` in order of first
        // appearance (a, then b), and within a tenant to its destination at `start`.
        let wants = [(a, 5), (b, 5), (a, 5), (b, 5)];
        assert_eq!(share(2, &wants, none, all, 0), [1, 1, 0, 0]);
        assert_eq!(share(3, &wants, none, all, 0), [1, 1, 1, 0]);
        assert_eq!(share(3, &wants, none, all, 1), [0, 1, 1, 1]);
    }

    #[test]
    fn many_tenants_each_get_an_equal_share() {
        let tenants: Vec<TenantId> = (0..5_000).map(|_| TenantId::new()).collect();
        let wants: Vec<(TenantId, u32)> = (0..20_000).map(|i| (tenants[i % 5_000], 3)).collect();
        let s = share(10_000, &wants, none, all, 7);
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
                let s = share(budget, &wants, none, all, start);
                assert!(s.iter().zip(&wants).all(|(s, (_, w))| s <= w));
                let total: u32 = s.iter().sum();
                let want: u32 = wants.iter().map(|(_, w)| w).sum();
                assert_eq!(total, budget.min(want));
            }
        }
    }
}
