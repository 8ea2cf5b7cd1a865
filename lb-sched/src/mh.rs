//! `mh`: Maglev hashing as IPVS does it (`ip_vs_mh.c`).
//!
//! * Table size M: one of [`PRIMES`] (`CONFIG_IP_VS_MH_TAB_INDEX` 8..=17 picks
//!   `PRIMES[index - 8]`; default index 12, M = 4093). More destinations than M are refused.
//! * Hash: `hsiphash(v)` where `v = offset + port + fold(addr)` (32-bit wrapping), SipHash-1-3
//!   with the fixed keys [`HASH1`] and [`HASH2`] (the 64-bit kernel's form).
//! * Permutation of a destination: `offset = H1(addr, port) mod M`,
//!   `skip = H2(addr, port) mod (M - 1) + 1`.
//! * Turns: with g the gcd of the positive `last_weight`s and
//!   `rshift = max(0, fls(max_last_weight / g) - TAB_BITS)` (TAB_BITS = index / 2),
//!   `turns = (last_weight / g) >> rshift`, or 1 if that is 0 and `last_weight != 0`.
//! * Populate: rounds over the list in IPVS order; a destination with 0 turns is skipped; each
//!   one claims `turns` placements in a row, each walking its permutation past occupied slots,
//!   until all M slots are filled. No positive `last_weight`: the table is empty.
//! * Lookup: slot `H1(fold(src) + port) mod M` (port = source port only with `mh-port`). Empty
//!   slot: none. Weight 0 or OVERLOAD: none, or with `mh-fallback` probe k = 0..M-1 at
//!   `H1` with offset `(k + slot) mod M`, stopping at an empty slot.
//!
//! Because the table is built from `last_weight`, quiescing a destination (weight 0) leaves the
//! table as it is: its slots become unavailable (or fall back).

use std::sync::Arc;

use crate::flow::fold_addr;
use crate::hash::{fls, gcd, hsiphash_u32};
use crate::{Change, Destination, Flow, SchedConfig, SchedError, SchedFlags, Scheduler};

/// The table sizes IPVS allows, indexed by `CONFIG_IP_VS_MH_TAB_INDEX - 8`.
pub const PRIMES: [u32; 10] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];

/// The default table size (index 12).
pub const DEFAULT_TABLE_SIZE: u32 = 4093;

/// SipHash key for the first hash (offsets and lookups).
pub const HASH1: [u64; 2] = [2_654_435_761, 2_654_435_761];
/// SipHash key for the second hash (skips).
pub const HASH2: [u64; 2] = [2_654_446_892, 2_654_446_892];

const EMPTY: u32 = u32::MAX;

/// IPVS Maglev hashing.
#[derive(Debug)]
pub struct MaglevIpvs {
    m: u32,
    tab_bits: u32,
    flags: SchedFlags,
    table: Box<[u32]>,
}

/// `hsiphash` of `offset + port + fold(addr)`.
#[inline]
pub(crate) fn hashkey(addr: &std::net::IpAddr, port: u16, key: [u64; 2], offset: u32) -> u32 {
    let v = offset.wrapping_add(u32::from(port)).wrapping_add(fold_addr(addr));
    hsiphash_u32(v, key)
}

/// Registry constructor.
pub fn build(cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    let index = PRIMES.iter().position(|&p| p == cfg.mh_table_size).ok_or(SchedError::BadTableSize {
        sched: "mh",
        size: cfg.mh_table_size.into(),
        why: "must be one of 251 509 1021 2039 4093 8191 16381 32749 65521 131071",
    })?;
    let tab_bits = (index as u32 + 8) / 2;
    let m = cfg.mh_table_size;
    Ok(Box::new(MaglevIpvs { m, tab_bits, flags: cfg.flags, table: populate(m, tab_bits, dests)? }))
}

/// The turns of each destination, in list order.
pub(crate) fn turns(tab_bits: u32, dests: &[Arc<Destination>]) -> Vec<u32> {
    let g = dests.iter().map(|d| u64::from(d.last_weight())).filter(|&w| w > 0).fold(0, gcd);
    if g == 0 {
        return vec![0; dests.len()];
    }
    let mw = dests.iter().map(|d| u64::from(d.last_weight())).max().unwrap_or(0) / g;
    let rshift = fls(mw as u32).saturating_sub(tab_bits);
    dests
        .iter()
        .map(|d| {
            let lw = u64::from(d.last_weight());
            match ((lw / g) >> rshift) as u32 {
                0 => u32::from(lw != 0),
                t => t,
            }
        })
        .collect()
}

/// Builds the lookup table: `table[slot]` is an index into `dests`, or `u32::MAX` for empty.
pub(crate) fn populate(m: u32, tab_bits: u32, dests: &[Arc<Destination>]) -> Result<Box<[u32]>, SchedError> {
    if dests.len() > m as usize {
        return Err(SchedError::TooManyDestinations { sched: "mh", count: dests.len(), table: m });
    }
    let mut table = vec![EMPTY; m as usize].into_boxed_slice();
    let turns = turns(tab_bits, dests);
    if turns.iter().all(|&t| t == 0) {
        return Ok(table);
    }
    let mut perm: Vec<(u32, u32)> = dests
        .iter()
        .map(|d| {
            let offset = hashkey(&d.addr(), d.port(), HASH1, 0) % m;
            let skip = hashkey(&d.addr(), d.port(), HASH2, 0) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut used = vec![0u64; (m as usize).div_ceil(64)];
    let mut filled = 0u32;
    loop {
        for (i, &t) in turns.iter().enumerate() {
            for _ in 0..t {
                let (ref mut pos, skip) = perm[i];
                while used[(*pos >> 6) as usize] & (1 << (*pos & 63)) != 0 {
                    *pos += skip;
                    if *pos >= m {
                        *pos -= m;
                    }
                }
                used[(*pos >> 6) as usize] |= 1 << (*pos & 63);
                table[*pos as usize] = i as u32;
                filled += 1;
                if filled == m {
                    return Ok(table);
                }
            }
        }
    }
}

impl MaglevIpvs {
    /// The lookup slot of `flow` with probe offset `offset`.
    #[inline]
    fn slot(&self, flow: &Flow, offset: u32) -> u32 {
        let port = if self.flags.port() && flow.proto.has_ports() { flow.src_port } else { 0 };
        hashkey(&flow.src, port, HASH1, offset) % self.m
    }
}

impl Scheduler for MaglevIpvs {
    fn name(&self) -> &'static str {
        "mh"
    }

    fn pick(&self, dests: &[Arc<Destination>], flow: &Flow) -> Option<usize> {
        let at = |slot: u32| -> Option<usize> {
            match self.table.get(slot as usize) {
                Some(&i) if i != EMPTY => Some(i as usize),
                _ => None,
            }
        };
        let ihash = self.slot(flow, 0);
        let first = at(ihash)?;
        if dests.get(first)?.is_eligible() {
            return Some(first);
        }
        if !self.flags.fallback() {
            return None;
        }
        for k in 0..self.m {
            let roffset = (k + ihash) % self.m;
            let i = at(self.slot(flow, roffset))?;
            if dests.get(i)?.is_eligible() {
                return Some(i);
            }
        }
        None
    }

    fn rebuild(&self, dests: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(MaglevIpvs {
            m: self.m,
            tab_bits: self.tab_bits,
            flags: self.flags,
            table: populate(self.m, self.tab_bits, dests)?,
        }))
    }

    fn lookup_table(&self) -> Option<&[u32]> {
        Some(&self.table)
    }
}
