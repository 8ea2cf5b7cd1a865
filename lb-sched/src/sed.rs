//! `sed`: shortest expected delay (IPVS `ip_vs_sed.c`).
//!
//! wlc's walk with overhead `activeconns + 1`: inactive connections are ignored.

use std::sync::Arc;

use crate::wlc::weighted_least;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Shortest expected delay.
#[derive(Debug, Clone, Copy)]
pub struct ShortestExpectedDelay;

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(ShortestExpectedDelay))
}

/// sed's overhead: `activeconns + 1`.
#[inline]
pub(crate) fn sed_overhead(d: &Destination) -> u64 {
    u64::from(d.active_conns()) + 1
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
