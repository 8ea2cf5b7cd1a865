//! `p2c`: Envoy's `LEAST_REQUEST` load balancer (documentation "Weighted least request" in
//! `arch_overview/upstream/load_balancing/load_balancers`; `least_request_lb.h`), on active
//! connections instead of active requests.
//!
//! Envoy uses two algorithms, chosen by whether the hosts' weights are equal:
//!
//! * **All weights equal: power of two choices** (Mitzenmacher, "The power of two choices in
//!   randomized load balancing", IEEE TPDS 12(10), 2001). Two *distinct* eligible destinations
//!   are drawn uniformly at random from [`SchedConfig::random`]; the one with fewer active
//!   connections wins, the first drawn on a tie (Envoy's strict `<`). The draws are rejection
//!   samples over the list (a draw of an ineligible destination is redrawn, up to
//!   [`MAX_DRAWS`] times); past that, the eligible destinations are counted and two distinct
//!   ranks drawn among them, so the draws are uniform in every case. One eligible destination:
//!   it. None: `None`. O(1) expected.
//! * **Weights not all equal: a weighted round-robin (EDF) schedule with dynamic weights**,
//!   `weight = load_balancing_weight / (active + 1)^active_request_bias` with Envoy's default
//!   bias 1.0 ([`ACTIVE_REQUEST_BIAS`]), computed when a destination is (re)inserted. Envoy's
//!   earliest-deadline-first scheduler gives each host a deadline; a pick takes the earliest,
//!   sets the scheduler's time to it and reinserts the host with deadline `time + 1 / weight`.
//!   lbkit keeps the deadlines lock-free, one atomic per destination (an `f64` in an
//!   `AtomicU64`) and the time in another: a pick scans the eligible destinations for the
//!   earliest deadline (an ineligible destination's deadline in the past counts as "now", so
//!   one back from OVERLOAD does not catch up in a burst), then moves that deadline on by
//!   `(active + 1) / weight` with a compare-and-swap (a lost race rescans, up to
//!   [`MAX_RETRIES`] times, then takes the last winner). Initial deadlines are
//!   `(active + 1) / weight` at build time, as Envoy inserts every host at time 0. Equal
//!   deadlines go to the first in list order (Envoy: the first inserted). O(N) per pick.
//!
//! Which algorithm applies is decided at rebuild time from the weights of the destinations with
//! weight > 0 (Envoy decides when its host set changes; lbkit rebuilds on every weight edit).
//!
//! How it differs from IPVS's [`twos`](crate::twos): `twos` draws both choices
//! weight-proportionally (r in `0..=W`, which favours the first destination slightly), may draw
//! the same destination twice, walks the list (O(N)), and compares IPVS's overhead
//! `active · 256 + inactive` scaled by the weights; `p2c` draws uniformly and distinctly in O(1)
//! with equal weights, compares only active connections, and with unequal weights is not a
//! two-choice scheme at all but Envoy's load-scaled weighted round robin.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::{Change, Destination, Flow, RandomSource, SchedConfig, SchedError, Scheduler};

/// Envoy's default `active_request_bias`; the exponent of `(active + 1)` in the dynamic weight.
pub const ACTIVE_REQUEST_BIAS: f64 = 1.0;
/// Rejection draws per choice before counting the eligible destinations.
pub const MAX_DRAWS: usize = 8;
/// Rescans after a lost compare-and-swap in the weighted mode.
pub const MAX_RETRIES: usize = 4;

/// Envoy's least-request balancer: P2C with equal weights, a load-scaled EDF otherwise.
#[derive(Debug)]
pub struct LeastRequest {
    random: Arc<dyn RandomSource>,
    /// `None`: all weights equal (P2C). `Some`: the EDF state.
    edf: Option<Edf>,
}

#[derive(Debug)]
struct Edf {
    now: AtomicU64,
    deadlines: Box<[AtomicU64]>,
}

/// The EDF step of a destination: `1 / dynamic weight = (active + 1)^bias / weight`
/// (bias 1.0). Infinite for weight 0.
#[inline]
pub fn step(weight: u32, active: u32) -> f64 {
    if weight == 0 {
        return f64::INFINITY;
    }
    (f64::from(active) + 1.0) / f64::from(weight)
}

/// Registry constructor.
pub fn build(cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(LeastRequest::new(Arc::clone(&cfg.random), dests)))
}

impl LeastRequest {
    /// The scheduler for `dests` with randomness `random`.
    pub fn new(random: Arc<dyn RandomSource>, dests: &[Arc<Destination>]) -> Self {
        let mut weights = dests.iter().map(|d| d.weight()).filter(|&w| w > 0);
        let first = weights.next();
        let equal = weights.all(|w| Some(w) == first);
        let edf = (!equal).then(|| Edf {
            now: AtomicU64::new(0f64.to_bits()),
            deadlines: dests.iter().map(|d| AtomicU64::new(step(d.weight(), d.active_conns()).to_bits())).collect(),
        });
        LeastRequest { random, edf }
    }

    /// Whether the weighted (EDF) mode is in force.
    pub fn is_weighted(&self) -> bool {
        self.edf.is_some()
    }

    fn p2c(&self, dests: &[Arc<Destination>]) -> Option<usize> {
        let n = dests.len() as u64;
        if n == 0 {
            return None;
        }
        let eligible = |i: usize| dests.get(i).is_some_and(|d| d.is_eligible());
        let first = (0..MAX_DRAWS).map(|_| self.random.below(n) as usize).find(|&i| eligible(i));
        let (a, b) = match first {
            Some(a) if n > 1 => {
                let other = |j: u64| if j as usize >= a { j as usize + 1 } else { j as usize };
                match (0..MAX_DRAWS).map(|_| other(self.random.below(n - 1))).find(|&j| eligible(j)) {
                    Some(b) => (a, b),
                    None => self.ranked(dests, Some(a))?,
                }
            }
            Some(a) => return Some(a),
            None => self.ranked(dests, None)?,
        };
        if b == a {
            return Some(a);
        }
        Some(if dests[b].active_conns() < dests[a].active_conns() { b } else { a })
    }

    /// The fallback draw: two distinct eligible destinations by rank among the eligible ones
    /// (`a` fixed when already drawn); the same one twice when only one is eligible.
    fn ranked(&self, dests: &[Arc<Destination>], a: Option<usize>) -> Option<(usize, usize)> {
        let m = dests.iter().filter(|d| d.is_eligible()).count() as u64;
        let nth = |r: u64| dests.iter().enumerate().filter(|(_, d)| d.is_eligible()).nth(r as usize).map(|(i, _)| i);
        match (m, a) {
            (0, _) => None,
            (1, _) => nth(0).map(|i| (i, i)),
            (_, Some(a)) => {
                // Rank of `a` among the eligible, then a different rank.
                let ra = dests[..a].iter().filter(|d| d.is_eligible()).count() as u64;
                let r = self.random.below(m - 1);
                Some((a, nth(if r >= ra { r + 1 } else { r })?))
            }
            (_, None) => {
                let r1 = self.random.below(m);
                let r2 = self.random.below(m - 1);
                Some((nth(r1)?, nth(if r2 >= r1 { r2 + 1 } else { r2 })?))
            }
        }
    }

    fn edf(&self, edf: &Edf, dests: &[Arc<Destination>]) -> Option<usize> {
        let mut winner = None;
        for _ in 0..MAX_RETRIES {
            let now = f64::from_bits(edf.now.load(Relaxed));
            let mut best: Option<(usize, f64, u64)> = None;
            for (i, (d, slot)) in dests.iter().zip(edf.deadlines.iter()).enumerate() {
                if !d.is_eligible() {
                    continue;
                }
                let raw = slot.load(Relaxed);
                let key = f64::from_bits(raw).max(now);
                if best.is_none_or(|(_, k, _)| key < k) {
                    best = Some((i, key, raw));
                }
            }
            let (i, key, raw) = best?;
            let d = dests.get(i)?;
            let next = key + step(d.weight(), d.active_conns());
            winner = Some(i);
            if edf.deadlines.get(i)?.compare_exchange(raw, next.to_bits(), Relaxed, Relaxed).is_ok() {
                // Deadlines are non-negative, so their bit patterns order like their values.
                edf.now.fetch_max(key.to_bits(), Relaxed);
                return Some(i);
            }
        }
        winner
    }
}

impl Scheduler for LeastRequest {
    fn name(&self) -> &'static str {
        "p2c"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        match &self.edf {
            None => self.p2c(dests),
            Some(edf) => self.edf(edf, dests),
        }
    }

    fn rebuild(&self, dests: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(LeastRequest::new(Arc::clone(&self.random), dests)))
    }
}
