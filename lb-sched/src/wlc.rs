//! `wlc`: weighted least connections (IPVS `ip_vs_wlc.c`), the ipvsadm default.
//!
//! The first destination without OVERLOAD and with weight > 0 becomes `least`; each later
//! destination without OVERLOAD replaces it when `loh * w_d > doh * w_least` (overheads
//! `activeconns * 256 + inactconns`, products computed wide so they never overflow). A weight-0
//! destination can never win; ties keep the first in list order.

use std::sync::Arc;

use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Weighted least connections.
#[derive(Debug, Clone, Copy)]
pub struct WeightedLeastConn;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(WeightedLeastConn))
}

/// The weighted-least walk shared by wlc and sed: `overhead` is the per-destination load.
#[inline]
pub(crate) fn weighted_least(dests: &[Arc<Destination>], overhead: impl Fn(&Destination) -> u64) -> Option<usize> {
    let first = dests.iter().position(|d| d.is_eligible())?;
    let (mut least, mut loh, mut lw) = (first, overhead(&dests[first]), u128::from(dests[first].weight()));
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.is_overloaded() {
            continue;
        }
        let doh = overhead(d);
        let dw = u128::from(d.weight());
        if u128::from(loh) * dw > u128::from(doh) * lw {
            (least, loh, lw) = (i, doh, dw);
        }
    }
    Some(least)
}

impl Scheduler for WeightedLeastConn {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        weighted_least(dests, Destination::overhead)
    }

    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(WeightedLeastConn))
    }
}
