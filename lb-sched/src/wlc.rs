//! `wlc`: weighted least connections (IPVS `ip_vs_wlc.c`), the ipvsadm default.
//!
//! The first destination without OVERLOAD and with weight > 0 becomes `least`; each later
//! destination without OVERLOAD replaces it when `loh * w_d > doh * w_least` (overheads
//! `activeconns * 256 + inactconns`, products computed wide so they never overflow). A weight-0
//! destination can never win; ties keep the first in list order.

use std::sync::Arc;

use crate::walk::weighted_least;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Weighted least connections.
#[derive(Debug, Clone, Copy)]
pub struct WeightedLeastConn;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(WeightedLeastConn))
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
