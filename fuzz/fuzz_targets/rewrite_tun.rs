//! `rewrite_tun`: IP-in-IP encapsulation of any frame (IPIP or GUE, outer IPv4 or IPv6, any
//! tunnel endpoints, identification, MTU, MACs and headroom).
//!
//! Asserts: no panic; no write outside the frame and the headroom the tunnel may take (its
//! overhead, plus 8 bytes for an IPv6 fragment header); an error other than `MtuTooSmall` leaves
//! the buffer unchanged; verdicts as documented. When the packet describes its frame and the
//! result is `Forward`: the frame grew by exactly the overhead in front, the L2 header has the
//! new MACs, the same VLAN tags and the outer ethertype, the output parses with etherparse, the
//! outer IPv4 header checksum is right, and the decapsulated packet is the input's with the TTL /
//! hop limit one less and every checksum keeping its validity (right stays right, wrong stays
//! exactly as wrong, judged by etherparse's full recomputation).
#![no_main]

use lb_rewrite::{tun, Encap, IpVersion, Tunnel, Verdict};
use lbkit_fuzz::oracle::{assert_rule, checks};
use lbkit_fuzz::rewrite::{assert_changes_within, run, Case, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input<'_>| {
    let Some(case) = Case::new(&input) else { return };
    let (pkt, hop, k) = (case.pkt, case.hop(), case.knobs);
    let encap = if k.select & 1 == 0 { Encap::Ipip } else { Encap::Gue { port: k.port } };
    let tunnel = Tunnel { src: k.a.ip(), dst: k.b.ip(), encap, ident: k.ident };
    let overhead = tunnel.overhead();
    let mut arena = case.arena();
    let done = run(&mut arena, |fb, sink| tun(fb, &pkt, &hop, &tunnel, sink));
    case.check_common(&arena, &done, overhead + 8);
    if done.result != Ok(Verdict::Forward) || !case.trusted {
        return;
    }
    let out = &arena.buf[done.start..done.start + done.len];
    let (l3, ip_len) = (pkt.l3(), pkt.ip_len());
    assert_eq!(done.start, arena.head - overhead, "the frame starts the overhead earlier");
    assert_eq!(out.len(), l3 + overhead + ip_len, "L2 + outer headers + the inner packet (padding dropped)");
    assert_eq!(&out[..6], &k.dst_mac, "destination MAC");
    assert_eq!(&out[6..12], &k.src_mac, "source MAC");
    assert_eq!(&out[12..l3 - 2], &case.frame[12..l3 - 2], "VLAN tags");
    let outer_ethertype: [u8; 2] = if k.b.v6 { [0x86, 0xDD] } else { [0x08, 0x00] };
    assert_eq!(out[l3 - 2..l3], outer_ethertype, "outer ethertype");

    // The inner packet: the input's, but for the TTL / hop limit and the IPv4 header checksum.
    let inner = &out[l3 + overhead..];
    let orig = &case.frame[l3..pkt.ip_end()];
    let (ttl_at, allowed): (usize, &[usize]) = match pkt.version() {
        IpVersion::V4 => (8, &[8, 10, 11]),
        IpVersion::V6 => (7, &[7]),
    };
    assert_changes_within(orig, inner, allowed);
    assert_eq!(inner[ttl_at], orig[ttl_at] - 1, "inner TTL / hop limit");

    if case.oracle {
        let outer = checks(out).unwrap_or_else(|e| panic!("the encapsulated frame does not parse: {e}"));
        if let Some(ip) = outer.ip {
            assert_eq!(ip.stored, ip.computed, "outer IPv4 header checksum");
        }
        let mut decap = case.frame[..l3].to_vec();
        decap.extend_from_slice(inner);
        let (i, o) = (checks(&case.frame).unwrap(), checks(&decap).expect("the inner packet parses"));
        assert_rule("inner ipv4 header", i.ip, o.ip);
        assert_rule("inner transport", i.l4, o.l4);
    }
});
