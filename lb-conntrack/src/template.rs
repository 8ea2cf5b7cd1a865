//! Persistence templates: finding or creating a client's template, and the count of the
//! connections each controls.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use lb_sched::{Destination, Flow, Service};

use crate::config::{Persistence, ServiceParams};
use crate::entry::{link_of, Entry, F_TEMPLATE, NIL, NOT_QUEUED, NO_LINK, SHARD_BITS_IN_LINK, SLOT_MASK_IN_LINK};
use crate::key::{sub_hash, Addr, Key, KIND_TMPL};
use crate::lock::ShardLock;
use crate::shard::Family;
use crate::table::{millis, ConnTable};
use crate::tcp::State;
use crate::verdict::InVerdict;

impl<L: ShardLock> ConnTable<L> {
    /// The destination of a persistent service's new connection (`ip_vs_sched_persist`), and
    /// the link to the template that will control it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn persistent_dest<A: Addr>(
        &self,
        fam: &Family<A, L>,
        now: u64,
        k: &Key<A>,
        flow: &Flow,
        svc: &Service,
        params: &ServiceParams,
        p: Persistence,
    ) -> Result<(Arc<Destination>, u32), InVerdict> {
        let tk = if params.catch_all {
            Key { proto: 0, caddr: k.caddr.masked(p.v4_prefix, p.v6_prefix), cport: 0, vaddr: A::default(), vport: 0 }
        } else {
            Key {
                proto: k.proto,
                caddr: k.caddr.masked(p.v4_prefix, p.v6_prefix),
                cport: 0,
                vaddr: k.vaddr,
                vport: k.vport,
            }
        };
        let hct = self.client_hash(tk.proto, tk.caddr, 0);
        let ht = sub_hash(hct, tk.vaddr, tk.vport, KIND_TMPL);
        let ti = fam.index_of(hct);
        let mut sh = fam.hold(ti);
        if let Some(slot) = sh.find_in(ht, &tk, true) {
            let ok = sh
                .entry(slot)
                .dest
                .as_deref()
                .is_some_and(|d| d.is_available() && !(self.cfg.expire_quiescent_template && d.weight() == 0));
            if ok {
                let e = sh.entry_mut(slot);
                e.link = e.link.saturating_add(1);
                e.last_seen = e.last_seen.max(now);
                let d = e.dest.clone();
                if let Some(d) = d {
                    return Ok((d, link_of(ti, slot)));
                }
            } else {
                // ip_vs_check_template: neutralise it (vport 0xffff) so a new one can be made;
                // it lives on, unused, until it expires.
                sh.in_idx.remove(ht, slot);
                sh.entry_mut(slot).vport = 0xffff;
                sh.in_idx.insert(sub_hash(hct, tk.vaddr, 0xffff, KIND_TMPL), slot);
            }
        }
        let Some(d) = svc.pick(flow) else {
            self.no_destination.fetch_add(1, Relaxed);
            return Err(InVerdict::NoDestination);
        };
        let Some(evicted) = self.reserve(fam, &mut sh, ti) else {
            self.refused.fetch_add(1, Relaxed);
            return Err(InVerdict::Refused);
        };
        d.bind_template();
        let slot = sh.alloc(Entry {
            caddr: tk.caddr,
            vaddr: tk.vaddr,
            last_seen: now,
            dest: Some(Arc::clone(&d)),
            cport: 0,
            vport: tk.vport,
            queued_tick: NOT_QUEUED,
            prev: NIL,
            next: NIL,
            link: 1,
            timeout_ms: millis(p.timeout),
            proto: tk.proto,
            state: State::None,
            flags: F_TEMPLATE | d.fwd() as u8,
        });
        sh.stats.templates += 1;
        sh.in_idx.insert(ht, slot);
        sh.schedule(slot);
        drop(sh);
        self.drop_control(fam, evicted);
        Ok((d, link_of(ti, slot)))
    }

    /// One fewer connection controlled by the template at `link`.
    pub(crate) fn drop_control<A: Addr>(&self, fam: &Family<A, L>, link: u32) {
        if link == NO_LINK {
            return;
        }
        let si = (link >> (32 - SHARD_BITS_IN_LINK)) as usize;
        let slot = link & SLOT_MASK_IN_LINK;
        if let Some(m) = fam.shards.get(si) {
            let mut sh = L::hold(m);
            if sh.in_use(slot) && sh.entry(slot).is_template() {
                let e = sh.entry_mut(slot);
                e.link = e.link.saturating_sub(1);
            }
        }
    }
}
