//! `maglev`: the Maglev paper's consistent hashing (Eisenbud et al., NSDI'16, §3.4) with
//! Katran's MaglevHashV2 weights, built so that several directors agree on every flow.
//!
//! * Table size M: any prime (default 65537, the paper's and Katran's).
//! * Only destinations with weight > 0 take part; a weight edit rebuilds the table.
//! * Each destination's identity (address as 16 bytes, IPv4 mapped; port big-endian) is hashed
//!   with SipHash-1-3 under two fixed keys ([`ID_KEY1`], [`ID_KEY2`]) into `h1`, `h2`:
//!   `offset = h1 mod M`, `skip = h2 mod (M - 1) + 1`. Destinations take turns in the order of
//!   `(h1, h2, address, port)`, so the table depends only on the *set* of destinations and their
//!   weights, never on the order they were added.
//! * Weights (MaglevHashV2): each round every destination adds its weight to an accumulator; when
//!   it reaches the maximum weight, the destination places one entry (its next free preferred
//!   slot) and the maximum is subtracted. Shares are proportional to the weights.
//! * Lookup: `slot = (flow_hash >> 32) * M >> 32` with `flow_hash`, a fixed folded-multiply
//!   hash over the whole 5-tuple.
//!   A destination with OVERLOAD (or weight 0 between an edit and its rebuild) is unavailable:
//!   the pick fails, or with the fallback flag (SCHED1) the next slots are probed in order.
//!
//! Every constant is fixed and part of the stable behaviour.

use core::hash::Hasher;
use std::sync::Arc;

use siphasher::sip::SipHasher13;

use crate::hash::{addr16, is_prime};
use crate::{fold_mul, Change, Destination, Flow, SchedConfig, SchedError, SchedFlags, Scheduler};

/// The default table size.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;

/// SipHash-1-3 key for a destination's `h1` (offset, and order).
pub const ID_KEY1: [u64; 2] = [0x6c62_6b69_742d_6d61, 0x676c_6576_2d6f_6666];
/// SipHash-1-3 key for a destination's `h2` (skip).
pub const ID_KEY2: [u64; 2] = [0x6c62_6b69_742d_6d61, 0x676c_6576_2d73_6b70];

const EMPTY: u32 = u32::MAX;

/// Paper Maglev with Katran V2 weights.
#[derive(Debug)]
pub struct Maglev {
    m: u32,
    flags: SchedFlags,
    table: Box<[u32]>,
}

/// A destination identity's two hashes `(h1, h2)`.
pub(crate) fn identity_hashes(addr: &std::net::IpAddr, port: u16) -> (u64, u64) {
    let mut bytes = [0u8; 18];
    bytes[..16].copy_from_slice(&addr16(addr));
    bytes[16..].copy_from_slice(&port.to_be_bytes());
    let h = |k: [u64; 2]| {
        let mut s = SipHasher13::new_with_keys(k[0], k[1]);
        s.write(&bytes);
        s.finish()
    };
    (h(ID_KEY1), h(ID_KEY2))
}

const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xBF58_476D_1CE4_E5B9;
const K2: u64 = 0x94D0_49BB_1331_11EB;

/// The flow hash `maglev` looks up with: a fixed folded-multiply hash of protocol, both
/// addresses and both ports. Addresses are taken as two big-endian 64-bit words (IPv4: high word
/// 0, low word the address).
#[inline]
pub(crate) fn flow_hash(f: &Flow) -> u64 {
    #[inline]
    fn words(a: &std::net::IpAddr) -> (u64, u64) {
        match a {
            std::net::IpAddr::V4(v4) => (0, u64::from(u32::from(*v4))),
            std::net::IpAddr::V6(v6) => {
                let x = u128::from(*v6);
                ((x >> 64) as u64, x as u64)
            }
        }
    }
    let (s_hi, s_lo) = words(&f.src);
    let (d_hi, d_lo) = words(&f.dst);
    let ports = (u64::from(f.src_port) << 32) | (u64::from(f.dst_port) << 16) | u64::from(f.proto.number());
    let a = fold_mul(s_lo ^ K0, d_lo ^ K1);
    let b = fold_mul(s_hi ^ d_hi.rotate_left(32) ^ K2, ports ^ K0);
    fold_mul(a ^ K1, b ^ K2)
}

/// Registry constructor: the table size must be a prime of at least 3.
pub fn build(cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    let m = cfg.maglev_table_size;
    if m < 3 || !is_prime(m.into()) {
        return Err(SchedError::BadTableSize { sched: "maglev", size: m.into(), why: "must be a prime >= 3" });
    }
    Ok(Box::new(Maglev { m, flags: cfg.flags, table: populate(m, dests)? }))
}

/// Builds the table: `table[slot]` is an index into `dests`, or `u32::MAX` for empty (only when
/// no destination has a positive weight).
pub(crate) fn populate(m: u32, dests: &[Arc<Destination>]) -> Result<Box<[u32]>, SchedError> {
    if dests.len() > m as usize {
        return Err(SchedError::TooManyDestinations { sched: "maglev", count: dests.len(), table: m });
    }
    struct Entry {
        h1: u64,
        h2: u64,
        key: ([u8; 16], u16),
        index: u32,
        weight: u64,
        pos: u32,
        skip: u32,
        cum: u64,
    }
    let mut entries: Vec<Entry> = dests
        .iter()
        .enumerate()
        .filter(|(_, d)| d.weight() > 0)
        .map(|(i, d)| {
            let (h1, h2) = identity_hashes(&d.addr(), d.port());
            Entry {
                h1,
                h2,
                key: (addr16(&d.addr()), d.port()),
                index: i as u32,
                weight: d.weight().into(),
                pos: (h1 % u64::from(m)) as u32,
                skip: (h2 % u64::from(m - 1)) as u32 + 1,
                cum: 0,
            }
        })
        .collect();
    entries.sort_unstable_by_key(|e| (e.h1, e.h2, e.key));
    let mut table = vec![EMPTY; m as usize].into_boxed_slice();
    match entries.len() {
        0 => return Ok(table),
        1 => {
            table.fill(entries[0].index);
            return Ok(table);
        }
        _ => {}
    }
    let max_w = entries.iter().map(|e| e.weight).max().unwrap_or(1);
    // Occupancy as a bitmap (8 KiB at M = 65537: it stays in L1 while the probes hop around).
    let mut used = vec![0u64; (m as usize).div_ceil(64)];
    let mut filled = 0u32;
    loop {
        for e in entries.iter_mut() {
            e.cum += e.weight;
            if e.cum < max_w {
                continue;
            }
            e.cum -= max_w;
            let mut pos = e.pos;
            while used[(pos >> 6) as usize] & (1 << (pos & 63)) != 0 {
                pos += e.skip;
                if pos >= m {
                    pos -= m;
                }
            }
            used[(pos >> 6) as usize] |= 1 << (pos & 63);
            e.pos = pos;
            table[pos as usize] = e.index;
            filled += 1;
            if filled == m {
                return Ok(table);
            }
        }
    }
}

impl Maglev {
    /// The slot of a flow hash.
    #[inline]
    pub(crate) fn slot(&self, hash: u64) -> u32 {
        (((hash >> 32) * u64::from(self.m)) >> 32) as u32
    }
}

impl Scheduler for Maglev {
    fn name(&self) -> &'static str {
        "maglev"
    }

    #[inline]
    fn pick(&self, dests: &[Arc<Destination>], flow: &Flow) -> Option<usize> {
        let slot = self.slot(flow_hash(flow));
        let i = *self.table.get(slot as usize)?;
        if i == EMPTY {
            return None;
        }
        if dests.get(i as usize)?.is_eligible() {
            return Some(i as usize);
        }
        if !self.flags.fallback() {
            return None;
        }
        (1..self.m)
            .map(|k| self.table[((slot + k) % self.m) as usize])
            .find_map(|j| (j != EMPTY && dests.get(j as usize).is_some_and(|d| d.is_eligible())).then_some(j as usize))
    }

    fn rebuild(&self, dests: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(Maglev { m: self.m, flags: self.flags, table: populate(self.m, dests)? }))
    }

    fn lookup_table(&self) -> Option<&[u32]> {
        Some(&self.table)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::{DestConfig, DestId};

    /// The table build as it was before it was optimised (kept verbatim): the paper's
    /// round-robin fill with Katran V2 weights, one probe at a time. The optimised [`populate`]
    /// must give the same table for every input.
    fn populate_reference(m: u32, dests: &[Arc<Destination>]) -> Result<Box<[u32]>, SchedError> {
        if dests.len() > m as usize {
            return Err(SchedError::TooManyDestinations { sched: "maglev", count: dests.len(), table: m });
        }
        struct Entry {
            h1: u64,
            h2: u64,
            key: ([u8; 16], u16),
            index: u32,
            weight: u64,
            pos: u32,
            skip: u32,
            cum: u64,
        }
        let mut entries: Vec<Entry> = dests
            .iter()
            .enumerate()
            .filter(|(_, d)| d.weight() > 0)
            .map(|(i, d)| {
                let (h1, h2) = identity_hashes(&d.addr(), d.port());
                Entry {
                    h1,
                    h2,
                    key: (addr16(&d.addr()), d.port()),
                    index: i as u32,
                    weight: d.weight().into(),
                    pos: (h1 % u64::from(m)) as u32,
                    skip: (h2 % u64::from(m - 1)) as u32 + 1,
                    cum: 0,
                }
            })
            .collect();
        entries.sort_unstable_by_key(|e| (e.h1, e.h2, e.key));
        let mut table = vec![EMPTY; m as usize].into_boxed_slice();
        match entries.len() {
            0 => return Ok(table),
            1 => {
                table.fill(entries[0].index);
                return Ok(table);
            }
            _ => {}
        }
        let max_w = entries.iter().map(|e| e.weight).max().unwrap_or(1);
        let mut used = vec![0u64; (m as usize).div_ceil(64)];
        let mut filled = 0u32;
        loop {
            for e in entries.iter_mut() {
                e.cum += e.weight;
                if e.cum < max_w {
                    continue;
                }
                e.cum -= max_w;
                let mut pos = e.pos;
                while used[(pos >> 6) as usize] & (1 << (pos & 63)) != 0 {
                    pos += e.skip;
                    if pos >= m {
                        pos -= m;
                    }
                }
                used[(pos >> 6) as usize] |= 1 << (pos & 63);
                e.pos = pos;
                table[pos as usize] = e.index;
                filled += 1;
                if filled == m {
                    return Ok(table);
                }
            }
        }
    }

    /// splitmix64: a small deterministic generator, so a failure names its case.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in `lo..=hi`.
        fn range(&mut self, lo: u64, hi: u64) -> u64 {
            lo + self.next() % (hi - lo + 1)
        }
    }

    /// `n` distinct destinations (IPv4 and IPv6, assorted ports), weights from `weight`.
    fn dests(rng: &mut Rng, n: usize, mut weight: impl FnMut(&mut Rng, usize) -> u32) -> Vec<Arc<Destination>> {
        let base = rng.next();
        (0..n)
            .map(|i| {
                let addr = if (base >> 7).is_multiple_of(3) {
                    IpAddr::V6(Ipv6Addr::from((u128::from(base) << 64) | i as u128))
                } else {
                    IpAddr::V4(Ipv4Addr::from((base as u32 & 0xff00_0000).wrapping_add(i as u32)))
                };
                let port = if base.is_multiple_of(2) { 80 } else { (base >> 16) as u16 ^ (i as u16) };
                let w = weight(rng, i);
                Arc::new(Destination::new(DestId(i as u32), &DestConfig::new(addr, port).weight(w)))
            })
            .collect()
    }

    fn check(m: u32, ds: &[Arc<Destination>], what: &str) {
        let got = populate(m, ds);
        let want = populate_reference(m, ds);
        match (got, want) {
            (Ok(got), Ok(want)) => {
                assert_eq!(got.len(), want.len(), "{what}: M = {m}, N = {}", ds.len());
                if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                    panic!("{what}: M = {m}, N = {}: slot {i} is {} instead of {}", ds.len(), got[i], want[i]);
                }
            }
            (Err(got), Err(want)) => assert_eq!(got.to_string(), want.to_string(), "{what}"),
            (got, want) => panic!("{what}: M = {m}, N = {}: {:?} vs {:?}", ds.len(), got.is_ok(), want.is_ok()),
        }
    }

    const PRIMES: &[u32] = &[3, 5, 7, 11, 13, 31, 97, 251, 509, 1021, 4093, 8191, 65521, 65537];

    /// Many random (M, N, weights): equal weights (any value), unequal, with zeros, all zero,
    /// huge, N = 1, N = M and N just below M. Identical tables.
    #[test]
    fn populate_matches_the_reference_build() {
        let mut rng = Rng(0x6d61_676c_6576);
        for case in 0..400u32 {
            let m = if case % 5 == 4 {
                // A random prime up to 20 000.
                loop {
                    let c = rng.range(3, 20_000) as u32;
                    if is_prime(c.into()) {
                        break c;
                    }
                }
            } else {
                PRIMES[rng.range(0, PRIMES.len() as u64 - 1) as usize]
            };
            // Large tables are slow in the reference build at opt-level 1: fewer of them.
            if m > 20_000 && case % 4 != 0 {
                continue;
            }
            let n = match rng.range(0, 7) {
                0 => 1,
                1 => m as usize,
                2 => (m as usize).saturating_sub(rng.range(1, 3) as usize).max(1),
                3 => rng.range(2, 10) as usize,
                4 => rng.range(1, u64::from(m).min(1200)) as usize,
                5 => (m as usize / 2).max(1),
                _ => rng.range(1, u64::from(m).min(100)) as usize,
            };
            let kind = rng.range(0, 6);
            let w0 = rng.range(1, 1000) as u32;
            let ds = dests(&mut rng, n, |r, _| match kind {
                0 => 1,
                1 => w0,
                2 => r.range(1, 4) as u32,
                3 => r.range(0, 3) as u32,
                4 => u32::from(r.range(0, 9) != 0) * w0,
                5 => r.range(1, u64::from(u32::MAX)) as u32,
                _ => r.range(0, 100) as u32,
            });
            check(m, &ds, &format!("case {case} (weights kind {kind})"));
        }
    }

    #[test]
    fn populate_matches_the_reference_at_the_edges() {
        let mut rng = Rng(7);
        for m in [3u32, 5, 7, 251, 4093, 65537] {
            // No destination, all weight 0, one, one with weight 0 beside one with weight.
            check(m, &[], "empty");
            check(m, &dests(&mut rng, 3.min(m as usize), |_, _| 0), "all zero");
            check(m, &dests(&mut rng, 1, |_, _| 5), "one");
            check(m, &dests(&mut rng, 2, |_, i| i as u32), "one of two weighted");
            // N = M and N = M - 1 (one slot each, the last probes walk nearly the whole table),
            // and more destinations than slots: refused.
            check(m, &dests(&mut rng, m as usize, |_, _| 1), "N = M");
            check(m, &dests(&mut rng, m as usize - 1, |r, _| r.range(1, 2) as u32), "N = M - 1");
            check(m, &dests(&mut rng, m as usize + 1, |_, _| 1), "too many");
            // One heavy destination among light ones, and the reverse.
            check(m, &dests(&mut rng, 50.min(m as usize), |_, i| if i == 0 { 1000 } else { 1 }), "one heavy");
            check(m, &dests(&mut rng, 50.min(m as usize), |_, i| if i == 0 { 1 } else { 1000 }), "one light");
        }
        // The benchmark's inputs: N = 100 and 1000 of weight 1 and of weights 1..=4.
        for m in [4093u32, 65537] {
            for n in [100usize, 1000] {
                check(m, &dests(&mut rng, n, |_, _| 1), "bench, equal");
                check(m, &dests(&mut rng, n, |_, i| 1 + (i % 4) as u32), "bench, 1..=4");
            }
        }
        // Every N at a small M, every weight kind.
        for m in [7u32, 13, 31] {
            for n in 1..=m as usize {
                check(m, &dests(&mut rng, n, |_, _| 1), "small, equal");
                check(m, &dests(&mut rng, n, |r, _| r.range(0, 3) as u32), "small, 0..=3");
            }
        }
    }

    /// The same identity twice (not reachable through a `Service`, which refuses it, but through
    /// `internals`): still the reference's table.
    #[test]
    fn populate_matches_the_reference_with_duplicate_identities() {
        let mut rng = Rng(11);
        for m in [7u32, 251, 4093] {
            let mut ds = dests(&mut rng, 20, |r, _| r.range(1, 3) as u32);
            let dup = ds.clone();
            ds.extend(dup);
            check(m, &ds, "duplicates");
        }
    }
}
