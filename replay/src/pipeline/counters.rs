//! What a worker counts: packets by verdict, drops by [`DropReason`], and traffic per
//! destination. Each worker counts in its own [`Counters`]; a driver merges them at the end.

use lb_sched::DestId;

use super::drop::{DropCounts, OutputError};

/// Per-destination counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestCounters {
    /// Connections scheduled to it.
    pub connections: u64,
    /// Packets forwarded toward it (requests).
    pub packets_in: u64,
    /// Bytes of those frames.
    pub bytes_in: u64,
    /// Replies of its connections forwarded toward clients (NAT).
    pub packets_out: u64,
    /// Bytes of those frames.
    pub bytes_out: u64,
}

impl DestCounters {
    fn merge(&mut self, o: &DestCounters) {
        self.connections += o.connections;
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.packets_out += o.packets_out;
        self.bytes_out += o.bytes_out;
    }
}

/// One worker's counters.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Frames read.
    pub read: u64,
    /// Packets forwarded (whole or as fragments).
    pub forwarded: u64,
    /// Of those, packets forwarded as fragments.
    pub fragmented: u64,
    /// Fragment frames emitted.
    pub fragments: u64,
    /// DR/TUN replies not emitted.
    pub replies_skipped: u64,
    /// ICMP errors built and emitted by the director.
    pub icmp_sent: u64,
    /// Drops by reason.
    pub dropped: DropCounts,
    /// Frames the director built (ICMP errors, fragments) that the output could not carry, by
    /// reason ([`OutputError::index`]).
    pub output_refused: [u64; OutputError::COUNT],
    /// Per service, per destination id.
    pub dests: Vec<Vec<DestCounters>>,
}

impl Counters {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &Counters) {
        self.read += o.read;
        self.forwarded += o.forwarded;
        self.fragmented += o.fragmented;
        self.fragments += o.fragments;
        self.replies_skipped += o.replies_skipped;
        self.icmp_sent += o.icmp_sent;
        self.dropped.merge(&o.dropped);
        for (a, b) in self.output_refused.iter_mut().zip(&o.output_refused) {
            *a += b;
        }
        if self.dests.len() < o.dests.len() {
            self.dests.resize(o.dests.len(), Vec::new());
        }
        for (mine, theirs) in self.dests.iter_mut().zip(&o.dests) {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), DestCounters::default());
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                a.merge(b);
            }
        }
    }

    /// Total drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.total()
    }

    /// The counters of destination `id` of service `svc`, created on first use.
    #[inline]
    pub(crate) fn dest(&mut self, svc: usize, id: DestId) -> &mut DestCounters {
        if self.dests.len() <= svc {
            self.dests.resize(svc + 1, Vec::new());
        }
        let v = &mut self.dests[svc];
        let i = id.0 as usize;
        if v.len() <= i {
            v.resize(i + 1, DestCounters::default());
        }
        &mut v[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::DropReason;

    #[test]
    fn merge_adds_every_counter_and_grows_the_destination_lists() {
        let mut a = Counters { read: 3, forwarded: 2, ..Counters::default() };
        a.dropped.add(DropReason::NoService);
        a.dest(0, DestId(1)).packets_in = 2;
        let mut b = Counters { read: 5, icmp_sent: 1, ..Counters::default() };
        b.dropped.add(DropReason::NoService);
        b.output_refused[OutputError::FrameLargerThanUmemFrame.index()] = 4;
        b.dest(2, DestId(0)).connections = 7;
        b.dest(0, DestId(1)).bytes_in = 100;
        a.merge(&b);
        assert_eq!((a.read, a.forwarded, a.icmp_sent), (8, 2, 1));
        assert_eq!(a.dropped_total(), 2);
        assert_eq!(a.output_refused, [4]);
        assert_eq!(a.dests.len(), 3);
        assert_eq!(a.dests[0][1], DestCounters { packets_in: 2, bytes_in: 100, ..DestCounters::default() });
        assert_eq!(a.dests[2][0].connections, 7);
        assert!(a.dests[1].is_empty());
    }
}
