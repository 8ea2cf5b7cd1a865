//! `swrr`: nginx's smooth weighted round robin (`ngx_http_upstream_get_peer` in
//! `src/http/ngx_http_upstream_round_robin.c`, introduced in nginx 1.3.1 / 1.2.2).
//!
//! nginx's rule, for each pick: every candidate peer adds its effective weight to its
//! `current_weight`; the peer with the largest `current_weight` wins (the first in list order on
//! ties, nginx's strict `>`); the winner's `current_weight` drops by the sum of the effective
//! weights. Weights {a: 5, b: 1, c: 1} give nginx's documented `a a b a c a a`. lbkit's
//! effective weight is the destination's weight (nginx's `max_fails` / `fail_timeout` lowering
//! does not exist here).
//!
//! Design, lock-free: the rule is deterministic and its state (all `current_weight`s) returns to
//! zero after one period of `P = Σ w_i / g` picks (g = gcd of the weights: dividing every weight
//! by g divides every `current_weight` by g and changes no comparison). The rebuild simulates
//! nginx's loop over the destinations with weight > 0 for one period and stores the winners,
//! `schedule[0..P]`; a pick takes `schedule[step % P]` with `step` from one shared
//! `AtomicU64::fetch_add`. Concurrent picks therefore each take a distinct step, and the
//! sequence of steps is exactly nginx's sequence (from its initial all-zero state, which is also
//! where nginx starts after a reconfiguration). Pick cost: O(1) (one atomic add, one load),
//! below the O(log N) asked of it; build cost O(P · N).
//!
//! Bounds (documented deviations):
//!
//! * The period is capped: when `P` exceeds [`MAX_PERIOD`] (2^20 entries, 4 MiB) or
//!   `P · N` exceeds [`MAX_BUILD_WORK`] (2^26, a few ms of build), every reduced weight is
//!   scaled down to `max(1, floor(w · cap / P))` with `cap = min(MAX_PERIOD,
//!   max(1, MAX_BUILD_WORK / N))`, and the schedule is nginx's sequence for those weights.
//!   Shares are then within one schedule slot of the true ones (a relative error of at most
//!   `1 / scaled weight`).
//! * A scheduled destination that is ineligible at pick time (OVERLOAD, or weight 0 before the
//!   edit's rebuild is published) is skipped: the next schedule entries are tried, up to
//!   [`MAX_SKIP`]; after that, the eligible destination with the highest weight (first in list
//!   order), which is what nginx's first pick over the eligible set would be. None eligible:
//!   `None`. Weight edits rebuild the schedule, so quiescing gives exactly nginx's sequence over
//!   the remaining destinations.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::hash::gcd;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// The longest schedule (one period) kept: 2^20 entries.
pub const MAX_PERIOD: u64 = 1 << 20;
/// The most `period × destinations` steps a rebuild simulates.
pub const MAX_BUILD_WORK: u64 = 1 << 26;
/// How many schedule entries a pick tries before its fallback.
pub const MAX_SKIP: usize = 1024;

/// Smooth weighted round robin.
#[derive(Debug)]
pub struct SmoothWeightedRoundRobin {
    schedule: Box<[u32]>,
    step: AtomicU64,
}

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(SmoothWeightedRoundRobin { schedule: schedule(dests), step: AtomicU64::new(0) }))
}

/// One period of nginx's sequence for the destinations' current weights (capped as the module
/// documentation says), as indices into `dests`.
pub fn schedule(dests: &[Arc<Destination>]) -> Box<[u32]> {
    let mut peers: Vec<(u32, u64)> = dests
        .iter()
        .enumerate()
        .filter(|(_, d)| d.weight() > 0)
        .map(|(i, d)| (i as u32, u64::from(d.weight())))
        .collect();
    if peers.is_empty() {
        return Box::new([]);
    }
    let g = peers.iter().fold(0, |a, p| gcd(a, p.1));
    for p in &mut peers {
        p.1 /= g;
    }
    let period: u64 = peers.iter().map(|p| p.1).sum();
    let n = peers.len() as u64;
    let cap = MAX_PERIOD.min((MAX_BUILD_WORK / n).max(1));
    if period > cap {
        for p in &mut peers {
            p.1 = ((u128::from(p.1) * u128::from(cap) / u128::from(period)) as u64).max(1);
        }
    }
    let total: i64 = peers.iter().map(|p| p.1 as i64).sum();
    let mut current = vec![0i64; peers.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (k, p) in peers.iter().enumerate() {
            current[k] += p.1 as i64;
            if current[k] > current[best] {
                best = k;
            }
        }
        current[best] -= total;
        out.push(peers[best].0);
    }
    out.into_boxed_slice()
}

impl SmoothWeightedRoundRobin {
    /// One period of the schedule (indices into the destination list).
    pub fn period(&self) -> &[u32] {
        &self.schedule
    }
}

impl Scheduler for SmoothWeightedRoundRobin {
    fn name(&self) -> &'static str {
        "swrr"
    }

    #[inline]
    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        let p = self.schedule.len();
        if p == 0 {
            return None;
        }
        let mut pos = (self.step.fetch_add(1, Relaxed) % p as u64) as usize;
        for _ in 0..p.min(MAX_SKIP) {
            let i = *self.schedule.get(pos)? as usize;
            if dests.get(i)?.is_eligible() {
                return Some(i);
            }
            pos += 1;
            if pos == p {
                pos = 0;
            }
        }
        // Most of the weight is unavailable: nginx's first pick over what is left.
        let mut best: Option<(usize, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            if d.is_eligible() && best.is_none_or(|(_, w)| d.weight() > w) {
                best = Some((i, d.weight()));
            }
        }
        best.map(|b| b.0)
    }

    /// A new schedule from the new weights, started at step 0 (nginx resets `current_weight` on
    /// reconfiguration).
    fn rebuild(&self, dests: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(SmoothWeightedRoundRobin { schedule: schedule(dests), step: AtomicU64::new(0) }))
    }
}
