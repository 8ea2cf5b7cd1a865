//! `ring`: ketama consistent hashing (Karger et al., STOC'97; the `libketama` ring of
//! last.fm) with the ring-size and weight rules of Envoy's `RING_HASH` load balancer
//! (`source/extensions/load_balancing_policies/ring_hash/ring_hash_lb.cc`, and its
//! documentation "Ring hash" in `arch_overview/upstream/load_balancing/load_balancers`).
//!
//! What is implemented:
//!
//! * Only destinations with weight > 0 are placed. Their normalised weights are
//!   `nw_i = w_i / Σw`; with `m = min nw_i` and the minimum and maximum ring sizes `min`
//!   (default [`DEFAULT_MIN_RING_SIZE`], 1024) and `max` (default and limit
//!   [`DEFAULT_MAX_RING_SIZE`], 8M), Envoy's rule
//!   `scale = min(ceil(m * min) / m, max)` sets the number of virtual nodes: the least weighted
//!   destination gets a whole number of them (at least one, so a service of more destinations
//!   than `min` has one node for its lightest), and the ring never exceeds `max` entries.
//! * Envoy's running sums: walking the destinations, `target += scale * nw_i`, and destination
//!   `i` adds nodes `0, 1, ...` while `current < target` (`current` counting every node placed
//!   so far), so after a prefix of weight sum S, `ceil(scale * S / Σw)` nodes are placed. lbkit
//!   evaluates exactly that in integers (`scale * S / Σw` is `ceil(wmin * min / Σw) * S / wmin`,
//!   or `max * S / Σw` when capped), where Envoy's doubles can give a node more or less where a
//!   target is a whole number (1100 * 0.01 lands just above 11): with exact sums, removing one
//!   of N equal destinations leaves the others' node counts unchanged whenever the per-host count
//!   `ceil(min / N)` is. Envoy walks its host list; lbkit walks the destinations sorted by
//!   (address as 16 bytes, IPv4 mapped; port), so the ring depends only on the set of
//!   destinations and their weights, never on the order they were added.
//! * Node hash: Envoy hashes the text `"<host address>_<i>"` with xxHash64. lbkit hashes the same
//!   text (`"10.0.0.1:80_0"`, `"[2001:db8::1]:443_7"`: the address as Rust prints a socket
//!   address) with SipHash-1-3 under the fixed key [`NODE_KEY`] ([`node_hash`]). The ring is
//!   sorted by (hash, address, port).
//! * Lookup (ketama's `ketama_get_server`): the flow hash is maglev's `flow_hash` (the
//!   whole 5-tuple, fixed keys); the destination is the owner of the first node whose hash is
//!   ≥ the flow hash, wrapping to the first node past the end. The search is a binary search
//!   within one bucket of an index over the top `floor(log2(ring size))` hash bits (built with
//!   the ring, at most 4 bytes per node), about one node on average: the same answer as a
//!   binary search of the whole ring, in O(1) expected time.
//! * A node whose destination is ineligible at pick time (weight 0 before the rebuild of an
//!   edit is published, or OVERLOAD) is skipped: the walk goes on clockwise to the next node of
//!   an eligible destination, at most once round the ring; none: `None`. Since removing a
//!   destination removes exactly its nodes whenever the others' node counts do not change, an
//!   OVERLOADed destination's flows go where they would go were it removed.
//!
//! The registry's `ring` uses the default sizes; [`Ring::with_sizes`] builds other rings.
//! Every constant here is part of the stable behaviour.

use core::fmt::Write as _;
use core::hash::Hasher;
use std::net::SocketAddr;
use std::sync::Arc;

use siphasher::sip::SipHasher13;

use crate::hash::addr16;
use crate::maglev::flow_hash;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Envoy's default `minimum_ring_size`.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Envoy's default (and largest allowed) `maximum_ring_size`: 8M entries.
pub const DEFAULT_MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
/// SipHash-1-3 key of the node hashes.
pub const NODE_KEY: [u64; 2] = [0x6c62_6b69_742d_7269, 0x6e67_2d6e_6f64_6573];

/// A ketama ring: node hashes in ascending order and, beside them, each node's destination.
#[derive(Debug)]
pub struct Ring {
    min: u64,
    max: u64,
    hashes: Box<[u64]>,
    owners: Box<[u32]>,
    /// `index[b]`: the first node whose hash is ≥ `b << shift` (`index[2^k]` = ring size).
    index: Box<[u32]>,
    shift: u32,
}

/// The hash of virtual node `i` of the destination `addr:port`: SipHash-1-3 under [`NODE_KEY`]
/// of the text `"{addr:port}_{i}"` (IPv6 addresses in brackets).
pub fn node_hash(addr: std::net::IpAddr, port: u16, i: u64) -> u64 {
    let mut key = String::with_capacity(64);
    let _ = write!(key, "{}_{}", SocketAddr::new(addr, port), i);
    let mut h = SipHasher13::new_with_keys(NODE_KEY[0], NODE_KEY[1]);
    h.write(key.as_bytes());
    h.finish()
}

/// Registry constructor: Envoy's default sizes (1024 .. 8M entries).
pub fn build(_cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(Ring::with_sizes(DEFAULT_MIN_RING_SIZE, DEFAULT_MAX_RING_SIZE, dests)?))
}

impl Ring {
    /// The ring for `dests` with minimum size `min` and maximum size `max`
    /// (`1 <= min <= max <= 8M`, Envoy's limits).
    pub fn with_sizes(min: u64, max: u64, dests: &[Arc<Destination>]) -> Result<Self, SchedError> {
        if max == 0 || max > DEFAULT_MAX_RING_SIZE {
            return Err(SchedError::BadTableSize { sched: "ring", size: max, why: "maximum ring size must be 1..=8M" });
        }
        if min == 0 || min > max {
            return Err(SchedError::BadTableSize {
                sched: "ring",
                size: min,
                why: "minimum ring size must be 1..=maximum ring size",
            });
        }
        if dests.len() > u32::MAX as usize {
            return Err(SchedError::TooManyDestinations { sched: "ring", count: dests.len(), table: u32::MAX });
        }
        let (hashes, owners) = populate(min, max, dests);
        let (index, shift) = bucket_index(&hashes);
        Ok(Ring { min, max, hashes, owners, index, shift })
    }

    /// The node hashes, ascending (for tools and tests).
    pub fn node_hashes(&self) -> &[u64] {
        &self.hashes
    }
}

/// A bucket index over the top `k = floor(log2(ring size))` bits of the hashes (at least 1), so
/// a lookup binary-searches one bucket (about one node) instead of the whole ring.
fn bucket_index(hashes: &[u64]) -> (Box<[u32]>, u32) {
    let k = (usize::BITS - 1 - hashes.len().max(2).leading_zeros()).max(1);
    let shift = 64 - k;
    let buckets = 1usize << k;
    let mut index = Vec::with_capacity(buckets + 1);
    let mut pos = 0;
    for b in 0..buckets as u64 {
        while pos < hashes.len() && hashes[pos] < b << shift {
            pos += 1;
        }
        index.push(pos as u32);
    }
    index.push(hashes.len() as u32);
    (index.into_boxed_slice(), shift)
}

/// Builds the ring: `(hashes ascending, owner of each node as an index into dests)`.
fn populate(min: u64, max: u64, dests: &[Arc<Destination>]) -> (Box<[u64]>, Box<[u32]>) {
    let mut hosts: Vec<(([u8; 16], u16), u32, u64)> = dests
        .iter()
        .enumerate()
        .filter(|(_, d)| d.weight() > 0)
        .map(|(i, d)| ((addr16(&d.addr()), d.port()), i as u32, u64::from(d.weight())))
        .collect();
    if hosts.is_empty() {
        return (Box::new([]), Box::new([]));
    }
    hosts.sort_unstable_by_key(|h| h.0);
    // scale * S / W nodes up to a prefix of weight sum S, in exact integers: uncapped,
    // scale = ceil(wmin * min / W) * W / wmin, so the target is c * S / wmin; capped, max * S / W.
    let total: u128 = hosts.iter().map(|h| u128::from(h.2)).sum();
    let wmin = u128::from(hosts.iter().map(|h| h.2).min().unwrap_or(1));
    let c = (wmin * u128::from(min)).div_ceil(total);
    let (num, den) = if c * total <= u128::from(max) * wmin { (c, wmin) } else { (u128::from(max), total) };
    // Nodes placed once the prefix sum is S: ceil(target), the running sums' `current`.
    let placed = |s: u128| (num * s).div_ceil(den) as u64;
    let mut nodes: Vec<(u64, ([u8; 16], u16), u32)> = Vec::with_capacity(placed(total) as usize);
    let mut prefix = 0u128;
    let mut text = String::with_capacity(64);
    for &(key, index, w) in &hosts {
        let d = &dests[index as usize];
        text.clear();
        let _ = write!(text, "{}_", SocketAddr::new(d.addr(), d.port()));
        let base = text.len();
        let start = placed(prefix);
        prefix += u128::from(w);
        for i in 0..placed(prefix) - start {
            text.truncate(base);
            let _ = write!(text, "{i}");
            let mut h = SipHasher13::new_with_keys(NODE_KEY[0], NODE_KEY[1]);
            h.write(text.as_bytes());
            nodes.push((h.finish(), key, index));
        }
    }
    nodes.sort_unstable_by_key(|n| (n.0, n.1));
    (nodes.iter().map(|n| n.0).collect(), nodes.iter().map(|n| n.2).collect())
}

impl Scheduler for Ring {
    fn name(&self) -> &'static str {
        "ring"
    }

    #[inline]
    fn pick(&self, dests: &[Arc<Destination>], flow: &Flow) -> Option<usize> {
        let len = self.hashes.len();
        if len == 0 {
            return None;
        }
        let h = flow_hash(flow);
        // The first node ≥ h is in h's bucket, or is the first node of the next one.
        let b = (h >> self.shift) as usize;
        let (lo, hi) = (*self.index.get(b)? as usize, *self.index.get(b + 1)? as usize);
        let mut pos = lo + self.hashes.get(lo..hi)?.partition_point(|&x| x < h);
        if pos == len {
            pos = 0;
        }
        for _ in 0..len {
            let i = *self.owners.get(pos)? as usize;
            if dests.get(i)?.is_eligible() {
                return Some(i);
            }
            pos += 1;
            if pos == len {
                pos = 0;
            }
        }
        None
    }

    fn rebuild(&self, dests: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(Ring::with_sizes(self.min, self.max, dests)?))
    }

    /// The owner of each node, in ring order (ascending node hash).
    fn lookup_table(&self) -> Option<&[u32]> {
        Some(&self.owners)
    }
}
