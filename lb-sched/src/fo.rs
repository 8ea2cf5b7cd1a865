//! `fo`: weighted failover (IPVS `ip_vs_fo.c`).
//!
//! The highest weight among destinations without OVERLOAD and with weight > 0; strict `>`, so
//! the first in list order wins ties.

use std::sync::Arc;

use crate::walk::highest_weight;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Weighted failover.
#[derive(Debug, Clone, Copy)]
pub struct Failover;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(Failover))
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
