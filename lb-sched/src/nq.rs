//! `nq`: never queue (IPVS `ip_vs_nq.c`).
//!
//! Skips OVERLOAD and weight-0 destinations; returns at once the first one with no active
//! connection; otherwise the sed rule (`(activeconns + 1)` weighted, first wins ties).

use std::sync::Arc;

use crate::walk::idle_or_weighted_least;
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
        idle_or_weighted_least(dests)
    }

    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(NeverQueue))
    }
}
