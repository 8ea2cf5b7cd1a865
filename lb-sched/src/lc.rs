//! `lc`: least connections (IPVS `ip_vs_lc.c`).
//!
//! Skips OVERLOAD and weight-0 destinations and takes the least overhead
//! (`activeconns * 256 + inactconns`); strict `<`, so the first in list order wins ties.

use std::sync::Arc;

use crate::walk::least;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Least connections.
#[derive(Debug, Clone, Copy)]
pub struct LeastConn;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(LeastConn))
}

impl Scheduler for LeastConn {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        least(dests, Destination::overhead)
    }

    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(LeastConn))
    }
}
