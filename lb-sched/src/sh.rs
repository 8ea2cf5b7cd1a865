//! `sh`: source hashing (IPVS `ip_vs_sh.c`, current kernels).
//!
//! A table of T = 2^bits buckets (default 2^8) is filled walking the buckets and the destination
//! list together, wrapping round the list: a destination keeps receiving buckets until it has
//! `weight` of them (a weight-0 destination still gets one); if the weights add up to more than
//! T, the last destinations get none. The bucket of a flow is
//! `hash_32(port + fold(src), bits)`, with `port` = the source port under `sh-port` (SCHED2)
//! and 0 otherwise. A destination with weight 0 or OVERLOAD is unavailable: without
//! `sh-fallback` (SCHED1) the pick fails; with it, probe k = 0..T-1 looks at bucket
//! `(2H + k) mod T` (H the first bucket), stopping at an empty one.

use std::sync::Arc;

use crate::flow::fold_addr;
use crate::hash::hash_32;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, SchedFlags, Scheduler};

/// Default table bits (`CONFIG_IP_VS_SH_TAB_BITS`).
pub const DEFAULT_TAB_BITS: u8 = 8;

const EMPTY: u32 = u32::MAX;

/// Source hashing.
#[derive(Debug)]
pub struct SourceHash {
    bits: u32,
    flags: SchedFlags,
    table: Box<[u32]>,
}

/// Registry constructor: rejects table bits outside IPVS's Kconfig range 4..=20.
pub fn build(cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    let bits = u32::from(cfg.sh_table_bits);
    if !(4..=20).contains(&bits) {
        return Err(SchedError::BadTableSize { sched: "sh", size: bits.into(), why: "table bits must be 4..=20" });
    }
    Ok(Box::new(SourceHash { bits, flags: cfg.flags, table: fill(bits, dests) }))
}

/// The bucket table: `table[b]` is an index into `dests`, or `u32::MAX` when the list is empty.
pub(crate) fn fill(bits: u32, dests: &[Arc<Destination>]) -> Box<[u32]> {
    let size = 1usize << bits;
    if dests.is_empty() {
        return vec![EMPTY; size].into_boxed_slice();
    }
    let mut table = Vec::with_capacity(size);
    let (mut p, mut count) = (0usize, 0u64);
    for _ in 0..size {
        table.push(p as u32);
        count += 1;
        if count >= u64::from(dests[p].weight()) {
            p = (p + 1) % dests.len();
            count = 0;
        }
    }
    table.into_boxed_slice()
}

impl SourceHash {
    /// The primary bucket of `flow`.
    #[inline]
    pub(crate) fn bucket(&self, flow: &Flow) -> u32 {
        let port = if self.flags.port() && flow.proto.has_ports() { flow.src_port } else { 0 };
        hash_32(u32::from(port).wrapping_add(fold_addr(&flow.src)), self.bits)
    }
}

impl Scheduler for SourceHash {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn pick(&self, dests: &[Arc<Destination>], flow: &Flow) -> Option<usize> {
        let mask = (1u32 << self.bits) - 1;
        let h = self.bucket(flow);
        let get = |b: u32| -> Option<usize> {
            let i = *self.table.get(b as usize)?;
            if i == EMPTY {
                None
            } else {
                Some(i as usize)
            }
        };
        let first = get(h)?;
        if dests.get(first)?.is_eligible() {
            return Some(first);
        }
        if !self.flags.fallback() {
            return None;
        }
        for k in 0..=mask {
            let i = get(k.wrapping_add(h.wrapping_mul(2)) & mask)?;
            if dests.get(i)?.is_eligible() {
                return Some(i);
            }
        }
        None
    }

    fn rebuild(&self, dests: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(SourceHash { bits: self.bits, flags: self.flags, table: fill(self.bits, dests) }))
    }

    fn lookup_table(&self) -> Option<&[u32]> {
        Some(&self.table)
    }
}
