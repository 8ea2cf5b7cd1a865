//! `nq`: never queue (IPVS `ip_vs_nq.c`).
//!
//! Skips OVERLOAD and weight-0 destinations; returns at once the first one with no active
//! connection; otherwise the sed rule (`(activeconns + 1)` weighted, first wins ties).

use std::sync::Arc;

use crate::sed::sed_overhead;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Never queue.
#[derive(Debug, Clone, Copy)]
pub struct NeverQueue;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(NeverQueue))
}

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        let mut least: Option<(usize, u64, u128)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_eligible() {
                continue;
            }
            if d.active_conns() == 0 {
                return Some(i);
            }
            let (doh, dw) = (sed_overhead(d), u128::from(d.weight()));
            if least.is_none_or(|(_, loh, lw)| u128::from(loh) * dw > u128::from(doh) * lw) {
                least = Some((i, doh, dw));
            }
        }
        least.map(|(i, _, _)| i)
    }

    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(NeverQueue))
    }
}
