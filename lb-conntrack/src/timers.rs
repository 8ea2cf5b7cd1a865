//! A shard's timer queues: the wheel (intrusive lists through the entries, one per tick) and
//! the near heap (entries due within ticks already taken apart, by deadline).

use std::cmp::Reverse;
use std::ops::RangeInclusive;

use crate::entry::{NEAR, NIL, NOT_QUEUED};
use crate::key::Addr;
use crate::shard::Shard;

pub(crate) const TICK_SHIFT: u32 = 27; // ~134 ms
pub(crate) const WHEEL: usize = 8192; // a turn: ~18 minutes

#[inline]
pub(crate) fn tick_of(ns: u64) -> u64 {
    ns >> TICK_SHIFT
}

impl<A: Addr> Shard<A> {
    /// Takes `slot` off its wheel bucket or out of the near heap (whose item goes stale).
    #[inline]
    pub(crate) fn unlink(&mut self, slot: u32) {
        let (qt, p, n) = {
            let e = self.entry(slot);
            (e.queued_tick, e.prev, e.next)
        };
        if qt == NOT_QUEUED {
            return;
        }
        if qt != NEAR {
            if p == NIL {
                self.wheel[qt as usize % WHEEL] = n;
            } else {
                self.entry_mut(p).next = n;
            }
            if n != NIL {
                self.entry_mut(n).prev = p;
            }
        }
        let e = self.entry_mut(slot);
        e.queued_tick = NOT_QUEUED;
        e.prev = NIL;
        e.next = NIL;
    }

    /// Puts `slot` in the near heap at its deadline.
    #[inline]
    pub(crate) fn push_near(&mut self, slot: u32) {
        self.unlink(slot);
        self.near_gen = self.near_gen.wrapping_add(1);
        let g = self.near_gen;
        let e = self.entry_mut(slot);
        e.queued_tick = NEAR;
        e.prev = g;
        let d = e.deadline();
        self.near.push(Reverse((d, slot, g)));
    }

    /// Queues `slot` at its deadline: on the wheel bucket of the deadline's tick, or in the near
    /// heap if that tick's bucket has been taken apart already.
    #[inline]
    pub(crate) fn schedule(&mut self, slot: u32) {
        let t = tick_of(self.entry(slot).deadline());
        if t < self.wheel_tick {
            self.push_near(slot);
            return;
        }
        let t = t.min(NEAR - 1);
        if self.entry(slot).queued_tick == t {
            return;
        }
        self.unlink(slot);
        let b = t as usize % WHEEL;
        let head = self.wheel[b];
        if head != NIL {
            self.entry_mut(head).prev = slot;
        }
        let e = self.entry_mut(slot);
        e.queued_tick = t;
        e.prev = NIL;
        e.next = head;
        self.wheel[b] = slot;
    }

    /// Starts an expiry pass at tick `now_tick`: the ticks whose buckets are to be taken apart
    /// now (every tick that has begun since the last pass, at most one turn of the wheel; none
    /// if this tick's bucket was taken apart already). From then on, an entry due within those
    /// ticks is queued in the near heap ([`Shard::schedule`]).
    #[inline]
    pub(crate) fn begin_pass(&mut self, now_tick: u64) -> RangeInclusive<u64> {
        if now_tick < self.wheel_tick {
            return self.wheel_tick..=now_tick; // empty
        }
        let start = self.wheel_tick.max(now_tick.saturating_sub(WHEEL as u64 - 1));
        self.wheel_tick = now_tick + 1;
        start..=now_tick
    }

    /// Appends to `due`, in list order, the entries of tick `t`'s bucket queued at a tick up to
    /// `now_tick`; entries queued for a later turn of the wheel stay. Returns how many entries it
    /// looked at.
    pub(crate) fn collect_bucket(&self, t: u64, now_tick: u64, due: &mut Vec<u32>) -> u64 {
        let mut visited = 0;
        let mut cur = self.wheel[t as usize % WHEEL];
        while cur != NIL {
            visited += 1;
            let e = self.entry(cur);
            if e.queued_tick <= now_tick {
                due.push(cur);
            }
            cur = e.next;
        }
        visited
    }

    /// Takes every item due by `now` out of the near heap, earliest deadline first, appending
    /// `(slot, generation)` to `due`. Stale items are included: [`Shard::is_near`] tells them.
    pub(crate) fn take_near_due(&mut self, now: u64, due: &mut Vec<(u32, u32)>) {
        while let Some(&Reverse((d, slot, g))) = self.near.peek() {
            if d > now {
                break;
            }
            self.near.pop();
            due.push((slot, g));
        }
    }

    /// Whether `slot` still waits in the near heap under the item of generation `g`.
    #[inline]
    pub(crate) fn is_near(&self, slot: u32, g: u32) -> bool {
        self.in_use(slot) && self.entry(slot).queued_tick == NEAR && self.entry(slot).prev == g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::tests::{entry, shard};

    const SEC: u64 = 1_000_000_000;

    /// A queued entry: the slot of its bucket's list, in list order.
    fn bucket(sh: &Shard<u32>, t: u64) -> Vec<u32> {
        let mut v = Vec::new();
        let mut cur = sh.wheel[t as usize % WHEEL];
        while cur != NIL {
            v.push(cur);
            cur = sh.entry(cur).next;
        }
        v
    }

    #[test]
    fn schedule_places_an_entry_at_its_deadline_tick() {
        let mut sh = shard();
        let a = sh.alloc(entry(10 * SEC, 5_000));
        let b = sh.alloc(entry(10 * SEC, 5_000));
        sh.schedule(a);
        sh.schedule(b);
        let t = tick_of(15 * SEC);
        assert_eq!(sh.entry(a).queued_tick, t);
        assert_eq!(bucket(&sh, t), [b, a], "the newest is the head");
        assert_eq!((sh.entry(b).prev, sh.entry(a).prev, sh.entry(a).next), (NIL, b, NIL));
        // A new timeout moves it; its old bucket's list is mended.
        sh.entry_mut(b).timeout_ms = 60_000;
        sh.schedule(b);
        assert_eq!(sh.entry(b).queued_tick, tick_of(70 * SEC));
        assert_eq!(bucket(&sh, t), [a]);
        assert_eq!(bucket(&sh, tick_of(70 * SEC)), [b]);
        assert_eq!(sh.entry(a).prev, NIL);
        // Once the deadline's tick has been taken apart, the near heap holds it instead.
        let _ = sh.begin_pass(t);
        sh.entry_mut(a).last_seen = 10 * SEC + 1;
        sh.schedule(a);
        assert_eq!(sh.entry(a).queued_tick, NEAR);
        assert!(bucket(&sh, t).is_empty());
        sh.unlink(a);
        assert_eq!(sh.entry(a).queued_tick, NOT_QUEUED);
    }

    #[test]
    fn a_pass_collects_what_is_due_and_leaves_later_turns() {
        let mut sh = shard();
        let at = |ticks: u64| entry(0, (ticks << TICK_SHIFT).div_ceil(1_000_000) as u32);
        let early = sh.alloc(at(5));
        let due = sh.alloc(at(7));
        let later_turn = sh.alloc(at(7 + WHEEL as u64));
        for s in [early, due, later_turn] {
            sh.schedule(s);
        }
        let ticks = sh.begin_pass(7);
        assert_eq!(ticks, 0..=7);
        let (mut got, mut visited) = (Vec::new(), 0);
        for t in ticks {
            visited += sh.collect_bucket(t, 7, &mut got);
        }
        assert_eq!(got, [early, due]);
        assert_eq!(visited, 3, "the later turn's entry shares tick 7's bucket");
        assert!(sh.begin_pass(7).is_empty(), "each tick is taken apart once");
        // After more than a turn, one turn of buckets is walked, ending at the current tick.
        let now = 10 + WHEEL as u64;
        assert_eq!(sh.begin_pass(now), 11..=now);
        let mut got = Vec::new();
        for t in 11..=now {
            sh.collect_bucket(t, now, &mut got);
        }
        assert_eq!(got, [early, later_turn, due], "bucket by bucket, each newest first");
    }

    #[test]
    fn the_near_heap_yields_by_deadline_and_tells_stale_items() {
        let mut sh = shard();
        let _ = sh.begin_pass(tick_of(100 * SEC));
        let slots: Vec<u32> = [30, 10, 20].iter().map(|&s| sh.alloc(entry(s * SEC, 0))).collect();
        for &s in &slots {
            sh.schedule(s);
            assert_eq!(sh.entry(s).queued_tick, NEAR);
        }
        // Re-queue the 20 s one at 25 s: its first item goes stale.
        let first_gen = sh.entry(slots[2]).prev;
        sh.entry_mut(slots[2]).last_seen = 25 * SEC;
        sh.push_near(slots[2]);
        let mut due = Vec::new();
        sh.take_near_due(20 * SEC, &mut due);
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), [slots[1], slots[2]]);
        assert!(sh.is_near(slots[1], due[0].1));
        assert!(!sh.is_near(slots[2], first_gen), "the re-queued entry's old item is stale");
        due.clear();
        sh.take_near_due(u64::MAX, &mut due);
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), [slots[2], slots[0]]);
        assert!(due.iter().all(|&(s, g)| sh.is_near(s, g)));
        assert!(sh.near.is_empty());
    }
}
