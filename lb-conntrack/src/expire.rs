//! Expiry: the passes [`ConnTable::expire`] makes over each shard's timer queues.

use lb_sched::Timestamp;

use crate::key::Addr;
use crate::lock::ShardLock;
use crate::shard::{Family, Shard};
use crate::table::ConnTable;
use crate::timers::tick_of;
use crate::verdict::ExpireStats;

/// Template timeout once it outlives its own while still controlling connections
/// (`ip_vs_conn_expire`: 60 s).
const CONTROL_GRACE_MS: u32 = 60_000;

impl<L: ShardLock> ConnTable<L> {
    /// Removes every connection and template idle past its timeout at `now`: the work is
    /// proportional to the queue entries due by `now`, not to the table's size. A template that
    /// still controls connections is kept 60 s more each time (IPVS).
    pub fn expire(&self, now: Timestamp) -> ExpireStats {
        let mut st = ExpireStats::default();
        let now = now.as_nanos();
        self.expire_fam(&self.v4, now, &mut st);
        self.expire_fam(&self.v6, now, &mut st);
        st
    }

    fn expire_fam<A: Addr>(&self, fam: &Family<A, L>, now: u64, st: &mut ExpireStats) {
        let now_tick = tick_of(now);
        let mut links = Vec::new();
        let mut bucket = Vec::new();
        let mut due = Vec::new();
        for m in fam.shards.iter() {
            let mut sh = L::hold(m);
            // Take apart the buckets of every tick that has begun: what is due goes, what is due
            // later in those ticks goes to the near heap, what was refreshed since it was queued
            // moves to its real deadline, and later turns of the wheel stay.
            for t in sh.begin_pass(now_tick) {
                bucket.clear();
                st.visited += sh.collect_bucket(t, now_tick, &mut bucket);
                for &slot in &bucket {
                    self.expire_one(&mut sh, slot, now, &mut links, st);
                }
            }
            // The near heap: only what is due. Taken out first, so that an entry queued again
            // within this pass (a template given its grace at the very end of time, whose new
            // deadline saturates to `now`) waits for the next pass instead of looping.
            due.clear();
            sh.take_near_due(now, &mut due);
            for &(slot, g) in &due {
                if !sh.is_near(slot, g) {
                    continue; // stale
                }
                st.visited += 1;
                self.expire_one(&mut sh, slot, now, &mut links, st);
            }
        }
        for l in links {
            self.drop_control(fam, l);
        }
    }

    /// Expires `slot` if it is due at `now` (a template that still controls connections gets 60
    /// more seconds); otherwise queues it at its deadline.
    fn expire_one<A: Addr>(&self, sh: &mut Shard<A>, slot: u32, now: u64, links: &mut Vec<u32>, st: &mut ExpireStats) {
        let (deadline, template, controls) = {
            let e = sh.entry(slot);
            (e.deadline(), e.is_template(), e.link)
        };
        if deadline > now {
            sh.schedule(slot);
        } else if template && controls > 0 {
            let e = sh.entry_mut(slot);
            e.timeout_ms = CONTROL_GRACE_MS;
            e.last_seen = now;
            sh.schedule(slot);
        } else {
            links.push(self.release(sh, slot));
            sh.stats.expired += 1;
            st.expired += 1;
        }
    }
}
