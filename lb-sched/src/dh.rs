//! `dh`: destination hashing (IPVS `ip_vs_dh.c`).
//!
//! 256 buckets, one per destination in list order, round robin; no weights. The bucket of a
//! flow is `hash_32(fold(dst), 8)`. The pick fails if the destination is not AVAILABLE, has
//! weight 0 or OVERLOAD; there is no fallback. IPVS has no `upd_dest` for dh: an edit leaves the
//! table as it is.

use std::sync::Arc;

use crate::flow::fold_addr;
use crate::hash::hash_32;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Table bits (`IP_VS_DH_TAB_BITS`, fixed at 8).
pub const TAB_BITS: u32 = 8;

const EMPTY: u32 = u32::MAX;

/// Destination hashing.
#[derive(Debug)]
pub struct DestHash {
    table: Box<[u32; 1 << TAB_BITS]>,
}

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(DestHash { table: fill(dests) }))
}

/// The bucket table: bucket `b` holds destination `b mod N` in list order.
pub(crate) fn fill(dests: &[Arc<Destination>]) -> Box<[u32; 1 << TAB_BITS]> {
    let mut t = Box::new([EMPTY; 1 << TAB_BITS]);
    if !dests.is_empty() {
        for (b, slot) in t.iter_mut().enumerate() {
            *slot = (b % dests.len()) as u32;
        }
    }
    t
}

/// The bucket of `flow`.
#[inline]
pub(crate) fn bucket(flow: &Flow) -> u32 {
    hash_32(fold_addr(&flow.dst), TAB_BITS)
}

impl Scheduler for DestHash {
    fn name(&self) -> &'static str {
        "dh"
    }

    fn pick(&self, dests: &[Arc<Destination>], flow: &Flow) -> Option<usize> {
        let i = self.table[bucket(flow) as usize];
        let d = dests.get(i as usize)?;
        (d.is_available() && d.is_eligible()).then_some(i as usize)
    }

    fn rebuild(&self, dests: &[Arc<Destination>], change: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        let table = match change {
            Change::Edited { .. } => self.table.clone(),
            Change::Added { .. } | Change::Removed { .. } => fill(dests),
        };
        Ok(Box::new(DestHash { table }))
    }

    fn lookup_table(&self) -> Option<&[u32]> {
        Some(&self.table[..])
    }
}
