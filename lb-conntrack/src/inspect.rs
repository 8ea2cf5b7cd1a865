//! Read-only views of the table: its configuration, size and shards, lookups that do not touch a
//! connection, iteration, counters and memory use.

use std::sync::atomic::Ordering::Relaxed;

use lb_sched::{Flow, ForwardMethod, Timestamp};

use crate::config::Config;
use crate::entry::{conn_info, Entry};
use crate::key::{key_of, sub_hash, Addr, FamilyKey, Key, KIND_IN, KIND_OUT};
use crate::lock::ShardLock;
use crate::shard::{Family, CHUNK};
use crate::table::ConnTable;
use crate::verdict::{ConnInfo, Stats};

impl<L: ShardLock> ConnTable<L> {
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Connections and templates held by this table and every partition that shares its bound
    /// (what `max_connections` limits).
    pub fn len(&self) -> usize {
        self.total.load(Relaxed)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lock shard that holds the connection of `flow` (a client → virtual service flow),
    /// which is also where its replies are looked up: shards are chosen by the client's address,
    /// port and protocol. `None` for a flow the table does not key (a protocol without ports, or
    /// addresses of two families).
    ///
    /// Every packet takes its shard's lock, so two threads whose flows share shards move those
    /// locks' cache lines between their cores on nearly every packet. A data plane that steers
    /// flows to workers by this (as a NIC's RSS steers them to queues), so that each worker owns
    /// a disjoint set of shards, keeps each lock in one core's cache. BENCHMARKS.md measures both.
    pub fn shard_of(&self, flow: &Flow) -> Option<usize> {
        match key_of(flow)? {
            FamilyKey::V4(k) => Some(self.v4.index_of(self.client_hash(k.proto, k.caddr, k.cport))),
            FamilyKey::V6(k) => Some(self.v6.index_of(self.client_hash(k.proto, k.caddr, k.cport))),
        }
    }

    /// The number of lock shards of each address family (a power of two, from
    /// [`Config::max_connections`]); [`ConnTable::shard_of`] is below it.
    pub fn shard_count(&self) -> usize {
        self.v4.shards.len()
    }

    /// The connection of a client → virtual service `flow` at time `now`, without touching it
    /// (for ICMP errors that quote a connection's packet, and for telling replies from
    /// requests). A connection past its deadline at `now` is not returned.
    pub fn lookup_in(&self, now: Timestamp, flow: &Flow) -> Option<ConnInfo> {
        #[inline]
        fn go<A: Addr, L: ShardLock>(t: &ConnTable<L>, fam: &Family<A, L>, k: Key<A>, now: u64) -> Option<ConnInfo> {
            let hc = t.client_hash(k.proto, k.caddr, k.cport);
            let sh = fam.hold(fam.index_of(hc));
            sh.find_in(sub_hash(hc, k.vaddr, k.vport, KIND_IN), &k, false)
                .filter(|&s| sh.entry(s).deadline() > now)
                .map(|s| conn_info(sh.entry(s), false, false))
        }
        match key_of(flow)? {
            FamilyKey::V4(k) => go(self, &self.v4, k, now.as_nanos()),
            FamilyKey::V6(k) => go(self, &self.v6, k, now.as_nanos()),
        }
    }

    /// The connection a real server → client `flow` belongs to at time `now`, without
    /// touching it.
    pub fn lookup_out(&self, now: Timestamp, flow: &Flow) -> Option<ConnInfo> {
        #[inline]
        fn go<A: Addr, L: ShardLock>(
            t: &ConnTable<L>,
            fam: &Family<A, L>,
            k: Key<A>,
            flow: &Flow,
            now: u64,
        ) -> Option<ConnInfo> {
            let hc = t.client_hash(k.proto, k.caddr, k.cport);
            let sh = fam.hold(fam.index_of(hc));
            let hout = sub_hash(hc, k.vaddr, k.vport, KIND_OUT);
            sh.find_out(hout, k.proto, k.caddr, k.cport, flow.src, flow.src_port)
                .or_else(|| {
                    sh.find_in(sub_hash(hc, k.vaddr, k.vport, KIND_IN), &k, false)
                        .filter(|&s| sh.entry(s).fwd() != ForwardMethod::Masq)
                })
                .filter(|&s| sh.entry(s).deadline() > now)
                .map(|s| conn_info(sh.entry(s), false, false))
        }
        match key_of(&flow.reversed())? {
            FamilyKey::V4(k) => go(self, &self.v4, k, flow, now.as_nanos()),
            FamilyKey::V6(k) => go(self, &self.v6, k, flow, now.as_nanos()),
        }
    }

    /// Calls `f` with every connection (templates excluded), shard by shard. Each shard is held
    /// while `f` sees its connections: `f` must not use this table (a locked table would wait
    /// on itself; a partition would find the shard already held, and panic).
    pub fn for_each(&self, mut f: impl FnMut(&ConnInfo)) {
        #[inline]
        fn go<A: Addr, L: ShardLock>(fam: &Family<A, L>, f: &mut dyn FnMut(&ConnInfo)) {
            for m in fam.shards.iter() {
                let sh = L::hold(m);
                for chunk in &sh.chunks {
                    for e in chunk.iter().filter(|e| e.dest.is_some() && !e.is_template()) {
                        f(&conn_info(e, false, false));
                    }
                }
            }
        }
        go(&self.v4, &mut f);
        go(&self.v6, &mut f);
    }

    /// The counters, summed over shards (this table's own: a partition's are its own).
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            refused: self.refused.load(Relaxed),
            not_scheduled: self.not_scheduled.load(Relaxed),
            no_destination: self.no_destination.load(Relaxed),
            dest_unavailable: self.dest_unavailable.load(Relaxed),
            one_packet: self.one_packet.load(Relaxed),
            ..Stats::default()
        };
        #[inline]
        fn go<A: Addr, L: ShardLock>(fam: &Family<A, L>, s: &mut Stats) {
            for m in fam.shards.iter() {
                let sh = L::hold(m);
                let t = &sh.stats;
                for (a, b) in s.states.iter_mut().zip(t.states) {
                    *a += b;
                }
                s.templates += t.templates;
                s.created += t.created;
                s.expired += t.expired;
                s.evicted += t.evicted;
                s.rescheduled += t.rescheduled;
                s.hits += t.hits;
                s.misses += t.misses;
            }
        }
        go(&self.v4, &mut s);
        go(&self.v6, &mut s);
        s.connections = s.states.iter().sum();
        s
    }

    /// Bytes the table holds (entry slabs, indexes, timer queues), for memory accounting.
    pub fn memory_bytes(&self) -> usize {
        #[inline]
        fn go<A: Addr, L: ShardLock>(fam: &Family<A, L>) -> usize {
            fam.shards
                .iter()
                .map(|m| {
                    let sh = L::hold(m);
                    sh.chunks.len() * CHUNK * std::mem::size_of::<Entry<A>>()
                        + sh.chunks.capacity() * std::mem::size_of::<crate::shard::Chunk<A>>()
                        + sh.free.capacity() * 4
                        + sh.in_idx.bytes()
                        + sh.out_idx.bytes()
                        + sh.wheel.capacity() * 4
                        + sh.embryonic.capacity() * 4
                })
                .sum()
        }
        go(&self.v4) + go(&self.v6)
    }
}

impl ConnTable {
    /// The size of one IPv4 and one IPv6 entry (a partition's are the same).
    pub fn entry_sizes() -> (usize, usize) {
        (std::mem::size_of::<Entry<u32>>(), std::mem::size_of::<Entry<u128>>())
    }
}
