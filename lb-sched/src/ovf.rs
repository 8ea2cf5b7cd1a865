//! `ovf`: weighted overflow (IPVS `ip_vs_ovf.c`).
//!
//! Skips destinations that are OVERLOAD, have weight 0, or have more active connections than
//! their weight; takes the highest weight, the first winning ties.

use std::sync::Arc;

use crate::walk::highest_weight;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Weighted overflow.
#[derive(Debug, Clone, Copy)]
pub struct Overflow;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(Overflow))
}

impl Scheduler for Overflow {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        highest_weight(dests, |d| d.active_conns() <= d.weight())
    }

    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(Overflow))
    }
}
