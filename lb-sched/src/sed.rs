//! `sed`: shortest expected delay (IPVS `ip_vs_sed.c`).
//!
//! wlc's walk with overhead `activeconns + 1`: inactive connections are ignored.

use std::sync::Arc;

use crate::walk::{sed_overhead, weighted_least};
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Shortest expected delay.
#[derive(Debug, Clone, Copy)]
pub struct ShortestExpectedDelay;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(ShortestExpectedDelay))
}

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        weighted_least(dests, sed_overhead)
    }

    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(ShortestExpectedDelay))
    }
}
