//! A lock shard's storage: the entry slab (chunks of entries and a free list), the in and out
//! indexes, the timer queues (see `timers`), the embryonic list eviction draws from, and its
//! counters; and a family's array of shards.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;

use crate::entry::{Entry, NIL};
use crate::index::OpenIndex;
use crate::key::{Addr, Key};
use crate::lock::ShardLock;
use crate::tcp::ALL_STATES;
use crate::timers::WHEEL;

pub(crate) const CHUNK_BITS: u32 = 10;
pub(crate) const CHUNK: usize = 1 << CHUNK_BITS;

/// A chunk of the slab: a fixed-size array, so that a slot's place in it needs no bounds check.
pub(crate) type Chunk<A> = Box<[Entry<A>; CHUNK]>;

#[derive(Default, Clone, Copy)]
pub(crate) struct ShardStats {
    pub(crate) states: [u64; ALL_STATES],
    pub(crate) templates: u64,
    pub(crate) created: u64,
    pub(crate) expired: u64,
    pub(crate) evicted: u64,
    pub(crate) rescheduled: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

pub(crate) struct Shard<A> {
    pub(crate) chunks: Vec<Chunk<A>>,
    pub(crate) free: Vec<u32>,
    pub(crate) in_idx: OpenIndex,
    pub(crate) out_idx: OpenIndex,
    /// Heads of the wheel buckets' intrusive lists.
    pub(crate) wheel: Vec<u32>,
    /// The first tick whose bucket has not been taken apart yet: every entry due before it is
    /// either expired or in `near`.
    pub(crate) wheel_tick: u64,
    /// Entries due within the ticks already taken apart, by deadline: `(deadline, slot, gen)`.
    /// Stale items (entry released or moved since) are recognised by `gen` and skipped.
    pub(crate) near: BinaryHeap<Reverse<(u64, u32, u32)>>,
    pub(crate) near_gen: u32,
    pub(crate) embryonic: Vec<u32>,
    /// Length at which `embryonic` is next compacted (twice what survived the last compaction).
    pub(crate) embryonic_limit: usize,
    pub(crate) live: usize,
    pub(crate) stats: ShardStats,
}

impl<A: Addr> Shard<A> {
    pub(crate) fn new() -> Self {
        Shard {
            chunks: Vec::new(),
            free: Vec::new(),
            in_idx: OpenIndex::new(),
            out_idx: OpenIndex::new(),
            wheel: vec![NIL; WHEEL],
            wheel_tick: 0,
            near: BinaryHeap::new(),
            near_gen: 0,
            embryonic: Vec::new(),
            embryonic_limit: 64,
            live: 0,
            stats: ShardStats::default(),
        }
    }

    #[inline]
    pub(crate) fn entry(&self, slot: u32) -> &Entry<A> {
        &self.chunks[(slot >> CHUNK_BITS) as usize][slot as usize & (CHUNK - 1)]
    }

    #[inline]
    pub(crate) fn entry_mut(&mut self, slot: u32) -> &mut Entry<A> {
        &mut self.chunks[(slot >> CHUNK_BITS) as usize][slot as usize & (CHUNK - 1)]
    }

    #[inline]
    pub(crate) fn in_use(&self, slot: u32) -> bool {
        (slot as usize) < self.chunks.len() * CHUNK && self.entry(slot).dest.is_some()
    }

    pub(crate) fn alloc(&mut self, entry: Entry<A>) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = (self.chunks.len() * CHUNK) as u32;
                let chunk: Chunk<A> = vec![Entry::free(); CHUNK]
                    .into_boxed_slice()
                    .try_into()
                    .unwrap_or_else(|_| unreachable!("a chunk is CHUNK entries"));
                self.chunks.push(chunk);
                // Push the rest of the chunk, highest first, so slots are used in order.
                self.free.extend((s + 1..s + CHUNK as u32).rev());
                s
            }
        };
        *self.entry_mut(slot) = entry;
        self.live += 1;
        slot
    }

    /// Returns `slot` (whose entry the caller has already replaced by a free one) to the free
    /// list.
    #[inline]
    pub(crate) fn dealloc(&mut self, slot: u32) {
        self.free.push(slot);
        self.live -= 1;
    }

    #[inline]
    pub(crate) fn find_in(&self, h: u64, k: &Key<A>, template: bool) -> Option<u32> {
        self.in_idx.find(h, |s| {
            let e = self.entry(s);
            e.cport == k.cport
                && e.caddr == k.caddr
                && e.vport == k.vport
                && e.vaddr == k.vaddr
                && e.proto == k.proto
                && e.is_template() == template
                && e.dest.is_some()
        })
    }

    /// Reads the home bucket of in-index hash `h` and, when it names a slot, that entry's key:
    /// the first loads a lookup of `h` makes (see [`crate::ConnTable::warm`]).
    #[inline]
    pub(crate) fn warm(&self, h: u64) -> u64 {
        let b = self.in_idx.touch(h);
        if b == 0 {
            return 0;
        }
        let e = self.entry((b as u32).wrapping_sub(1));
        b ^ u64::from(e.cport)
    }

    #[inline]
    pub(crate) fn find_out(&self, h: u64, proto: u8, caddr: A, cport: u16, daddr: IpAddr, dport: u16) -> Option<u32> {
        self.out_idx.find(h, |s| {
            let e = self.entry(s);
            e.cport == cport
                && e.caddr == caddr
                && e.proto == proto
                && !e.is_template()
                && e.dest.as_ref().is_some_and(|d| d.addr() == daddr && e.dport(d) == dport)
        })
    }
}

pub(crate) struct Family<A, L: ShardLock> {
    pub(crate) shards: Box<[L::Cell<Shard<A>>]>,
    pub(crate) bits: u32,
}

impl<A: Addr, L: ShardLock> Family<A, L> {
    pub(crate) fn new(n: usize) -> Self {
        Family { shards: (0..n).map(|_| L::cell(Shard::new())).collect(), bits: n.trailing_zeros() }
    }

    /// Shard `i`, held (locked, or borrowed from its one owner).
    #[inline]
    pub(crate) fn hold(&self, i: usize) -> L::Guard<'_, Shard<A>> {
        L::hold(&self.shards[i])
    }

    /// Shard `i`, if no one holds it.
    #[inline]
    pub(crate) fn try_hold(&self, i: usize) -> Option<L::Guard<'_, Shard<A>>> {
        L::try_hold(&self.shards[i])
    }

    #[inline]
    pub(crate) fn index_of(&self, hc: u64) -> usize {
        // The top `bits` bits of `hc` (none when `bits` is 0), without a branch.
        (hc >> 1 >> (63 - self.bits)) as usize
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lb_sched::{DestConfig, SchedConfig, Service};
    use std::sync::Arc;

    pub(crate) fn shard() -> Shard<u32> {
        Shard::new()
    }

    /// A live entry (its destination set) seen at `last_seen` ns with this timeout.
    pub(crate) fn entry(last_seen: u64, timeout_ms: u32) -> Entry<u32> {
        let svc = Service::new("rr", SchedConfig::default()).unwrap();
        let d = svc.add(DestConfig::new("10.0.0.1".parse().unwrap(), 80)).unwrap();
        Entry { last_seen, timeout_ms, dest: Some(Arc::clone(&d)), ..Entry::free() }
    }

    #[test]
    fn the_slab_hands_out_slots_in_order_and_reuses_freed_ones() {
        let mut sh = shard();
        let slots: Vec<u32> = (0..3).map(|i| sh.alloc(entry(i, 0))).collect();
        assert_eq!(slots, [0, 1, 2]);
        assert_eq!(sh.live, 3);
        assert_eq!(sh.entry(1).last_seen, 1);
        assert!(sh.in_use(2) && !sh.in_use(3) && !sh.in_use(CHUNK as u32 * 5));
        *sh.entry_mut(1) = Entry::free();
        sh.dealloc(1);
        assert_eq!(sh.live, 2);
        assert!(!sh.in_use(1));
        assert_eq!(sh.alloc(entry(7, 0)), 1, "a freed slot is used again first");
        assert_eq!(sh.entry(1).last_seen, 7);
        assert_eq!(sh.alloc(entry(8, 0)), 3);
    }

    #[test]
    fn the_slab_grows_by_whole_chunks() {
        let mut sh = shard();
        for i in 0..=CHUNK as u32 {
            assert_eq!(sh.alloc(entry(0, 0)), i);
        }
        assert_eq!(sh.chunks.len(), 2);
        assert_eq!(sh.live, CHUNK + 1);
        assert!(sh.in_use(CHUNK as u32) && !sh.in_use(CHUNK as u32 + 1));
    }
}
