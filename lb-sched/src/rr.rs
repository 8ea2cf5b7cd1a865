//! `rr`: round robin (IPVS `ip_vs_rr.c`).
//!
//! The cursor is a list position: 0 is the list head, `i + 1` the destination at index `i`.
//! A pick walks from the node after the cursor, wrapping round, and takes the first destination
//! with weight > 0 and no OVERLOAD; the walk ends after examining the cursor node itself, so a
//! sole available destination is picked again. The cursor is advanced with a compare-and-swap,
//! so concurrent picks are linearisable without a lock.

use std::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Acquire};
use std::sync::Arc;

use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Round robin.
#[derive(Debug)]
pub struct RoundRobin {
    cursor: AtomicUsize,
}

/// Registry constructor (`init_service`: the cursor starts at the list head).
pub fn build(_cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(RoundRobin { cursor: AtomicUsize::new(0) }))
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        let n = dests.len();
        if n == 0 {
            return None;
        }
        let mut c = self.cursor.load(Acquire);
        loop {
            let start = if c > n { 0 } else { c };
            // Positions start+1 ..= n, then 1 ..= start: every node once, the cursor node last.
            let found = (start + 1..=n).chain(1..=start).find(|&pos| dests[pos - 1].is_eligible())?;
            match self.cursor.compare_exchange_weak(c, found, AcqRel, Acquire) {
                Ok(_) => return Some(found - 1),
                Err(now) => c = now,
            }
        }
    }

    fn rebuild(&self, _dests: &[Arc<Destination>], change: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        let c = self.cursor.load(Acquire);
        let c = match change {
            // The new node goes in front of every other: the cursor node's position shifts.
            Change::Added { .. } if c > 0 => c + 1,
            Change::Added { .. } | Change::Edited { .. } => c,
            // The cursor on the removed node moves to its predecessor (possibly the head).
            Change::Removed { index } => {
                if c > index {
                    c - 1
                } else {
                    c
                }
            }
        };
        Ok(Box::new(RoundRobin { cursor: AtomicUsize::new(c) }))
    }
}
