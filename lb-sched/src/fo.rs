//! `fo`: weighted failover (IPVS `ip_vs_fo.c`).
//!
//! The highest weight among destinations without OVERLOAD and with weight > 0; strict `>`, so
//! the first in list order wins ties.

use std::sync::Arc;

use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Weighted failover.
#[derive(Debug, Clone, Copy)]
pub struct Failover;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(Failover))
}

/// The highest-weight destination among those `ok` accepts; the first wins ties.
#[inline]
pub(crate) fn highest_weight(dests: &[Arc<Destination>], ok: impl Fn(&Destination) -> bool) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        let w = d.weight();
        if w == 0 || d.is_overloaded() || !ok(d) {
            continue;
        }
        if best.is_none_or(|(_, bw)| w > bw) {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}

impl Scheduler for Failover {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        highest_weight(dests, |_| true)
    }

    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(Failover))
    }
}
