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
///
/// The fill is the paper's, turn by turn, in the order of the module documentation; what is
/// optimised is only how a turn finds its destination's next free slot, never which slot that
/// is (`tests::populate_reference` is the plain build, and the tests hold the two equal):
///
/// * While more than 60 % of the slots are free, the destination walks its permutation over an
///   occupancy bitmap (no `%`: a conditional move a step): its first two probes checked
///   together without a branch, where most turns end, then one at a time.
/// * Then it walks four probes at a time, four interleaved walks checked without a branch
///   ([`walk4`]): the mispredicted branch that ends a walk comes once a turn, not every few
///   probes.
/// * The last `√(2M)` slots ([`Tail`]): a walk would cost `M / free` probes a turn (at M = 65537,
///   half of all probes fall in the last 400 turns), so the turn takes the listed free slot
///   nearest in its permutation instead, by arithmetic.
/// * Equal weights skip the Katran V2 credits ([`Equal`]).
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
    }
    let mut entries: Vec<Entry> = dests
        .iter()
        .enumerate()
        .filter(|(_, d)| d.weight() > 0)
        .map(|(i, d)| {
            let addr = d.addr();
            let (h1, h2) = identity_hashes(&addr, d.port());
            Entry {
                h1,
                h2,
                key: (addr16(&addr), d.port()),
                index: i as u32,
                weight: d.weight().into(),
                pos: (h1 % u64::from(m)) as u32,
                skip: (h2 % u64::from(m - 1)) as u32 + 1,
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
    // A walk starts one step after `pos`: the step before the offset, to begin with.
    let perm = |e: &Entry| Perm { pos: step(e.pos, m - e.skip, m), skip: e.skip, index: e.index };
    let fill = Fill::new(m, entries.iter().map(perm).collect());
    if entries.iter().all(|e| e.weight == max_w) {
        fill.run(Equal { next: 0, n: entries.len() }, &mut table);
    } else {
        let weight = entries.iter().map(|e| e.weight).collect();
        fill.run(Weighted { next: 0, weight, credit: vec![0; entries.len()], max: max_w }, &mut table);
    }
    Ok(table)
}

/// Whose turn it is, in the fill's order.
trait Turns {
    /// The next turn's destination (an index into the fill's destinations).
    fn next(&mut self) -> usize;
}

/// Equal weights: every credit would reach the maximum every round, so every destination takes
/// a turn every round, in order.
struct Equal {
    next: usize,
    n: usize,
}

impl Turns for Equal {
    #[inline(always)]
    fn next(&mut self) -> usize {
        let i = self.next;
        self.next = if i + 1 == self.n { 0 } else { i + 1 };
        i
    }
}

/// Katran V2: each visit, in order, adds a destination's weight to its credit; a credit that
/// reaches the maximum weight takes a turn and loses that much. The largest weight takes a turn
/// every round, so `next` always returns.
struct Weighted {
    next: usize,
    weight: Vec<u64>,
    credit: Vec<u64>,
    max: u64,
}

impl Turns for Weighted {
    #[inline(always)]
    fn next(&mut self) -> usize {
        loop {
            let i = self.next;
            self.next = if i + 1 == self.weight.len() { 0 } else { i + 1 };
            self.credit[i] += self.weight[i];
            if self.credit[i] >= self.max {
                self.credit[i] -= self.max;
                return i;
            }
        }
    }
}

/// A fill in progress: each destination's place in its permutation, and the occupancy bitmap.
struct Fill {
    m: u32,
    /// How many slots are free.
    free: u32,
    dests: Vec<Perm>,
    /// Occupancy, a bit a slot (8 KiB at M = 65537: it stays in L1 while the probes hop
    /// around). Its length is a power of two, `mask + 1`, so that an index masked with `mask`
    /// needs no bounds check.
    used: Vec<u64>,
    mask: usize,
}

/// A destination's permutation and where it is in it.
#[derive(Clone, Copy)]
struct Perm {
    /// The last slot it took (to begin with, the one before its offset in its permutation): its
    /// next slot is the first free one from `pos + skip` on.
    pos: u32,
    skip: u32,
    /// Its index in `dests`: what its slots hold.
    index: u32,
}

/// Whether `slot` is free in `used` (of length `mask + 1`).
#[inline(always)]
fn is_free(used: &[u64], mask: usize, slot: u32) -> bool {
    used[(slot >> 6) as usize & mask] & (1 << (slot & 63)) == 0
}

/// `(p + k) mod m` for `p, k < m`, without `%` and without overflow.
#[inline(always)]
fn step(p: u32, k: u32, m: u32) -> u32 {
    let back = m - k;
    // Which one is a coin toss: a conditional move, not a branch.
    core::hint::select_unpredictable(p >= back, p.wrapping_sub(back), p.wrapping_add(k))
}

impl Fill {
    fn new(m: u32, dests: Vec<Perm>) -> Self {
        let words = (m as usize).div_ceil(64).next_power_of_two();
        Fill { m, free: m, dests, used: vec![0; words], mask: words - 1 }
    }

    /// Fills every slot of `table`, turn by turn.
    fn run(mut self, mut turns: impl Turns, table: &mut [u32]) {
        let (m, mask) = (self.m, self.mask);
        // The three phases' bounds (measured at M = 65537: the build time is flat around them).
        let tail = (2 * u64::from(m)).isqrt() as u32;
        let four_from = (u64::from(m) * 3 / 5).max(tail.into()) as u32;
        while self.free > four_from {
            // Most slots free: most turns take their first or second probe (whichever, a coin
            // toss for the branch predictor: a conditional move).
            let d = &mut self.dests[turns.next()];
            let used = &mut self.used[..=mask];
            let a = step(d.pos, d.skip, m);
            let b = step(a, d.skip, m);
            let (fa, fb) = (is_free(used, mask, a), is_free(used, mask, b));
            let mut p = core::hint::select_unpredictable(fa, a, b);
            if u8::from(fa) | u8::from(fb) == 0 {
                p = step(b, d.skip, m);
                while !is_free(used, mask, p) {
                    p = step(p, d.skip, m);
                }
            }
            used[(p >> 6) as usize & mask] |= 1 << (p & 63);
            d.pos = p;
            table[p as usize] = d.index;
            self.free -= 1;
        }
        while self.free > tail {
            let d = &mut self.dests[turns.next()];
            let used = &mut self.used[..=mask];
            let p = walk4(used, mask, m, d.pos, d.skip);
            used[(p >> 6) as usize & mask] |= 1 << (p & 63);
            d.pos = p;
            table[p as usize] = d.index;
            self.free -= 1;
        }
        if self.free == 0 {
            return;
        }
        let mut tail = Tail::new(&self);
        while self.free > 0 {
            let i = turns.next();
            let p = tail.take_nearest(&self, i);
            self.used[(p >> 6) as usize & mask] |= 1 << (p & 63);
            let d = &mut self.dests[i];
            d.pos = p;
            table[p as usize] = d.index;
            self.free -= 1;
        }
    }

    /// Destination `i`'s next free slot, one probe at a time.
    fn walk(&self, i: usize) -> u32 {
        let (m, mask, d) = (self.m, self.mask, self.dests[i]);
        let used = &self.used[..=mask];
        let mut p = step(d.pos, d.skip, m);
        while !is_free(used, mask, p) {
            p = step(p, d.skip, m);
        }
        p
    }
}

/// The first free slot of the permutation `skip` after `p0`, four slots at a time: four
/// interleaved walks `4 · skip` apart, checked without a branch, then one branch for the four.
#[inline(always)]
fn walk4(used: &[u64], mask: usize, m: u32, p0: u32, skip: u32) -> u32 {
    let skip2 = step(skip, skip, m);
    let skip4 = step(skip2, skip2, m);
    let mut p = [step(p0, skip, m), step(p0, skip2, m), 0, 0];
    p[2] = step(p[0], skip2, m);
    p[3] = step(p[1], skip2, m);
    loop {
        let free = u32::from(is_free(used, mask, p[0]))
            | u32::from(is_free(used, mask, p[1])) << 1
            | u32::from(is_free(used, mask, p[2])) << 2
            | u32::from(is_free(used, mask, p[3])) << 3;
        if free != 0 {
            return p[free.trailing_zeros() as usize & 3];
        }
        p = p.map(|q| step(q, skip4, m));
    }
}

/// The end of a fill, when few slots are free: a turn takes the free slot nearest in its
/// permutation by arithmetic instead of walking. Slot `s` comes `(s − p) · skip⁻¹ mod m`
/// steps after the walk's first slot `p = pos + skip`, and the fewest steps is the slot a walk
/// would reach first (the permutation is a bijection, so the step counts are distinct).
struct Tail {
    /// The free slots, in no order.
    list: Vec<u32>,
    /// `skip⁻¹ mod m` per destination, computed when first needed (0: not yet;
    /// [`NO_INVERSE`]: none, when `m` is not prime).
    inv: Vec<u32>,
}

/// [`Tail::inv`] of a `skip` that has no inverse modulo `m` (`m` not prime: `populate` takes
/// any `m` through `internals`; such a destination walks).
const NO_INVERSE: u32 = u32::MAX;

/// Below this table size, and with at most `2^SMALL_INDEX_BITS` free slots,
/// [`Tail::take_nearest`] compares step counts by a single product each (see there).
const SMALL_TABLE: u32 = 1 << 20;
const SMALL_INDEX_BITS: u32 = 11;

impl Tail {
    fn new(fill: &Fill) -> Self {
        let mut list = Vec::with_capacity(fill.free as usize);
        for (w, &bits) in fill.used[..(fill.m as usize).div_ceil(64)].iter().enumerate() {
            let mut free = !bits;
            while free != 0 {
                let s = (w * 64) as u32 + free.trailing_zeros();
                if s < fill.m {
                    list.push(s);
                }
                free &= free - 1;
            }
        }
        Tail { list, inv: vec![0; fill.dests.len()] }
    }

    /// Destination `i`'s next free slot (the one [`Fill::walk`] finds), out of the list.
    fn take_nearest(&mut self, fill: &Fill, i: usize) -> u32 {
        let m = fill.m;
        if self.inv[i] == 0 {
            self.inv[i] = inverse(fill.dests[i].skip, m).unwrap_or(NO_INVERSE);
        }
        let inv = self.inv[i];
        if inv == NO_INVERSE {
            let slot = fill.walk(i);
            let at = self.list.iter().position(|&s| s == slot).expect("a free slot is listed");
            self.list.swap_remove(at);
            return slot;
        }
        let p = step(fill.dests[i].pos, fill.dests[i].skip, m);
        let at = if m < SMALL_TABLE && self.list.len() <= 1 << SMALL_INDEX_BITS {
            // Lemire's remainder: with c = ⌊2⁶⁴ / m⌋ + 1 and x < 2⁶⁴ / m, L = c · x mod 2⁶⁴
            // lies in [d · 2⁶⁴/m, d · 2⁶⁴/m + x) where d = x mod m, so L orders the slots as d
            // does. Here x = (s + m − p) · inv < 2m² < 2⁴¹ (m < 2²⁰): the intervals start more
            // than 2⁴⁴ apart and are shorter than 2⁴¹, so L's top 21 bits still order them,
            // and a 32-bit key has 11 bits left for the slot's place in the list. And
            // c · x mod 2⁶⁴ = (c · inv mod 2⁶⁴) · (s + m − p) mod 2⁶⁴: one product a slot.
            let c = (u64::MAX / u64::from(m) + 1).wrapping_mul(u64::from(inv));
            let back = m - p;
            let low = (1u32 << SMALL_INDEX_BITS) - 1;
            let keys = self.list.iter().enumerate().map(|(at, &s)| {
                let l = c.wrapping_mul(u64::from(s + back));
                ((l >> 32) as u32 & !low) | at as u32
            });
            keys.min().map(|k| (k & low) as usize)
        } else {
            let (inv, mm) = (u64::from(inv), u64::from(m));
            let barrett = ((1u128 << 64) / u128::from(m)) as u64;
            let keys = self.list.iter().enumerate().map(|(at, &s)| {
                // (s − p) mod m, without a branch: the borrow's sign selects m.
                let diff = i64::from(s) - i64::from(p);
                let ahead = (diff + ((diff >> 63) & mm as i64)) as u64;
                // d = ahead · inv mod m (Barrett: the quotient is exact or one short).
                let x = ahead * inv;
                let q = ((u128::from(x) * u128::from(barrett)) >> 64) as u64;
                let mut d = x - q * mm;
                if d >= mm {
                    d -= mm;
                }
                (d << 32) | at as u64
            });
            keys.min().map(|k| k as u32 as usize)
        };
        self.list.swap_remove(at.expect("a free slot is left"))
    }
}

/// `k⁻¹ mod m` (extended Euclid), if `k` and `m` are coprime.
fn inverse(k: u32, m: u32) -> Option<u32> {
    let (mut r0, mut r1) = (m, k);
    let (mut t0, mut t1) = (0i64, 1i64);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (t0, t1) = (t1, t0 - i64::from(q) * t1);
    }
    (r0 == 1).then(|| t0.rem_euclid(i64::from(m)) as u32)
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
        populate_reference_capped(m, dests, u64::MAX).expect("the reference build ends")
    }

    /// [`populate_reference`], giving up (`None`) after `cap` probes: when `m` is not prime a
    /// destination's permutation may not reach every slot, and its walk may never end.
    fn populate_reference_capped(
        m: u32,
        dests: &[Arc<Destination>],
        cap: u64,
    ) -> Option<Result<Box<[u32]>, SchedError>> {
        let mut probes = 0u64;
        if dests.len() > m as usize {
            return Some(Err(SchedError::TooManyDestinations { sched: "maglev", count: dests.len(), table: m }));
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
            0 => return Some(Ok(table)),
            1 => {
                table.fill(entries[0].index);
                return Some(Ok(table));
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
                    probes += 1;
                    if probes > cap {
                        return None;
                    }
                }
                used[(pos >> 6) as usize] |= 1 << (pos & 63);
                e.pos = pos;
                table[pos as usize] = e.index;
                filled += 1;
                if filled == m {
                    return Some(Ok(table));
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

    /// Tables of about 2²⁰ slots: the last turns' arithmetic has two forms, one below
    /// [`SMALL_TABLE`] and one from it on; both against the reference.
    #[test]
    fn populate_matches_the_reference_around_two_to_the_twenty() {
        let mut rng = Rng(13);
        let below = (0..SMALL_TABLE).rev().find(|&c| is_prime(c.into())).unwrap();
        let above = (SMALL_TABLE..).find(|&c| is_prime(c.into())).unwrap();
        for m in [below, above] {
            check(m, &dests(&mut rng, 700, |r, _| r.range(1, 3) as u32), "large M");
        }
    }

    /// `m` not prime (only reachable through `internals`): a permutation may miss slots, its
    /// skip has no inverse, and the last turns walk. Whenever the reference build ends, the
    /// same table.
    #[test]
    fn populate_matches_the_reference_for_composite_sizes() {
        let mut rng = Rng(17);
        let mut compared = 0;
        for _ in 0..600 {
            let m = [4u32, 6, 8, 9, 10, 12, 15, 16, 21, 25, 27, 35, 49, 64, 91, 100, 121, 221, 1001]
                [rng.range(0, 18) as usize];
            let n = rng.range(2, u64::from(m).min(40)) as usize;
            let ds = dests(&mut rng, n, |r, _| r.range(0, 3) as u32);
            // A build that ends takes fewer than m turns of fewer than m probes.
            if let Some(want) = populate_reference_capped(m, &ds, u64::from(m) * u64::from(m)) {
                let got = populate(m, &ds);
                assert_eq!(got.ok(), want.ok(), "M = {m}, N = {n}");
                compared += 1;
            }
        }
        assert!(compared > 100, "{compared}");
    }

    #[test]
    fn inverse_is_the_inverse() {
        for m in [2u32, 3, 7, 251, 65537, SMALL_TABLE + 7, u32::MAX - 4] {
            for k in [1, 2, 3, m / 2, m - 2, m - 1].into_iter().filter(|&k| k >= 1 && k < m) {
                if let Some(i) = inverse(k, m) {
                    assert_eq!(u64::from(k) * u64::from(i) % u64::from(m), 1, "{k} mod {m}");
                } else {
                    assert_ne!(crate::hash::gcd(k.into(), m.into()), 1, "{k} mod {m}");
                }
            }
        }
        assert_eq!(inverse(2, 4), None);
        assert_eq!(inverse(6, 9), None);
    }
}
