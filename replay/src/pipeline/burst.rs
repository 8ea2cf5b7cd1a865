//! Bursts: up to [`BURST`] frames through a worker at once. When the connection table is large
//! (from [`Worker::warm_from`] connections), every frame of a burst is parsed and classified
//! first, and the table entries the burst will look up are warmed together
//! ([`lb_conntrack::ConnTable::warm`]), so their cache misses overlap; then each frame goes
//! through the same steps as [`Worker::process`], in order, with exactly its outcome.

use lb_rewrite::{parse, FrameBuf, Packet, ParseError};
use lb_sched::{Flow, Timestamp};

use super::worker::{Class, Hint};
use super::{Outcome, Worker};

/// The most frames handled together; a longer slice is taken in bursts of this many.
pub const BURST: usize = 32;

/// The connection count from which [`Worker::process_burst`] warms a burst's lookups by
/// default ([`Worker::warm_from`]): below it the table sits in the caches and warming costs
/// more instructions than the misses it overlaps (BENCHMARKS.md, "burst").
pub const WARM_FROM: usize = 1 << 17;

/// Where [`Worker::process_burst`] hands what each frame of a burst produced.
pub trait BurstOutput {
    /// A frame that input frame `i` sends on its own (an IPv4 fragment, an ICMP error the
    /// director builds), while `i` is processed.
    fn emit(&mut self, i: usize, frame: &[u8]);
    /// Input frame `i` is done: its outcome, and its buffer's frame (to send on
    /// [`Outcome::Forwarded`]).
    fn done(&mut self, i: usize, outcome: Outcome, frame: &[u8]);
}

/// `v` emptied, for frames of another lifetime: a caller building a burst of frames in buffers
/// it reuses keeps one vector's allocation across bursts this way (a collect from a vector's own
/// iterator into one of the same layout happens in place).
#[allow(clippy::unnecessary_filter_map)] // `None` for every element: it retypes the (empty) vector
pub fn recycle_burst<'a, 'b>(mut v: Vec<(Timestamp, FrameBuf<'a>)>) -> Vec<(Timestamp, FrameBuf<'b>)> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

impl Worker<'_> {
    /// Processes `frames` (each with its time) in bursts of [`BURST`]. For frame `i`, in order:
    /// the frames it sends on its own go to `out.emit(i, ..)` while it is processed, then
    /// `out.done(i, ..)` gets its outcome and frame. Outcomes, counters and the table's contents
    /// are exactly those of [`Worker::process`] on each frame in turn.
    pub fn process_burst(&mut self, frames: &mut [(Timestamp, FrameBuf<'_>)], out: &mut dyn BurstOutput) {
        for (b, chunk) in frames.chunks_mut(BURST).enumerate() {
            let base = b * BURST;
            if chunk.len() < 2 || self.table_len() < self.warm_from {
                // Nothing worth warming: each frame straight through.
                for (i, (now, fb)) in chunk.iter_mut().enumerate() {
                    let o = self.process(*now, fb, &mut |f: &[u8]| out.emit(base + i, f));
                    out.done(base + i, o, fb.frame());
                }
                continue;
            }
            let mut parsed: [Option<(Result<Packet, ParseError>, Hint)>; BURST] = [None; BURST];
            // Each frame's connection as its client sends it; a catch-all service's frame is a
            // request or a reply: both ways are warmed.
            let mut warm = [Flow::v4(lb_sched::Protocol::Tcp, [0; 4].into(), 0, [0; 4].into(), 0); 2 * BURST];
            let mut n = 0;
            for (slot, (_, fb)) in parsed.iter_mut().zip(chunk.iter()) {
                let r = parse(fb.frame());
                let mut hint = Hint::Unknown;
                if let Ok(p) = &r {
                    let f = p.flow();
                    if !p.is_icmp_error() && f.proto.has_ports() {
                        match self.classify_by_address(&f) {
                            Some(c) => {
                                warm[n] = if matches!(c, Class::Request(_)) { f } else { f.reversed() };
                                n += 1;
                                hint = Hint::ByAddress(c);
                            }
                            None => {
                                if self.p.any[usize::from(f.is_ipv6())].is_some() {
                                    warm[n] = f;
                                    warm[n + 1] = f.reversed();
                                    n += 2;
                                }
                                hint = Hint::NotByAddress;
                            }
                        }
                    }
                }
                *slot = Some((r, hint));
            }
            self.warm(&warm[..n]);
            for (i, ((now, fb), pkt)) in chunk.iter_mut().zip(parsed).enumerate() {
                let Some((pkt, hint)) = pkt else { continue };
                let o = self.dispatch(*now, fb, pkt, hint, &mut |f: &[u8]| out.emit(base + i, f));
                out.done(base + i, o, fb.frame());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_burst_vector_is_empty_and_keeps_its_allocation() {
        let mut a = vec![0u8; 64];
        let mut v: Vec<(Timestamp, FrameBuf<'_>)> = Vec::with_capacity(BURST);
        v.push((Timestamp::from_nanos(1), FrameBuf::whole(&mut a)));
        let cap = v.capacity();
        let ptr = v.as_ptr() as usize;
        let w: Vec<(Timestamp, FrameBuf<'static>)> = recycle_burst(v);
        assert!(w.is_empty());
        assert_eq!((w.capacity(), w.as_ptr() as usize), (cap, ptr));
    }
}
