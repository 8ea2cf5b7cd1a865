//! The input of the rewrite targets (`rewrite_nat`, `rewrite_dr`, `rewrite_tun`) and the checks
//! they share.
//!
//! An input is [`Knobs`] (a fixed [`KNOBS_LEN`]-byte prefix, so seed files are a prefix plus a
//! captured frame) followed by the frame. The frame is parsed; when parsing fails there is
//! nothing to rewrite (`parse_frame` covers that). With the mismatch bit of
//! [`Knobs::select`] set, the frame is then cut and one byte changed, so the rewriter gets a
//! [`Packet`] that may not describe its frame, which lb-rewrite promises to survive.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use lb_rewrite::{
    build_time_exceeded, build_too_big, parse, FragmentSink, FrameBuf, IpVersion, MacAddr, NextHop, Packet,
    ReplySource, RewriteError, Verdict,
};
use lb_sched::Protocol;

use crate::arena::Arena;
use crate::oracle::{assert_right, assert_rule, checks};

/// An address knob: the family and 16 bytes (an IPv4 address uses the first 4).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The address bytes.
    pub bytes: [u8; 16],
}

impl Addr {
    /// The address.
    pub fn ip(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]))
        }
    }
}

/// The parameters of one rewrite. Every field is fixed-size, so they take exactly
/// [`KNOBS_LEN`] bytes at the start of the input (integers little-endian, a `bool` one byte).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// Headroom in front of the frame (TUN pushes its outer header there).
    pub headroom: u8,
    /// The egress IP MTU.
    pub mtu: u16,
    /// The director's MAC (new source).
    pub src_mac: [u8; 6],
    /// The next hop's MAC (new destination).
    pub dst_mac: [u8; 6],
    /// Low bits: the target's choice of operation; bit 7: hand the rewriter a mismatched frame.
    pub select: u8,
    /// First address (NAT: the new address; TUN: the outer source).
    pub a: Addr,
    /// Second address (TUN: the outer destination).
    pub b: Addr,
    /// NAT: the new port; TUN/GUE: the UDP destination port.
    pub port: u16,
    /// TUN: the outer identification; replies: the IPv4 identification.
    pub ident: u16,
    /// Mismatch only: bytes cut from the end of the frame after parsing.
    pub cut: u8,
    /// Mismatch only: the byte changed after parsing (modulo the frame length).
    pub edit_at: u16,
    /// Mismatch only: what that byte is XORed with.
    pub edit_xor: u8,
}

/// The encoded size of [`Knobs`]: seed files put the frame after this many bytes.
pub const KNOBS_LEN: usize = 1 + 2 + 6 + 6 + 1 + 17 + 17 + 2 + 2 + 1 + 2 + 1;

/// Bit of [`Knobs::select`] that asks for a mismatched frame.
pub const MISMATCH: u8 = 0x80;

/// A rewrite target's input: knobs, then the frame.
#[derive(Arbitrary, Debug)]
pub struct Input<'a> {
    /// The parameters.
    pub knobs: Knobs,
    /// The frame (the rest of the input).
    pub frame: &'a [u8],
}

/// One rewrite to run and judge.
#[derive(Debug)]
pub struct Case {
    /// The knobs.
    pub knobs: Knobs,
    /// What [`parse`] made of the input frame.
    pub pkt: Packet,
    /// The frame the rewriter gets (the input frame, or with the mismatch bit a changed copy).
    pub frame: Vec<u8>,
    /// Whether `pkt` describes `frame` (parsing `frame` gives `pkt`): only then are the
    /// results judged beyond safety.
    pub trusted: bool,
    /// Whether etherparse can parse `frame` (only then does the checksum oracle speak).
    pub oracle: bool,
}

/// What a rewriter returned and where the frame ended up.
#[derive(Debug)]
pub struct Done {
    /// The rewriter's result.
    pub result: Result<Verdict, RewriteError>,
    /// The frame's start in the buffer afterwards.
    pub start: usize,
    /// The frame's length afterwards.
    pub len: usize,
    /// The fragments handed to the sink.
    pub frags: Vec<Vec<u8>>,
}

/// Runs `rewrite` on the frame in `arena`, recording what it did.
pub fn run(
    arena: &mut Arena,
    rewrite: impl FnOnce(&mut FrameBuf<'_>, &mut dyn FragmentSink) -> Result<Verdict, RewriteError>,
) -> Done {
    let mut frags = Vec::new();
    let mut fb = arena.frame_buf();
    let mut sink = |f: &[u8]| frags.push(f.to_vec());
    let result = rewrite(&mut fb, &mut sink);
    Done { result, start: fb.start(), len: fb.len(), frags }
}

impl Case {
    /// The case of `input`, or `None` when its frame does not parse.
    pub fn new(input: &Input<'_>) -> Option<Case> {
        let pkt = parse(input.frame).ok()?;
        let k = input.knobs;
        let mut frame = input.frame.to_vec();
        if k.select & MISMATCH != 0 {
            frame.truncate(frame.len().saturating_sub(usize::from(k.cut)));
            if !frame.is_empty() {
                let at = usize::from(k.edit_at) % frame.len();
                frame[at] ^= k.edit_xor;
            }
        }
        let trusted = parse(&frame) == Ok(pkt);
        let oracle = checks(&frame).is_ok();
        Some(Case { knobs: k, pkt, frame, trusted, oracle })
    }

    /// The buffer the rewriter works in.
    pub fn arena(&self) -> Arena {
        Arena::new(&self.frame, usize::from(self.knobs.headroom))
    }

    /// The next hop of the knobs.
    pub fn hop(&self) -> NextHop {
        NextHop { src_mac: MacAddr(self.knobs.src_mac), dst_mac: MacAddr(self.knobs.dst_mac), mtu: self.knobs.mtu }
    }

    /// The checks every rewrite passes, whatever its mode: nothing written outside
    /// `arena.head - front .. arena.end()` (`front`: headroom the mode may take); an error other
    /// than `MtuTooSmall` leaves the buffer as it was; a forwarded frame stays in that region;
    /// a fragment count matches the sink; `TimeExceeded` leaves the buffer as it was and
    /// `TooBig` changes only the TTL / hop limit and the IPv4 header checksum. For a trusted
    /// case, fragments parse and fit the MTU, and the ICMP reply for `TimeExceeded` / `TooBig`
    /// is well formed.
    pub fn check_common(&self, arena: &Arena, done: &Done, front: usize) {
        let lo = arena.head.saturating_sub(front);
        arena.assert_sentinels_outside(lo, arena.end());
        let pristine = self.arena();
        match done.result {
            Err(RewriteError::MtuTooSmall) => {}
            Err(e) => assert!(arena.buf == pristine.buf, "error {e:?} after the buffer was changed"),
            Ok(Verdict::Forward) => {
                assert!(
                    done.start >= lo && done.start + done.len <= arena.end(),
                    "forwarded frame {}..{} outside {lo}..{}",
                    done.start,
                    done.start + done.len,
                    arena.end()
                );
            }
            Ok(Verdict::Fragmented { count }) => {
                assert_eq!(usize::from(count), done.frags.len(), "fragment count vs fragments emitted");
                if self.trusted {
                    self.check_fragments(&done.frags);
                }
            }
            Ok(Verdict::TimeExceeded) => {
                assert!(arena.buf == pristine.buf, "TimeExceeded changed the buffer");
                if self.trusted {
                    self.check_reply(&self.frame, None);
                }
            }
            Ok(Verdict::TooBig { mtu }) => {
                assert!(mtu <= self.knobs.mtu, "TooBig reports MTU {mtu} above the link's {}", self.knobs.mtu);
                let out = &arena.buf[arena.head..arena.end()];
                if self.trusted {
                    self.check_only_ttl_changed(out);
                    self.check_reply(out, Some(mtu));
                }
            }
        }
    }

    /// IPv4 fragments: each parses (etherparse) and its IP packet fits the MTU.
    fn check_fragments(&self, frags: &[Vec<u8>]) {
        for (i, f) in frags.iter().enumerate() {
            let l3 = self.pkt.l3();
            assert!(f.len() >= l3, "fragment {i} shorter than its L2 header");
            assert!(f.len() - l3 <= usize::from(self.knobs.mtu), "fragment {i}: {} bytes over MTU", f.len() - l3);
            if let Err(e) = etherparse::SlicedPacket::from_ethernet(f) {
                panic!("fragment {i} does not parse: {e}");
            }
        }
    }

    /// Only the TTL / hop limit (one less) and the IPv4 header checksum (by the rule) differ.
    fn check_only_ttl_changed(&self, out: &[u8]) {
        let l3 = self.pkt.l3();
        let allowed = match self.pkt.version() {
            IpVersion::V4 => vec![l3 + 8, l3 + 10, l3 + 11],
            IpVersion::V6 => vec![l3 + 7],
        };
        assert_changes_within(&self.frame, out, &allowed);
        let ttl_at = allowed[0];
        assert_eq!(out[ttl_at], self.frame[ttl_at].wrapping_sub(1), "TTL / hop limit not decremented");
        if self.oracle {
            let (i, o) = (checks(&self.frame).unwrap(), checks(out).expect("output parses with etherparse"));
            assert_rule("ipv4 header", i.ip, o.ip);
        }
    }

    /// The ICMP reply for `TimeExceeded` (`mtu` `None`) or `TooBig` about `frame`: built into a
    /// buffer, it parses, has right checksums and goes back to the packet's source; the only
    /// refusal for a packet of the reply source's family is `IcmpReplyForbidden`.
    fn check_reply(&self, frame: &[u8], mtu: Option<u16>) {
        let from = ReplySource { addr: self.pkt.flow().dst, mac: MacAddr(self.knobs.src_mac), ident: self.knobs.ident };
        let mut out = [0u8; 1400];
        let r = match mtu {
            Some(mtu) => build_too_big(frame, &self.pkt, mtu, &from, &mut out),
            None => build_time_exceeded(frame, &self.pkt, &from, &mut out),
        };
        let n = match r {
            Ok(n) => n,
            Err(RewriteError::IcmpReplyForbidden) => return,
            Err(e) => panic!("reply refused: {e:?}"),
        };
        assert!(n <= out.len());
        let reply = &out[..n];
        let c = checks(reply).unwrap_or_else(|e| panic!("reply does not parse: {e}"));
        if let Some(ip) = c.ip {
            assert_eq!(ip.stored, ip.computed, "reply IPv4 header checksum");
        }
        assert_right("reply ICMP", c.l4);
        let rp = parse(reply).unwrap_or_else(|e| panic!("our parser refuses the reply: {e:?}"));
        assert!(rp.is_icmp_error(), "the reply is an ICMP error");
        assert_eq!(rp.flow().dst, self.pkt.flow().src, "the reply goes back to the sender");
    }

    /// Checks of a forwarded NAT (`dnat` / `snat`) or DR frame: same length, only the allowed
    /// bytes changed, MACs and TTL as the hop says, checksums by the rule (a zero UDP checksum
    /// computed in full by NAT, except in a first fragment), and the flow as `want` says.
    pub fn check_in_place(&self, out: &[u8], allowed: &[usize], nat: bool, want: lb_sched::Flow) {
        assert_eq!(out.len(), self.frame.len(), "an in-place rewrite keeps the length");
        assert_changes_within(&self.frame, out, allowed);
        self.check_l2_and_ttl(out);
        let o = parse(out).unwrap_or_else(|e| panic!("a forwarded frame does not parse: {e:?}"));
        assert_eq!(o.flow(), want, "flow after the rewrite");
        if !self.oracle {
            return;
        }
        let (i, o) = (checks(&self.frame).unwrap(), checks(out).expect("output parses with etherparse"));
        assert_rule("ipv4 header", i.ip, o.ip);
        if nat && i.udp_none {
            // IPVS computes a zero UDP checksum in full.
            assert!(!o.udp_none, "zero UDP checksum left zero by NAT: {o:?}");
            assert_right("udp (was none)", o.l4);
        } else {
            assert_rule("transport", i.l4, o.l4);
        }
    }

    /// New MACs, VLAN tags and ethertype kept, TTL / hop limit one less.
    pub fn check_l2_and_ttl(&self, out: &[u8]) {
        let l3 = self.pkt.l3();
        assert_eq!(&out[..6], &self.knobs.dst_mac, "destination MAC");
        assert_eq!(&out[6..12], &self.knobs.src_mac, "source MAC");
        assert_eq!(&out[12..l3], &self.frame[12..l3], "VLAN tags and ethertype");
        let ttl_at = l3 + if self.pkt.version() == IpVersion::V4 { 8 } else { 7 };
        assert_eq!(out[ttl_at], self.frame[ttl_at].wrapping_sub(1), "TTL / hop limit");
    }

    /// Byte positions a forwarding rewrite may change: the MACs, the TTL / hop limit and the
    /// IPv4 header checksum.
    pub fn forwarding_bytes(&self) -> Vec<usize> {
        let l3 = self.pkt.l3();
        let mut v: Vec<usize> = (0..12).collect();
        match self.pkt.version() {
            IpVersion::V4 => v.extend([l3 + 8, l3 + 10, l3 + 11]),
            IpVersion::V6 => v.push(l3 + 7),
        }
        v
    }

    /// The transport checksum's position, if the protocol has one NAT updates.
    pub fn transport_checksum_at(&self) -> usize {
        let l4 = self.pkt.l4();
        match self.pkt.protocol() {
            Protocol::Tcp => l4 + 16,
            Protocol::Udp => l4 + 6,
            Protocol::Icmp | Protocol::Icmpv6 => l4 + 2,
        }
    }
}

/// Panics, naming the first one, if a byte outside `allowed` differs between `a` and `b`.
pub fn assert_changes_within(a: &[u8], b: &[u8], allowed: &[usize]) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x == y || allowed.contains(&i), "byte {i} changed ({x:#04x} -> {y:#04x}) but may not");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbitrary::Unstructured;

    /// Seed files are written by hand (`README.md`): the layout of [`Knobs`] must be what they
    /// assume.
    #[test]
    fn knobs_take_a_fixed_prefix_and_the_frame_is_the_rest() {
        let mut bytes: Vec<u8> = (0..KNOBS_LEN as u8).collect();
        bytes.extend_from_slice(b"FRAME");
        let input: Input<'_> = Arbitrary::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        assert_eq!(input.frame, b"FRAME");
        let k = input.knobs;
        assert_eq!(k.headroom, 0);
        assert_eq!(k.mtu, u16::from_le_bytes([1, 2]));
        assert_eq!(k.src_mac, [3, 4, 5, 6, 7, 8]);
        assert_eq!(k.dst_mac, [9, 10, 11, 12, 13, 14]);
        assert_eq!(k.select, 15);
        assert_eq!(k.a, Addr { v6: false, bytes: core::array::from_fn(|i| 17 + i as u8) });
        assert_eq!(k.b, Addr { v6: true, bytes: core::array::from_fn(|i| 34 + i as u8) });
        assert_eq!(k.port, u16::from_le_bytes([50, 51]));
        assert_eq!(k.ident, u16::from_le_bytes([52, 53]));
        assert_eq!(k.cut, 54);
        assert_eq!(k.edit_at, u16::from_le_bytes([55, 56]));
        assert_eq!(k.edit_xor, 57);
    }
}
