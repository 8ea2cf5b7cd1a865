//! Room in the table: removing an entry, and the capacity policy (evict an embryonic
//! connection, or refuse) described on [`ConnTable`].

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use lb_sched::ForwardMethod;

use crate::config::EVICTION_PROBES;
use crate::entry::{Entry, F_INACTIVE, NO_LINK, SHARD_BITS_IN_LINK, SLOT_MASK_IN_LINK};
use crate::key::{addr_of, sub_hash, Addr, KIND_IN, KIND_OUT, KIND_TMPL};
use crate::lock::ShardLock;
use crate::shard::{Family, Shard};
use crate::table::ConnTable;

impl<L: ShardLock> ConnTable<L> {
    /// Removes a live entry: indexes, counters, destination binding. Returns the link of the
    /// template that controlled it (to be dropped once no shard lock is held) or `NO_LINK`.
    pub(crate) fn release<A: Addr>(&self, sh: &mut Shard<A>, slot: u32) -> u32 {
        sh.unlink(slot);
        let e = std::mem::replace(sh.entry_mut(slot), Entry::free());
        let Some(d) = e.dest.as_deref() else {
            // Not live: put back what was there (a free slot).
            *sh.entry_mut(slot) = e;
            return NO_LINK;
        };
        let hc = self.client_hash(e.proto, e.caddr, e.cport);
        let template = e.is_template();
        let kind = if template { KIND_TMPL } else { KIND_IN };
        sh.in_idx.remove(sub_hash(hc, e.vaddr, e.vport, kind), slot);
        if !template && e.fwd() == ForwardMethod::Masq {
            sh.out_idx.remove(sub_hash(hc, addr_of::<A>(d.addr()), e.dport(d), KIND_OUT), slot);
        }
        if template {
            d.unbind_template();
            sh.stats.templates -= 1;
        } else {
            d.unbind_conn(e.flags & F_INACTIVE == 0);
            sh.stats.states[e.state as usize] -= 1;
        }
        sh.dealloc(slot);
        self.total.fetch_sub(1, Relaxed);
        if template {
            NO_LINK
        } else {
            e.link
        }
    }

    /// Makes room for one more entry in shard `si` (locked as `sh`). `Some(link)` on success,
    /// with the controlling-template link of an evicted connection (or `NO_LINK`).
    pub(crate) fn reserve<A: Addr>(&self, fam: &Family<A, L>, sh: &mut Shard<A>, si: usize) -> Option<u32> {
        if self.total.fetch_add(1, Relaxed) < self.cfg.max_connections {
            return Some(NO_LINK);
        }
        self.total.fetch_sub(1, Relaxed);
        let mut evicted = self.evict_embryonic(sh);
        if evicted.is_none() {
            let n = fam.shards.len();
            for i in 1..=EVICTION_PROBES.min(n.saturating_sub(1)) {
                if let Some(mut other) = fam.try_hold((si + i) % n) {
                    evicted = self.evict_embryonic(&mut other);
                    if evicted.is_some() {
                        break;
                    }
                }
            }
        }
        let link = evicted?;
        self.total.fetch_add(1, Relaxed);
        // The evicted connection's template lives in some shard that may be `sh` itself.
        if link != NO_LINK && (link >> (32 - SHARD_BITS_IN_LINK)) as usize == si {
            let slot = link & SLOT_MASK_IN_LINK;
            if sh.in_use(slot) && sh.entry(slot).is_template() {
                let e = sh.entry_mut(slot);
                e.link = e.link.saturating_sub(1);
            }
            return Some(NO_LINK);
        }
        Some(link)
    }

    pub(crate) fn evict_embryonic<A: Addr>(&self, sh: &mut Shard<A>) -> Option<u32> {
        while let Some(slot) = sh.embryonic.pop() {
            if sh.in_use(slot) && !sh.entry(slot).is_template() && sh.entry(slot).state().is_embryonic() {
                sh.stats.evicted += 1;
                return Some(self.release(sh, slot));
            }
        }
        None
    }
}

impl<L: ShardLock> Drop for ConnTable<L> {
    /// Gives back what the table holds, as if each entry were removed: its room in the bound
    /// (which a table shares with its partitions) and its count at its destination (so a
    /// partition a worker drops leaves lc / wlc and the other partitions' room exact).
    fn drop(&mut self) {
        fn go<A: Addr, L: ShardLock>(fam: &Family<A, L>, total: &AtomicUsize) {
            for m in fam.shards.iter() {
                let sh = L::hold(m);
                for e in sh.chunks.iter().flat_map(|c| c.iter()) {
                    let Some(d) = e.dest.as_deref() else { continue };
                    if e.is_template() {
                        d.unbind_template();
                    } else {
                        d.unbind_conn(e.flags & F_INACTIVE == 0);
                    }
                    total.fetch_sub(1, Relaxed);
                }
            }
        }
        go(&self.v4, &self.total);
        go(&self.v6, &self.total);
    }
}
