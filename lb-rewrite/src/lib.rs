//! # lb-rewrite: parse frames and rewrite them in place for NAT, DR and TUN
//!
//! What Linux IPVS's `ip_vs_xmit.c` does to a packet, as a library: [`parse`] an Ethernet frame
//! into a [`Packet`] (its [`Flow`](lb_sched::Flow), offsets, TCP flags, TTL, DF, and for ICMP
//! errors the quoted packet), then rewrite it in place for the chosen forwarding method. Every
//! fact about what IPVS changes comes from `docs/ipvs.md` §4; where this crate differs, it
//! says so below.
//!
//! ## Contract
//!
//! * **No panic, no stray access.** [`parse`], the rewriters and the reply builders never panic
//!   and never read or write outside the frame (or the reply buffer), for any input bytes and any
//!   [`Packet`], even one parsed from another frame. Malformed input is a [`ParseError`] that
//!   names the reason; a rewrite that cannot be done is a [`RewriteError`]. Both are `Copy`
//!   enums with a stable `name()` per variant, meant as drop-counter keys.
//! * **No allocation** in [`parse`], the rewriters, fragmentation or the reply builders.
//!   Encapsulation takes headroom in front of the frame ([`FrameBuf`]); fragments are built in
//!   place and handed to a [`FragmentSink`]; replies go into a caller's buffer.
//! * **Checksums.** Every checksum a rewrite changes is updated incrementally ([RFC 1624], module
//!   [`checksum`]): if it was right it equals a full recomputation afterwards, and if it was wrong
//!   it is wrong by exactly the same amount (one's-complement difference). A rewrite never makes
//!   a corrupt packet look valid. The exceptions are the ones IPVS makes, each safe: a zero UDP
//!   checksum ("none") gets a full computation; the ICMP checksum of an ICMP error under NAT is
//!   verified first ([`RewriteError::BadIcmpChecksum`] if wrong, as IPVS drops those) and then
//!   recomputed; headers the crate builds (tunnel headers, replies) get full checksums.
//! * **State:** none. The target of a rewrite (real server, virtual service, tunnel, next hop)
//!   comes in as plain values; lb-rewrite depends on lb-sched only for [`lb_sched::Flow`].
//!
//! ## One packet
//!
//! ```text
//! parse(frame) ─► Packet ─► (the caller looks up service and connection) ─►
//!   dnat / snat / nat_icmp_in / nat_icmp_out / dr / tun (frame, packet, next hop, target, sink)
//!     ─► Verdict::Forward            send frame.frame()
//!        Verdict::Fragmented{count}  the fragments went to the sink
//!        Verdict::TimeExceeded       drop; build_time_exceeded(...) → reply to the client
//!        Verdict::TooBig{mtu}        drop; build_too_big(..., mtu, ...) → reply to the client
//! ```
//!
//! Every mode, as the kernel's forwarding path (`docs/ipvs.md` §4.1, §4.2):
//!
//! * the Ethernet destination becomes [`NextHop::dst_mac`], the source [`NextHop::src_mac`];
//!   VLAN tags stay;
//! * TTL / hop limit ≤ 1 → [`Verdict::TimeExceeded`] (frame unchanged); otherwise it is
//!   decremented, the IPv4 header checksum updated;
//! * an IP packet longer than [`NextHop::mtu`]: IPv6, or IPv4 with DF → [`Verdict::TooBig`]
//!   (the frame keeps its decremented TTL and is otherwise unchanged, which is what the kernel
//!   quotes); IPv4 without DF → fragmented ([RFC 791]) as the kernel does after IPVS.
//!
//! ## The modes
//!
//! * **NAT** ([`dnat`], [`snat`]): request destination → real server, reply source → virtual
//!   service, ports included. ICMP errors about a connection: [`nat_icmp_in`] (from the client
//!   side: outer destination, quoted source address and port → real server) and
//!   [`nat_icmp_out`] (from the real-server side: outer source, quoted destination address and
//!   port → virtual service).
//! * **DR** ([`dr`]): only MACs, TTL / hop limit and the IPv4 header checksum change.
//! * <a id="tun"></a>**TUN** ([`tun`]): IPv4 or IPv6 inside IPv4 or IPv6 (protocol / next header
//!   4 or 41), optionally in GUE ([`Encap::Gue`]); the outer header as IPVS builds it (DSCP
//!   copied, ECN per RFC 6040 with inner CE → ECT(0), DF from the inner packet, TTL, the
//!   caller's identification); the tunnel overhead is subtracted from the MTU reported in
//!   [`Verdict::TooBig`].
//!
//! ## Where this differs from IPVS
//!
//! * IPVS recomputes IPv4 header checksums in full (the kernel has verified them on receive);
//!   this crate updates them incrementally, so a corrupt header stays exactly as corrupt.
//! * A zero UDP checksum in a first fragment stays zero (the rest of the datagram is not here;
//!   IPVS sees reassembled datagrams). An ICMP error that is itself fragmented cannot have its
//!   checksum verified and is refused as [`RewriteError::BadIcmpChecksum`].
//! * The GUE source port is a fixed hash of the flow ([`gue_source_port`]) instead of the
//!   kernel's per-boot seeded one, so every director agrees.
//!
//! * IPv4 ICMP errors that exceed the MTU are fragmented even with DF (IPVS skips its DF check
//!   for them and the kernel fragments with `ignore_df`); IPv6 ones get [`Verdict::TooBig`],
//!   about which no reply may be sent ([`RewriteError::IcmpReplyForbidden`]).
//!
//! Not handled (a typed error, never a wrong rewrite): IPv6 jumbograms, PPPoE and other
//! ethertypes, tunnelled input (IPIP, 6in4 and GRE packets are `unsupported_protocol`), GRE
//! encapsulation, non-first fragments (IPVS reassembles; a director in front of lbkit must too).
//!
//! ## Why our own views and not etherparse on the hot path
//!
//! The issue asked to decide by measurement (`BENCHMARKS.md`, `## rewrite`): etherparse's
//! `SlicedPacket::from_ethernet` alone costs about 50 ns per frame here, more than the whole
//! parse-and-rewrite budget; its single-header slices are cheap but leave every check and every
//! write to the caller. The rewriters therefore read and write through fixed-size array views
//! (`&[u8; 20]` for an IPv4 header...) reached by one checked access each, and etherparse is the
//! oracle of the test suite.
//!
//! On a hot path, bind the parse result by reference (`let parsed = parse(f); match &parsed
//! ...`): moving a freshly built [`Packet`] out of the `Result` costs a store-forwarding stall
//! about as long as the parse. [`Packet`] keeps only integers for the same reason; its
//! [`Flow`](lb_sched::Flow) and [`IcmpQuote`] are built when asked for.
//!
//! ## Example
//!
//! ```
//! use lb_rewrite::{dnat, parse, FrameBuf, MacAddr, NextHop, Verdict};
//!
//! // An Ethernet/IPv4/TCP SYN from 192.0.2.7:40000 to the VIP 198.51.100.1:80.
//! let mut frame = [0u8; 54];
//! frame[12..14].copy_from_slice(&[0x08, 0x00]);
//! frame[14..34].copy_from_slice(&[
//!     0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 7, 198, 51, 100, 1,
//! ]);
//! let c = lb_rewrite::checksum::checksum(&frame[14..34]);
//! frame[24..26].copy_from_slice(&c.to_be_bytes());
//! frame[34..54].copy_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
//!
//! let parsed = parse(&frame);
//! let Ok(pkt) = &parsed else { panic!("drop: {:?}", parsed) };
//! assert!(pkt.tcp_flags().syn());
//! assert_eq!(pkt.flow().dst_port, 80);
//!
//! let hop = NextHop { src_mac: MacAddr([2, 0, 0, 0, 0, 1]), dst_mac: MacAddr([2, 0, 0, 0, 0, 2]), mtu: 1500 };
//! let mut buf = FrameBuf::whole(&mut frame);
//! let verdict = dnat(&mut buf, pkt, &hop, "10.0.0.2:8080".parse().unwrap(), &mut |_: &[u8]| {}).unwrap();
//! assert_eq!(verdict, Verdict::Forward);
//!
//! let out = parse(buf.frame()).unwrap();
//! assert_eq!(out.flow().dst.to_string(), "10.0.0.2");
//! assert_eq!(out.flow().dst_port, 8080);
//! assert_eq!(out.ttl(), 63);
//! assert!(lb_rewrite::checksum::verify(&buf.frame()[14..34]));
//! ```
//!
//! [RFC 791]: https://www.rfc-editor.org/rfc/rfc791
//! [RFC 1624]: https://www.rfc-editor.org/rfc/rfc1624
#![forbid(unsafe_code)]

pub mod checksum;
mod error;
mod forward;
mod frag;
mod frame;
mod nat;
mod nat_icmp;
mod parse;
mod reply;
#[cfg(test)]
mod testutil;
mod tun;
mod wire;

pub use error::{ParseError, RewriteError};
pub use forward::dr;
pub use frame::{DiscardFragments, FragmentSink, FrameBuf, MacAddr, NextHop, Verdict};
pub use nat::{dnat, snat};
pub use nat_icmp::{nat_icmp_in, nat_icmp_out};
pub use parse::{parse, IcmpQuote, IpVersion, Packet, TcpFlags};
pub use reply::{build_time_exceeded, build_too_big, ReplySource, MAX_REPLY_V4, MAX_REPLY_V6, REPLY_TTL};
pub use tun::{gue_source_port, tun, Encap, Tunnel};

/// The README's example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
