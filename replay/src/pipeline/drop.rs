//! Why a frame was dropped: one enum, [`DropReason`], over the pipeline's own reasons, the
//! parser's ([`ParseError`]), the rewriter's ([`RewriteError`]) and the output's
//! ([`OutputError`]). Every reason has a stable snake_case name (the report's and the JSON's
//! key) and a dense index into a fixed counter array ([`DropCounts`]): counting a drop is one
//! array increment, never a hash.

use core::fmt;

use lb_rewrite::{ParseError, RewriteError};

macro_rules! own_reasons {
    ( $( $(#[$m:meta])* $v:ident => $k:literal, )+ ) => {
        /// Why a frame was dropped. Every frame the pipeline does not forward (and that is not a
        /// DR/TUN reply, which the director never sees) ends in exactly one of these.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum DropReason {
            $( $(#[$m])* $v, )+
            /// The frame did not parse.
            Parse(ParseError),
            /// The rewriter refused it (or an ICMP error was sent in its place: see
            /// [`DropReason::TtlExceeded`] and [`DropReason::TooBig`]).
            Rewrite(RewriteError),
            /// The output could not carry the forwarded frame.
            Output(OutputError),
        }

        /// Positions of the pipeline's own reasons, in declaration order.
        #[repr(usize)]
        enum Own { $( $v, )+ }

        impl DropReason {
            /// The pipeline's own reasons, in index order.
            const OWN: &'static [DropReason] = &[$(DropReason::$v),+];

            /// The stable snake_case name of the reason: the report's key.
            pub const fn name(self) -> &'static str {
                match self {
                    $( DropReason::$v => $k, )+
                    DropReason::Parse(e) => e.name(),
                    DropReason::Rewrite(e) => e.name(),
                    DropReason::Output(e) => e.name(),
                }
            }

            /// The reason's position in a counter array of [`DropReason::COUNT`] entries.
            #[inline]
            pub const fn index(self) -> usize {
                match self {
                    $( DropReason::$v => Own::$v as usize, )+
                    DropReason::Parse(e) => Self::OWN.len() + e.index(),
                    DropReason::Rewrite(e) => Self::OWN.len() + ParseError::COUNT + e.index(),
                    DropReason::Output(e) => {
                        Self::OWN.len() + ParseError::COUNT + RewriteError::COUNT + e.index()
                    }
                }
            }
        }
    };
}

own_reasons! {
    /// An ICMP message that is not an error (echo, ...): the director forwards connections only.
    IcmpNotError => "icmp_not_error",
    /// No service of the packet's family, while a catch-all service of the other family exists.
    NoBackendForFamily => "no_backend_for_family",
    /// No virtual service takes the packet.
    NoService => "no_service",
    /// To or from an address that is not unicast (multicast, broadcast, unspecified, loopback,
    /// reserved; RFC 1812 §5.3.7): no service takes it, and no ICMP error is sent about it.
    NotUnicast => "not_unicast",
    /// The connection's real server has no next-hop MAC.
    NoNextHop => "no_next_hop",
    /// The connection's forwarding method is local delivery, which the pipeline does not do.
    LocalNode => "local_node",
    /// Too big for the MTU with DF set (IPv4) or at all (IPv6): an ICMP error went back instead.
    TooBig => "too_big",
    /// TTL or hop limit ran out: an ICMP time exceeded went back instead.
    TtlExceeded => "ttl_exceeded",
    /// A RST for which no connection exists (IPVS never schedules one).
    RstWithoutConnection => "rst_without_connection",
    /// A TCP packet without SYN for which no connection exists (and no `sloppy_tcp`).
    NotSynWithoutConnection => "not_syn_without_connection",
    /// A flow the connection table does not track.
    UnsupportedFlow => "unsupported_flow",
    /// The scheduler found no available destination.
    NoDestination => "no_destination",
    /// The connection's destination was removed (and `expire_nodest_conn` dropped it).
    DestinationRemoved => "destination_removed",
    /// The connection table is full and its policy refused a new entry.
    ConntrackFull => "conntrack_full",
    /// A NAT reply for which no connection exists.
    ReplyWithoutConnection => "reply_without_connection",
    /// An ICMP error that quotes no known connection.
    IcmpWithoutConnection => "icmp_without_connection",
}

impl DropReason {
    /// The number of reasons: the size of a counter array indexed by [`DropReason::index`].
    pub const COUNT: usize = Self::OWN.len() + ParseError::COUNT + RewriteError::COUNT + OutputError::COUNT;

    /// Every reason, in index order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        Self::OWN
            .iter()
            .copied()
            .chain(ParseError::ALL.iter().map(|&e| DropReason::Parse(e)))
            .chain(RewriteError::ALL.iter().map(|&e| DropReason::Rewrite(e)))
            .chain(OutputError::ALL.iter().map(|&e| DropReason::Output(e)))
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<ParseError> for DropReason {
    fn from(e: ParseError) -> Self {
        DropReason::Parse(e)
    }
}

impl From<RewriteError> for DropReason {
    fn from(e: RewriteError) -> Self {
        DropReason::Rewrite(e)
    }
}

impl From<OutputError> for DropReason {
    fn from(e: OutputError) -> Self {
        DropReason::Output(e)
    }
}

/// Why an output (the caller's sink: a pcap writer, an AF_XDP socket) could not carry a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputError {
    /// The frame is larger than an AF_XDP UMEM frame.
    FrameLargerThanUmemFrame,
}

impl OutputError {
    /// Every variant, in index order.
    pub const ALL: &'static [OutputError] = &[OutputError::FrameLargerThanUmemFrame];
    /// The number of variants.
    pub const COUNT: usize = Self::ALL.len();

    /// The stable snake_case name: the report's key.
    pub const fn name(self) -> &'static str {
        match self {
            OutputError::FrameLargerThanUmemFrame => "frame_larger_than_umem_frame",
        }
    }

    /// The position in [`OutputError::ALL`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for OutputError {}

/// Drops counted by reason, in a fixed array (no hashing, no allocation).
#[derive(Clone, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl Default for DropCounts {
    fn default() -> Self {
        DropCounts([0; DropReason::COUNT])
    }
}

impl fmt::Debug for DropCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(r, n)| (r.name(), n))).finish()
    }
}

impl DropCounts {
    /// Counts one drop.
    #[inline]
    pub fn add(&mut self, why: DropReason) {
        self.0[why.index()] += 1;
    }

    /// Takes one drop back (a drop that turned out otherwise).
    #[inline]
    pub fn sub(&mut self, why: DropReason) {
        self.0[why.index()] = self.0[why.index()].saturating_sub(1);
    }

    /// Drops for this reason.
    #[inline]
    pub fn get(&self, why: DropReason) -> u64 {
        self.0[why.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Whether nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The reasons that were counted, with their counts, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::all().map(|r| (r, self.0[r.index()])).filter(|&(_, n)| n > 0)
    }

    /// The count for the reason of this name (0 for an unknown name).
    pub fn by_name(&self, name: &str) -> u64 {
        DropReason::all().find(|r| r.name() == name).map_or(0, |r| self.get(r))
    }

    /// Adds another worker's counts.
    pub fn merge(&mut self, o: &DropCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn indices_are_dense_and_names_unique() {
        let all: Vec<DropReason> = DropReason::all().collect();
        assert_eq!(all.len(), DropReason::COUNT);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i, "{r}");
        }
        let names: HashSet<&str> = all.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), all.len(), "every reason has its own key");
        // The keys the report has always used.
        assert_eq!(DropReason::NoService.to_string(), "no_service");
        assert_eq!(DropReason::TtlExceeded.name(), "ttl_exceeded");
        assert_eq!(DropReason::Parse(ParseError::TruncatedTcp).name(), "truncated_tcp");
        assert_eq!(DropReason::Rewrite(RewriteError::NoHeadroom).name(), "no_headroom");
        assert_eq!(DropReason::Output(OutputError::FrameLargerThanUmemFrame).name(), "frame_larger_than_umem_frame");
    }

    #[test]
    fn counts_add_merge_and_list_only_what_happened() {
        let mut a = DropCounts::default();
        assert!(a.is_empty());
        a.add(DropReason::NoService);
        a.add(DropReason::NoService);
        a.add(ParseError::TruncatedIp.into());
        let mut b = DropCounts::default();
        b.add(DropReason::NoService);
        b.add(RewriteError::MtuTooSmall.into());
        a.merge(&b);
        assert_eq!(a.get(DropReason::NoService), 3);
        assert_eq!(a.by_name("truncated_ip"), 1);
        assert_eq!(a.by_name("mtu_too_small"), 1);
        assert_eq!(a.by_name("nonsense"), 0);
        assert_eq!(a.total(), 5);
        let listed: Vec<(&str, u64)> = a.iter().map(|(r, n)| (r.name(), n)).collect();
        assert_eq!(listed, [("no_service", 3), ("truncated_ip", 1), ("mtu_too_small", 1)]);
        a.sub(DropReason::NoService);
        assert_eq!(a.get(DropReason::NoService), 2);
    }
}
