//! `wrr`: weighted round robin (IPVS `ip_vs_wrr.c`).
//!
//! State (the IPVS "mark"): the current list position `cl` (0 = list head), the current weight
//! `cw`, the maximum weight `mw` (reduced by `di - 1`) and the step `di` (gcd of the positive
//! weights). A pick walks from after `cl` for the first destination without OVERLOAD whose
//! weight is at least `cw`; at the end of the list `cw` drops by `di` and the walk restarts at
//! the head, with IPVS's two termination rules. Weights 4, 3, 2 give A A B A B C A B C.
//!
//! `cl` and `cw` live in one atomic word, advanced by compare-and-swap: picks on many threads
//! are linearisable without the lock IPVS takes. `mw` and `di` are fixed per list version.

use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire};
use std::sync::Arc;

use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Weighted round robin.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// `cl` in the high 32 bits, `cw` in the low 32 bits.
    mark: AtomicU64,
    mw: i64,
    di: i64,
}

#[inline]
fn pack(cl: usize, cw: i64) -> u64 {
    ((cl as u64) << 32) | (cw as u64 & 0xffff_ffff)
}

#[inline]
fn unpack(m: u64) -> (usize, i64) {
    ((m >> 32) as usize, (m & 0xffff_ffff) as i64)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `(di, mw)` for the list's current weights.
fn weights(dests: &[Arc<Destination>]) -> (i64, i64) {
    let g = dests.iter().map(|d| u64::from(d.weight())).filter(|&w| w > 0).fold(0, gcd);
    let di = if g == 0 { 1 } else { g as i64 };
    let max = dests.iter().map(|d| i64::from(d.weight())).max().unwrap_or(0);
    (di, max - (di - 1))
}

/// Registry constructor (`init_svc`: `cl` = head, `cw` = `mw`).
pub fn build(_cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    let (di, mw) = weights(dests);
    Ok(Box::new(WeightedRoundRobin { mark: AtomicU64::new(pack(0, mw)), mw, di }))
}

enum Outcome {
    Found(usize, i64),
    Fail(usize, i64),
}

impl WeightedRoundRobin {
    fn walk(&self, dests: &[Arc<Destination>], cl: usize, cw: i64) -> Outcome {
        let n = dests.len();
        let (mw, di) = (self.mw, self.di);
        let mut cw = cw;
        let last = if cl > n { 0 } else { cl };
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        let mut pos = last;
        loop {
            for p in pos + 1..=n {
                let d = &dests[p - 1];
                if !d.is_overloaded() && i64::from(d.weight()) >= cw {
                    return Outcome::Found(p, cw);
                }
                if stop == Some(p) {
                    return Outcome::Fail(p, cw);
                }
            }
            pos = 0;
            cw -= di;
            if cw <= 0 {
                cw = mw;
                // Stop if the last pass (weight >= 1) already ran, or started from the head.
                if last_pass || last == 0 {
                    return Outcome::Fail(0, cw);
                }
                restarted = true;
            }
            last_pass = cw <= di;
            if last_pass && restarted && last != 0 {
                // The first traversal checked only the nodes after `last`: finish with the rest.
                stop = Some(last);
            }
        }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        if self.mw <= 0 || dests.is_empty() {
            return None;
        }
        let mut m = self.mark.load(Acquire);
        loop {
            let (cl, cw) = unpack(m);
            let (next, res) = match self.walk(dests, cl, cw) {
                Outcome::Found(p, cw) => (pack(p, cw), Some(p - 1)),
                Outcome::Fail(p, cw) => (pack(p, cw), None),
            };
            match self.mark.compare_exchange_weak(m, next, AcqRel, Acquire) {
                Ok(_) => return res,
                Err(now) => m = now,
            }
        }
    }

    /// `dest_changed`: `cl` back to the head, `di` and `mw` recomputed, `cw` kept when it still
    /// fits (rounded to the new step).
    fn rebuild(&self, dests: &[Arc<Destination>], _change: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        let (_, cw) = unpack(self.mark.load(Acquire));
        let (di, mw) = weights(dests);
        let cw = if cw > mw || cw == 0 {
            mw
        } else if di > 1 {
            (cw / di) * di + 1
        } else {
            cw
        };
        Ok(Box::new(WeightedRoundRobin { mark: AtomicU64::new(pack(0, cw)), mw, di }))
    }
}
