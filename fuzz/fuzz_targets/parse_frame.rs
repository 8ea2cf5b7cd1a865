//! `parse_frame`: any bytes as an Ethernet frame through `lb_rewrite::parse`.
//!
//! Asserts: no panic; the result is a `Packet` or a typed `ParseError`. For a `Packet`: the
//! offsets are ordered and inside the frame (Ethernet and at most two VLAN tags, a whole IP
//! header, at least 8 bytes of transport header, 20 for TCP), the flow's families match the IP
//! version, and an ICMP error's quote lies inside the packet. Cross-check: where etherparse
//! parses the same frame, it agrees on the IP version, addresses, TTL / hop limit and, when it
//! reaches the transport header, on the protocol, ports and TCP flags.
#![no_main]

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lb_rewrite::{parse, IpVersion, ParseError};
use lb_sched::Protocol;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|frame: &[u8]| {
    let pkt = match parse(frame) {
        Ok(p) => p,
        Err(e) => {
            assert!(ParseError::ALL.contains(&e) && !e.name().is_empty());
            return;
        }
    };
    let (l3, l4, end) = (pkt.l3(), pkt.l4(), pkt.ip_end());
    let v4 = pkt.version() == IpVersion::V4;
    assert_eq!(l3, 14 + 4 * usize::from(pkt.vlan_tags()), "l3 after Ethernet and the VLAN tags");
    assert!(pkt.vlan_tags() <= 2);
    assert!(l4 >= l3 + if v4 { 20 } else { 40 }, "l4 {l4} inside the IP header at {l3}");
    let min_l4 = if pkt.protocol() == Protocol::Tcp { 20 } else { 8 };
    assert!(l4 + min_l4 <= end, "transport header {l4}+{min_l4} past the IP packet end {end}");
    assert!(end <= frame.len(), "IP packet end {end} past the frame ({})", frame.len());
    assert_eq!(pkt.ip_len(), end - l3);
    let flow = pkt.flow();
    assert_eq!(flow.src.is_ipv6(), !v4);
    assert_eq!(flow.dst.is_ipv6(), !v4);
    assert!(!pkt.has_quote() || pkt.is_icmp_error(), "only ICMP errors quote a packet");
    if pkt.has_quote() {
        let q = pkt.quote(frame).expect("a quote the parser accepted parses again");
        assert_eq!(q.l3(), l4 + 8, "the quote follows the 8-byte ICMP header");
        assert!(q.l4() >= q.l3() + if v4 { 20 } else { 40 } && q.l4() + 8 <= end, "quote offsets inside the packet");
        assert_eq!(q.flow().src.is_ipv6(), !v4);
    }

    // etherparse, where it parses the frame, agrees.
    let Ok(theirs) = SlicedPacket::from_ethernet(frame) else { return };
    let (src, dst, ttl): (IpAddr, IpAddr, u8) = match &theirs.net {
        Some(NetSlice::Ipv4(n)) => {
            (n.header().source_addr().into(), n.header().destination_addr().into(), n.header().ttl())
        }
        Some(NetSlice::Ipv6(n)) => {
            (n.header().source_addr().into(), n.header().destination_addr().into(), n.header().hop_limit())
        }
        other => panic!("we parsed IP, etherparse found {other:?}"),
    };
    assert_eq!((src, dst, ttl), (flow.src, flow.dst, pkt.ttl()), "addresses and TTL vs etherparse");
    match &theirs.transport {
        Some(TransportSlice::Tcp(t)) => {
            assert_eq!(flow.proto, Protocol::Tcp);
            assert_eq!((t.source_port(), t.destination_port()), (flow.src_port, flow.dst_port));
            let f = pkt.tcp_flags();
            assert_eq!((t.syn(), t.ack(), t.fin(), t.rst()), (f.syn(), f.ack(), f.fin(), f.rst()));
        }
        Some(TransportSlice::Udp(u)) => {
            assert_eq!(flow.proto, Protocol::Udp);
            assert_eq!((u.source_port(), u.destination_port()), (flow.src_port, flow.dst_port));
        }
        Some(TransportSlice::Icmpv4(i)) => {
            assert_eq!(flow.proto, Protocol::Icmp);
            assert_eq!(pkt.icmp_type_code(), Some((i.type_u8(), i.code_u8())));
        }
        Some(TransportSlice::Icmpv6(i)) => {
            assert_eq!(flow.proto, Protocol::Icmpv6);
            assert_eq!(pkt.icmp_type_code(), Some((i.type_u8(), i.code_u8())));
        }
        _ => {}
    }
});
