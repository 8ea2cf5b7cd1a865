//! Property tests over generated frames (IPv4 / IPv6, TCP / UDP, VLAN tags, IPv4 options, IPv6
//! extension headers, random addresses, ports and payloads, some checksums deliberately wrong),
//! judged by etherparse.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lb_rewrite::{
    build_time_exceeded, build_too_big, dnat, dr, nat_icmp_in, nat_icmp_out, parse, snat, tun, Encap, FrameBuf,
    MacAddr, NextHop, Packet, ReplySource, RewriteError, Tunnel, Verdict,
};
use lb_sched::Protocol;
use proptest::prelude::*;
use support::{build, checks, swap_ends, Built, IpSpec, L4Spec, Spec};

const DIRECTOR: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const NEXT: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// `cases` cases; no regression files (the tests live outside `src/`, where proptest looks).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn hop(mtu: u16) -> NextHop {
    NextHop { src_mac: DIRECTOR, dst_mac: NEXT, mtu }
}

fn err_amount() -> impl Strategy<Value = u16> {
    prop_oneof![3 => Just(0u16), 1 => 1u16..0xFFFF]
}

fn ttl() -> impl Strategy<Value = u8> {
    prop_oneof![8 => 2u8..=255, 1 => 0u8..=1]
}

fn v4_spec(df: impl Strategy<Value = bool>) -> impl Strategy<Value = IpSpec> {
    (any::<[u8; 4]>(), any::<[u8; 4]>(), ttl(), any::<u8>(), df, any::<u16>(), 0usize..=10).prop_flat_map(
        |(src, dst, ttl, tos, df, id, words)| {
            proptest::collection::vec(any::<u8>(), words * 4).prop_map(move |options| IpSpec::V4 {
                src,
                dst,
                ttl,
                tos,
                df,
                id,
                options,
            })
        },
    )
}

fn v6_spec() -> impl Strategy<Value = IpSpec> {
    let ext = |kind: u8| proptest::option::of((Just(kind), 0u8..=2));
    (any::<[u8; 16]>(), any::<[u8; 16]>(), ttl(), any::<u8>(), 0u32..(1 << 20), ext(0), ext(60), ext(43)).prop_map(
        |(src, dst, hlim, tc, flow, hbh, dest, routing)| IpSpec::V6 {
            src,
            dst,
            hlim,
            tc,
            flow,
            exts: [hbh, dest, routing].into_iter().flatten().collect(),
        },
    )
}

fn l4_spec() -> impl Strategy<Value = L4Spec> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u8>(), 0u8..=4).prop_map(|(sport, dport, flags, opt_words)| L4Spec::Tcp {
            sport,
            dport,
            flags,
            opt_words
        }),
        (any::<u16>(), any::<u16>(), prop::bool::weighted(0.2)).prop_map(|(sport, dport, zero)| L4Spec::Udp {
            sport,
            dport,
            zero
        }),
    ]
}

fn tags() -> impl Strategy<Value = Vec<u16>> {
    prop_oneof![Just(vec![]), Just(vec![0x8100]), Just(vec![0x88A8, 0x8100])]
}

fn spec_with(ip: impl Strategy<Value = IpSpec>, payload: std::ops::Range<usize>) -> impl Strategy<Value = Spec> {
    (tags(), ip, l4_spec(), proptest::collection::vec(any::<u8>(), payload), 0usize..20, err_amount(), err_amount())
        .prop_map(|(tags, ip, l4, payload, padding, ip_err, l4_err)| {
            let ip_err = if matches!(ip, IpSpec::V4 { .. }) { ip_err } else { 0 };
            Spec { tags, ip, l4, payload, padding, ip_err, l4_err }
        })
}

fn spec() -> impl Strategy<Value = Spec> {
    spec_with(prop_oneof![v4_spec(any::<bool>()), v6_spec()], 0..300)
}

fn addr_like(v6: bool, seed: u32) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, (seed >> 16) as u16, seed as u16))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (seed & 0x00FF_FFFF)))
    }
}

/// The frame in a buffer with `headroom` bytes in front.
fn framebuf(bytes: &[u8], headroom: usize) -> Vec<u8> {
    let mut buf = vec![0u8; headroom + bytes.len() + 16];
    buf[headroom..headroom + bytes.len()].copy_from_slice(bytes);
    buf
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Dnat,
    Snat,
    Dr,
}

/// Byte positions a mode may change in a frame (MACs, TTL, checksums, one address and port).
fn allowed_changes(pkt: &Packet, mode: Mode) -> Vec<usize> {
    let (l3, l4) = (pkt.l3(), pkt.l4());
    let mut v: Vec<usize> = (0..12).collect();
    let v4 = !pkt.flow().is_ipv6();
    if v4 {
        v.extend([l3 + 8, l3 + 10, l3 + 11]);
    } else {
        v.push(l3 + 7);
    }
    let (addr, port) = match mode {
        Mode::Dnat => (if v4 { l3 + 16 } else { l3 + 24 }, l4 + 2),
        Mode::Snat => (if v4 { l3 + 12 } else { l3 + 8 }, l4),
        Mode::Dr => return v,
    };
    v.extend(addr..addr + if v4 { 4 } else { 16 });
    v.extend([port, port + 1]);
    let csum = if pkt.flow().proto == Protocol::Tcp { l4 + 16 } else { l4 + 6 };
    v.extend([csum, csum + 1]);
    v
}

/// The checksum rule: right stays right (exactly), wrong stays wrong by the same amount.
fn assert_checksum_rule(name: &str, input: Option<support::Check>, output: Option<support::Check>) {
    match (input, output) {
        (Some(i), Some(o)) => {
            assert_eq!(o.error(), i.error(), "{name}: error changed: in {i:?} out {o:?}");
            if i.stored == i.computed {
                assert_eq!(o.stored, o.computed, "{name}: was right, now {o:?}");
            }
        }
        (None, None) => {}
        (i, o) => panic!("{name}: checksum presence changed: {i:?} -> {o:?}"),
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// NAT and DR: the output parses (etherparse), every checksum obeys the rule, only the bytes
    /// the mode may change have changed, and the flow is what the mode says.
    #[test]
    fn nat_and_dr_keep_checksums_honest(s in spec(), mode in 0u8..3, seed in any::<u32>(), port in any::<u16>()) {
        let built = build(&s);
        let pkt = parse(&built.bytes).expect("generated frame parses");
        // Our parser agrees with the builder.
        prop_assert_eq!((pkt.l3(), pkt.l4(), pkt.ip_end()), (built.l3, built.l4, built.end));
        let before = checks(&built.bytes).unwrap();
        let mode = [Mode::Dnat, Mode::Snat, Mode::Dr][usize::from(mode)];
        let target = SocketAddr::new(addr_like(pkt.flow().is_ipv6(), seed), port);
        let mut buf = framebuf(&built.bytes, 0);
        let mut frame = FrameBuf::new(&mut buf, 0, built.bytes.len()).unwrap();
        let mut sink = |_: &[u8]| panic!("no fragments at MTU 1500");
        let verdict = match mode {
            Mode::Dnat => dnat(&mut frame, &pkt, &hop(1500), target, &mut sink),
            Mode::Snat => snat(&mut frame, &pkt, &hop(1500), target, &mut sink),
            Mode::Dr => dr(&mut frame, &pkt, &hop(1500), &mut sink),
        }.unwrap();
        let out = frame.frame().to_vec();
        if pkt.ttl() <= 1 {
            prop_assert_eq!(verdict, Verdict::TimeExceeded);
            prop_assert_eq!(out, built.bytes);
            return Ok(());
        }
        prop_assert_eq!(verdict, Verdict::Forward);
        prop_assert_eq!(out.len(), built.bytes.len());
        let allowed = allowed_changes(&pkt, mode);
        for (i, (a, b)) in built.bytes.iter().zip(&out).enumerate() {
            prop_assert!(a == b || allowed.contains(&i), "byte {} changed ({:02x} -> {:02x})", i, a, b);
        }
        prop_assert_eq!(&out[..6], &NEXT.0);
        prop_assert_eq!(&out[6..12], &DIRECTOR.0);

        let after = checks(&out).expect("output parses with etherparse");
        assert_checksum_rule("ipv4 header", before.ip, after.ip);
        let nat = !matches!(mode, Mode::Dr);
        if before.udp_none || (before.l4.map(|c| c.stored) == Some(0) && pkt.flow().proto == Protocol::Udp) {
            if nat {
                // IPVS computes a zero UDP checksum in full.
                let l4 = after.l4.expect("a computed UDP checksum");
                prop_assert!(l4.stored != 0 && l4.stored == l4.computed, "{:?}", l4);
            } else {
                prop_assert_eq!(after.udp_none, before.udp_none);
            }
        } else {
            assert_checksum_rule("transport", before.l4, after.l4);
        }

        let o = parse(&out).unwrap();
        prop_assert_eq!(o.ttl(), pkt.ttl() - 1);
        let f = pkt.flow();
        let want = match mode {
            Mode::Dnat => lb_sched::Flow { dst: target.ip(), dst_port: target.port(), ..f },
            Mode::Snat => lb_sched::Flow { src: target.ip(), src_port: target.port(), ..f },
            Mode::Dr => f,
        };
        prop_assert_eq!(o.flow(), want);
    }

    /// DNAT of a request, then SNAT of its reply (the DNAT'ed packet with ends swapped), restores
    /// the original tuple, and every checksum is right at each step.
    #[test]
    fn dnat_then_snat_restores_the_tuple(s in spec(), seed in any::<u32>(), port in any::<u16>()) {
        let mut s = s;
        s.ip_err = 0;
        s.l4_err = 0;
        match &mut s.ip {
            // Two hops: the request's and the reply's.
            IpSpec::V4 { ttl, .. } => *ttl = (*ttl).max(3),
            IpSpec::V6 { hlim, .. } => *hlim = (*hlim).max(3),
        }
        let built = build(&s);
        let pkt = parse(&built.bytes).unwrap();
        let original = pkt.flow();
        let rs = SocketAddr::new(addr_like(original.is_ipv6(), seed), port);
        let vs = SocketAddr::new(original.dst, original.dst_port);

        let mut buf = framebuf(&built.bytes, 0);
        let mut frame = FrameBuf::new(&mut buf, 0, built.bytes.len()).unwrap();
        prop_assert_eq!(dnat(&mut frame, &pkt, &hop(1500), rs, &mut |_: &[u8]| {}).unwrap(), Verdict::Forward);
        let mut reply = frame.frame().to_vec();
        swap_ends(&mut reply, built.l3, built.l4);
        let c = checks(&reply).unwrap();
        prop_assert!(c.ip.is_none_or(|x| x.stored == x.computed));
        prop_assert!(c.l4.is_none_or(|x| x.stored == x.computed));

        let rpkt = parse(&reply).unwrap();
        prop_assert_eq!(rpkt.flow().src, rs.ip());
        prop_assert_eq!(rpkt.flow().src_port, rs.port());
        let mut rbuf = framebuf(&reply, 0);
        let mut rframe = FrameBuf::new(&mut rbuf, 0, reply.len()).unwrap();
        prop_assert_eq!(snat(&mut rframe, &rpkt, &hop(1500), vs, &mut |_: &[u8]| {}).unwrap(), Verdict::Forward);
        let back = parse(rframe.frame()).unwrap();
        prop_assert_eq!(back.flow().reversed(), original);
        let c = checks(rframe.frame()).unwrap();
        prop_assert!(c.ip.is_none_or(|x| x.stored == x.computed));
        prop_assert!(c.l4.is_none_or(|x| x.stored == x.computed), "{:?}", c);
    }

    /// TUN: the output decapsulated is the input IP packet except the TTL / hop limit (one less)
    /// and the IPv4 header checksum (updated by the rule); the outer header is as IPVS builds it.
    #[test]
    fn tun_decapsulates_to_the_input(
        s in spec(),
        outer_v6 in any::<bool>(),
        gue in proptest::option::of(1u16..),
        ident in any::<u16>(),
        seed in any::<u32>(),
    ) {
        let built = build(&s);
        let pkt = parse(&built.bytes).unwrap();
        let tunnel = Tunnel {
            src: addr_like(outer_v6, seed ^ 0xFFFF),
            dst: addr_like(outer_v6, seed),
            encap: gue.map_or(Encap::Ipip, |port| Encap::Gue { port }),
            ident,
        };
        let overhead = tunnel.overhead();
        let mut buf = framebuf(&built.bytes, 64);
        let mut frame = FrameBuf::new(&mut buf, 64, built.bytes.len()).unwrap();
        let v = tun(&mut frame, &pkt, &hop(1500), &tunnel, &mut |_: &[u8]| panic!("no fragments")).unwrap();
        if pkt.ttl() <= 1 {
            prop_assert_eq!(v, Verdict::TimeExceeded);
            prop_assert_eq!(frame.frame(), &built.bytes[..]);
            return Ok(());
        }
        prop_assert_eq!(v, Verdict::Forward);
        let out = frame.frame().to_vec();
        let l3 = built.l3;
        let ip_len = built.end - l3;
        prop_assert_eq!(out.len(), l3 + overhead + ip_len);
        prop_assert_eq!(frame.start(), 64 - overhead);
        // L2: new MACs, same tags, outer ethertype.
        prop_assert_eq!(&out[..6], &NEXT.0);
        prop_assert_eq!(&out[6..12], &DIRECTOR.0);
        prop_assert_eq!(&out[12..l3 - 2], &built.bytes[12..l3 - 2]);
        prop_assert_eq!(&out[l3 - 2..l3], if outer_v6 { &[0x86, 0xDD] } else { &[0x08, 0x00] });

        // Inner packet: equal but for TTL and IPv4 checksum.
        let inner = &out[l3 + overhead..];
        let orig = &built.bytes[l3..built.end];
        let v4 = !pkt.flow().is_ipv6();
        let skip: &[usize] = if v4 { &[8, 10, 11] } else { &[7] };
        for i in 0..ip_len {
            if !skip.contains(&i) {
                prop_assert_eq!(inner[i], orig[i], "inner byte {} differs", i);
            }
        }
        let ttl_at = if v4 { 8 } else { 7 };
        prop_assert_eq!(inner[ttl_at], orig[ttl_at] - 1);
        let mut inner_frame = built.bytes[..l3].to_vec();
        inner_frame.extend_from_slice(inner);
        let before = checks(&built.bytes).unwrap();
        let after = checks(&inner_frame).unwrap();
        assert_checksum_rule("inner ipv4", before.ip, after.ip);
        if !before.udp_none {
            assert_checksum_rule("inner transport", before.l4, after.l4);
        }

        // Outer header.
        let o = &out[l3..l3 + overhead];
        let inner_proto = if v4 { 4 } else { 41 };
        let ds = if v4 { orig[1] } else { (orig[0] << 4) | (orig[1] >> 4) };
        let want_ds = if ds & 3 == 3 { (ds & !3) | 2 } else { ds };
        let next = if gue.is_some() { 17 } else { inner_proto };
        if outer_v6 {
            prop_assert_eq!(o[0], 0x60 | (want_ds >> 4));
            prop_assert_eq!(o[1], want_ds << 4);
            prop_assert_eq!(&o[2..4], &[0, 0]);
            prop_assert_eq!(usize::from(u16::from_be_bytes([o[4], o[5]])), overhead - 40 + ip_len);
            prop_assert_eq!((o[6], o[7]), (next, inner[ttl_at]));
        } else {
            prop_assert_eq!((o[0], o[1]), (0x45, want_ds));
            prop_assert_eq!(usize::from(u16::from_be_bytes([o[2], o[3]])), overhead + ip_len);
            prop_assert_eq!(u16::from_be_bytes([o[4], o[5]]), ident);
            prop_assert_eq!(o[6], if !v4 || pkt.df() { 0x40 } else { 0 });
            prop_assert_eq!(o[7], 0);
            prop_assert_eq!((o[8], o[9]), (inner[ttl_at], next));
            let c = checks(&out).unwrap().ip.unwrap();
            prop_assert_eq!(c.stored, c.computed);
        }
        if let Some(port) = gue {
            let ip_hdr = if outer_v6 { 40 } else { 20 };
            let u = &o[ip_hdr..];
            let sport = u16::from_be_bytes([u[0], u[1]]);
            prop_assert!((32768..=60999).contains(&sport));
            prop_assert_eq!(sport, lb_rewrite::gue_source_port(&pkt.flow()));
            prop_assert_eq!(u16::from_be_bytes([u[2], u[3]]), port);
            prop_assert_eq!(usize::from(u16::from_be_bytes([u[4], u[5]])), 12 + ip_len);
            prop_assert_eq!(&u[6..12], &[0, 0, 0, inner_proto, 0, 0]);
        }
    }
}

/// How wrong the checksum of a header is (0: right), as [`support::Check::error`] counts it.
fn header_error(h: &[u8]) -> u16 {
    lb_rewrite::checksum::difference(lb_rewrite::checksum::Sum::new().add_bytes(h).fold(), 0)
}

/// Reassembles IPv4 fragments (Ethernet frames) and checks each one; returns the payload.
fn reassemble_v4(frags: &[Vec<u8>], l2: usize, mtu: usize, first_hdr: &[u8], ip_err: u16) -> Vec<u8> {
    let mut payload = Vec::new();
    let hl = usize::from(first_hdr[0] & 0x0F) * 4;
    for (i, f) in frags.iter().enumerate() {
        let ip = &f[l2..];
        assert_eq!(usize::from(ip[0] & 0x0F) * 4, hl, "every fragment keeps the header length");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(total, ip.len());
        assert!(total <= mtu, "fragment {i} of {total} bytes over MTU {mtu}");
        let frag = u16::from_be_bytes([ip[6], ip[7]]);
        let last = i + 1 == frags.len();
        assert_eq!(frag & 0x2000 != 0, !last, "MF on all but the last");
        assert_eq!(usize::from(frag & 0x1FFF) * 8, payload.len(), "offsets are contiguous");
        if !last {
            assert_eq!((total - hl) % 8, 0);
        }
        // Same header as the first except length, flags/offset, checksum, and in later fragments
        // the non-copied options (NOPs).
        assert_eq!(&ip[..2], &first_hdr[..2]);
        assert_eq!(&ip[4..6], &first_hdr[4..6]);
        assert_eq!(&ip[8..10], &first_hdr[8..10]);
        assert_eq!(&ip[12..20], &first_hdr[12..20]);
        for (j, (a, b)) in ip[20..hl].iter().zip(&first_hdr[20..hl]).enumerate() {
            assert!(i == 0 && a == b || i > 0 && (a == b || *a == 1), "option byte {j} of fragment {i}");
        }
        let err = header_error(&ip[..hl]);
        // The stored checksum is off by exactly the input's error.
        assert_eq!(err, ip_err, "fragment {i} header checksum error");
        payload.extend_from_slice(&ip[hl..]);
    }
    payload
}

proptest! {
    #![proptest_config(config(128))]

    /// IPv4 without DF over the MTU: RFC 791 fragments whose reassembly is exactly the packet the
    /// rewrite produces with a large MTU; each header checksum obeys the rule.
    #[test]
    fn fragments_reassemble_to_the_rewrite(
        s in spec_with(v4_spec(Just(false)), 0..3000),
        mtu in 68u16..1500,
        nat in any::<bool>(),
    ) {
        let built = build(&s);
        let pkt = parse(&built.bytes).unwrap();
        prop_assume!(pkt.ttl() > 1);
        let rs: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        let run = |mtu: u16, frags: &mut Vec<Vec<u8>>| {
            let mut buf = framebuf(&built.bytes, 0);
            let mut frame = FrameBuf::new(&mut buf, 0, built.bytes.len()).unwrap();
            let mut sink = |f: &[u8]| frags.push(f.to_vec());
            let v = if nat { dnat(&mut frame, &pkt, &hop(mtu), rs, &mut sink) } else { dr(&mut frame, &pkt, &hop(mtu), &mut sink) };
            (v, frame.frame().to_vec())
        };
        let (whole_v, whole) = run(u16::MAX, &mut Vec::new());
        prop_assert_eq!(whole_v, Ok(Verdict::Forward));
        let mut frags = Vec::new();
        let (v, _) = run(mtu, &mut frags);
        let hl = pkt.l4() - pkt.l3();
        if pkt.ip_len() <= usize::from(mtu) {
            prop_assert_eq!(v, Ok(Verdict::Forward));
            return Ok(());
        }
        if usize::from(mtu) < hl + 8 {
            prop_assert_eq!(v, Err(RewriteError::MtuTooSmall));
            return Ok(());
        }
        prop_assert_eq!(v, Ok(Verdict::Fragmented { count: frags.len() as u16 }));
        let l2 = pkt.l3();
        for f in &frags {
            prop_assert_eq!(&f[..l2], &whole[..l2]);
        }
        let whole_ip = &whole[l2..built.end];
        let ip_err = checks(&built.bytes).unwrap().ip.unwrap().error();
        let payload = reassemble_v4(&frags, l2, usize::from(mtu), &whole_ip[..hl], ip_err);
        prop_assert_eq!(&payload[..], &whole_ip[hl..]);
    }

    /// TUN with an inner IPv4 packet without DF: the outer packet is fragmented (IPv4 or IPv6
    /// fragments) and reassembles to the unfragmented encapsulation.
    #[test]
    fn tun_outer_fragments_reassemble(
        s in spec_with(v4_spec(Just(false)), 1400..2000),
        outer_v6 in any::<bool>(),
        gue in any::<bool>(),
    ) {
        let mut s = s;
        if let IpSpec::V4 { ttl, .. } = &mut s.ip { *ttl = (*ttl).max(2) }
        let built = build(&s);
        let pkt = parse(&built.bytes).unwrap();
        let tunnel = Tunnel {
            src: addr_like(outer_v6, 1),
            dst: addr_like(outer_v6, 2),
            encap: if gue { Encap::Gue { port: 6080 } } else { Encap::Ipip },
            ident: 0xBEEF,
        };
        let run = |mtu: u16, frags: &mut Vec<Vec<u8>>| {
            let mut buf = framebuf(&built.bytes, 128);
            let mut frame = FrameBuf::new(&mut buf, 128, built.bytes.len()).unwrap();
            let v = tun(&mut frame, &pkt, &hop(mtu), &tunnel, &mut |f: &[u8]| frags.push(f.to_vec()));
            (v, frame.frame().to_vec())
        };
        let (v, whole) = run(u16::MAX, &mut Vec::new());
        prop_assert_eq!(v, Ok(Verdict::Forward));
        let mut frags = Vec::new();
        let (v, _) = run(1400, &mut frags);
        prop_assert_eq!(v, Ok(Verdict::Fragmented { count: frags.len() as u16 }));
        prop_assert!(frags.len() >= 2);
        let l2 = pkt.l3();
        if outer_v6 {
            let mut payload = Vec::new();
            for (i, f) in frags.iter().enumerate() {
                prop_assert!(f.len() - l2 <= 1400);
                let ip = &f[l2..];
                prop_assert_eq!(&ip[..4], &whole[l2..l2 + 4]);
                prop_assert_eq!(&ip[7..40], &whole[l2 + 7..l2 + 40]);
                prop_assert_eq!(ip[6], 44);
                prop_assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])), ip.len() - 40);
                let fh = &ip[40..48];
                prop_assert_eq!(fh[0], whole[l2 + 6]);
                let off_m = u16::from_be_bytes([fh[2], fh[3]]);
                prop_assert_eq!(usize::from(off_m & 0xFFF8), payload.len());
                prop_assert_eq!(off_m & 1 == 1, i + 1 < frags.len());
                prop_assert_eq!(u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]), 0xBEEF);
                payload.extend_from_slice(&ip[48..]);
            }
            prop_assert_eq!(&payload[..], &whole[l2 + 40..]);
        } else {
            let payload = reassemble_v4(&frags, l2, 1400, &whole[l2..l2 + 20], 0);
            prop_assert_eq!(&payload[..], &whole[l2 + 20..]);
        }
    }

    /// ICMP errors under NAT: the quoted packet and the outer header are rewritten as IPVS does,
    /// the ICMP checksum is right, and the IPv4 header checksums obey the rule.
    #[test]
    fn nat_icmp_rewrites_outer_and_quote(
        s in spec(),
        quote_extra in 0usize..64,
        inbound in any::<bool>(),
        err_type in 0usize..3,
        seed in any::<u32>(),
        port in any::<u16>(),
    ) {
        let mut s = s;
        s.tags.clear();
        s.l4_err = 0;
        let quoted = build(&s);
        let q = parse(&quoted.bytes).unwrap();
        let v6 = q.flow().is_ipv6();
        // The error travels the opposite way of the quoted packet: from its destination (client
        // side, inbound) or from a router near... its destination in any case.
        let (from, to) = (q.flow().dst, q.flow().src);
        let quote_len = (q.l4() - q.l3() + 8 + quote_extra).min(q.ip_len());
        let quote = &quoted.bytes[q.l3()..q.l3() + quote_len];
        let (ty, code) = if v6 { [(1, 4), (3, 0), (2, 0)][err_type] } else { [(3, 3), (11, 0), (3, 4)][err_type] };
        // Bytes 4..8 are zero but for the MTU of "too big" / "fragmentation needed".
        let mtu = if (v6 && ty == 2) || (!v6 && code == 4) { 1500u16 } else { 0 };
        let mut icmp = vec![ty, code, 0, 0, 0, 0];
        icmp.extend_from_slice(&mtu.to_be_bytes());
        icmp.extend_from_slice(quote);
        let frame = icmp_frame(from, to, &icmp, 64);
        let pkt = parse(&frame).unwrap();
        let qp = pkt.quote(&frame).expect("quote parsed");
        prop_assert_eq!(qp.flow(), &q.flow());
        let before = checks(&frame).unwrap();
        prop_assert_eq!(before.l4.map(|c| c.error()), Some(0));

        let target = SocketAddr::new(addr_like(v6, seed), port);
        let mut buf = framebuf(&frame, 0);
        let mut fb = FrameBuf::new(&mut buf, 0, frame.len()).unwrap();
        let v = if inbound {
            nat_icmp_in(&mut fb, &pkt, &hop(1500), target, &mut |_: &[u8]| {})
        } else {
            nat_icmp_out(&mut fb, &pkt, &hop(1500), target, &mut |_: &[u8]| {})
        };
        prop_assert_eq!(v, Ok(Verdict::Forward));
        let out = fb.frame().to_vec();
        let after = checks(&out).unwrap();
        assert_checksum_rule("outer ipv4", before.ip, after.ip);
        let l4 = after.l4.unwrap();
        prop_assert_eq!(l4.stored, l4.computed, "ICMP checksum recomputed");
        let o = parse(&out).unwrap();
        let oquote = o.quote(&out).unwrap();
        let oq = *oquote.flow();
        let qf = q.flow();
        let ports = qf.proto.has_ports();
        if inbound {
            prop_assert_eq!(o.flow().dst, target.ip());
            prop_assert_eq!(o.flow().src, pkt.flow().src);
            let want_port = if ports { target.port() } else { 0 };
            prop_assert_eq!(oq, lb_sched::Flow { src: target.ip(), src_port: want_port, ..qf });
        } else {
            prop_assert_eq!(o.flow().src, target.ip());
            prop_assert_eq!(o.flow().dst, pkt.flow().dst);
            let want_port = if ports { target.port() } else { 0 };
            prop_assert_eq!(oq, lb_sched::Flow { dst: target.ip(), dst_port: want_port, ..qf });
        }
        if !v6 {
            // The quoted IPv4 header checksum obeys the rule too.
            let qh = &out[oquote.l3()..oquote.l4()];
            let err = header_error(qh);
            prop_assert_eq!(err, checks(&quoted.bytes).unwrap().ip.unwrap().error());
        }
        // The quoted transport checksum follows the new address and port: when the whole packet
        // is quoted, it verifies exactly as the original did (here: right), by a full
        // recomputation over the quoted packet put back in a frame. A UDP checksum of zero stays
        // zero.
        let csum_off = if qf.proto == Protocol::Tcp { 16 } else { 6 };
        let at_in = q.l4() - q.l3() + csum_off;
        let udp_zero = qf.proto == Protocol::Udp && quote[at_in..at_in + 2] == [0, 0];
        if ports && quote_len == q.ip_len() && !udp_zero {
            let mut refr = quoted.bytes[..q.l3()].to_vec();
            refr.extend_from_slice(&out[oquote.l3()..oquote.l3() + quote_len]);
            let want = checks(&quoted.bytes).unwrap().l4.unwrap();
            let got = checks(&refr).unwrap().l4.unwrap();
            prop_assert_eq!(got.error(), want.error(), "quoted transport checksum");
        }
        if udp_zero && at_in + 2 <= quote_len {
            let at_out = oquote.l4() + csum_off;
            prop_assert_eq!(&out[at_out..at_out + 2], &[0u8, 0][..]);
        }
    }

    /// The ICMP replies parse, are addressed back to the sender, have right checksums, quote the
    /// packet from its IP header on and fit 576 / 1280 bytes.
    #[test]
    fn replies_are_well_formed(s in spec_with(prop_oneof![v4_spec(any::<bool>()), v6_spec()], 0..1500), mtu in 68u16..1500, too_big in any::<bool>()) {
        let built = build(&s);
        let pkt = parse(&built.bytes).unwrap();
        let v6 = pkt.flow().is_ipv6();
        let from = ReplySource { addr: addr_like(v6, 99), mac: DIRECTOR, ident: 7 };
        let mut out = [0u8; 1400];
        let r = if too_big {
            build_too_big(&built.bytes, &pkt, mtu, &from, &mut out)
        } else {
            build_time_exceeded(&built.bytes, &pkt, &from, &mut out)
        };
        let src = pkt.flow().src;
        let forbidden = match src {
            IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast()
                || matches!(pkt.flow().dst, IpAddr::V4(d) if d.is_multicast() || d.is_broadcast()),
            IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
        };
        if forbidden {
            prop_assert_eq!(r, Err(RewriteError::IcmpReplyForbidden));
            return Ok(());
        }
        let n = r.unwrap();
        let reply = &out[..n];
        let l2 = pkt.l3();
        prop_assert_eq!(&reply[..6], &built.bytes[6..12]);
        prop_assert_eq!(&reply[6..12], &DIRECTOR.0);
        prop_assert_eq!(&reply[12..l2], &built.bytes[12..l2]);
        let max = if v6 { 1280 } else { 576 };
        prop_assert!(n - l2 <= max);
        let c = checks(reply).expect("reply parses");
        prop_assert!(c.ip.is_none_or(|x| x.stored == x.computed));
        let l4 = c.l4.unwrap();
        prop_assert_eq!(l4.stored, l4.computed);
        let rp = parse(reply).unwrap();
        prop_assert_eq!(rp.flow().dst, src);
        prop_assert_eq!(rp.flow().src, from.addr);
        let hdr = if v6 { 48 } else { 28 };
        let quote = &reply[l2 + hdr..];
        prop_assert_eq!(quote, &built.bytes[l2..l2 + quote.len()]);
        prop_assert_eq!(quote.len(), pkt.ip_len().min(if v6 { 1232 } else { 548 }));
        let (ty, code) = rp.icmp_type_code().unwrap();
        let want = match (v6, too_big) {
            (false, false) => (11, 0),
            (false, true) => (3, 4),
            (true, false) => (3, 0),
            (true, true) => (2, 0),
        };
        prop_assert_eq!((ty, code), want);
        if too_big {
            let m = &reply[l2 + hdr - 4..l2 + hdr];
            prop_assert_eq!(u32::from_be_bytes([m[0], m[1], m[2], m[3]]), u32::from(mtu));
        }
    }
}

/// An Ethernet frame carrying an ICMP / ICMPv6 message `icmp` (checksum computed here).
fn icmp_frame(src: IpAddr, dst: IpAddr, icmp: &[u8], ttl: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&support::IN_DST_MAC);
    f.extend_from_slice(&support::IN_SRC_MAC);
    let mut icmp = icmp.to_vec();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let len = (20 + icmp.len()) as u16;
            let mut h = vec![0x45, 0, (len >> 8) as u8, len as u8, 0, 1, 0, 0, ttl, 1, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = lb_rewrite::checksum::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let c = lb_rewrite::checksum::checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xDD]);
            let len = icmp.len() as u16;
            f.extend_from_slice(&[0x60, 0, 0, 0, (len >> 8) as u8, len as u8, 58, ttl]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
            let c = lb_rewrite::checksum::pseudo_header_v6(&s.octets(), &d.octets(), 58, u32::from(len))
                .add_bytes(&icmp)
                .checksum();
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
        }
        _ => unreachable!(),
    }
    f.extend_from_slice(&icmp);
    // The etherparse oracle double-checks what this helper computed.
    let c = checks(&f).unwrap();
    assert!(c.l4.unwrap().error() == 0);
    f
}

fn any_params() -> impl Strategy<Value = (u8, u32, u16, u16, usize, bool)> {
    (0u8..7, any::<u32>(), any::<u16>(), 0u16..2000, 0usize..100, any::<bool>())
}

proptest! {
    #![proptest_config(config(2000))]

    /// Any bytes, and valid frames with random damage: parse never panics; whatever parses goes
    /// through every mode and builder without a panic, and a forwarded frame still parses.
    #[test]
    fn never_panics(
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        s in spec(),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        use_raw in any::<bool>(),
        params in any_params(),
    ) {
        let bytes = if use_raw {
            raw
        } else {
            let mut b = build(&s).bytes;
            for (i, v) in damage {
                let i = i.index(b.len());
                b[i] = v;
            }
            let keep = b.len() - cut.index(b.len() / 4 + 1);
            b.truncate(keep);
            b
        };
        exercise(&bytes, params);
    }
}

fn exercise(bytes: &[u8], (mode, seed, port, mtu, headroom, v6): (u8, u32, u16, u16, usize, bool)) {
    let Ok(pkt) = parse(bytes) else { return };
    let target = SocketAddr::new(addr_like(v6, seed), port);
    let mut buf = framebuf(bytes, headroom);
    let mut frame = FrameBuf::new(&mut buf, headroom, bytes.len()).unwrap();
    let mut n = 0;
    let mut sink = |f: &[u8]| {
        n += 1;
        assert!(f.len() >= 14);
    };
    let tunnel = Tunnel { src: addr_like(v6, 1), dst: target.ip(), encap: Encap::Gue { port }, ident: 1 };
    let hop = hop(mtu);
    let r = match mode {
        0 => dnat(&mut frame, &pkt, &hop, target, &mut sink),
        1 => snat(&mut frame, &pkt, &hop, target, &mut sink),
        2 => dr(&mut frame, &pkt, &hop, &mut sink),
        3 => tun(&mut frame, &pkt, &hop, &tunnel, &mut sink),
        4 => nat_icmp_in(&mut frame, &pkt, &hop, target, &mut sink),
        5 => nat_icmp_out(&mut frame, &pkt, &hop, target, &mut sink),
        _ => {
            let mut out = [0u8; 1500];
            let from = ReplySource { addr: target.ip(), mac: DIRECTOR, ident: 0 };
            let _ = build_time_exceeded(bytes, &pkt, &from, &mut out);
            let _ = build_too_big(bytes, &pkt, mtu, &from, &mut out);
            return;
        }
    };
    match r {
        Ok(Verdict::Forward) if mode != 3 => {
            parse(frame.frame()).expect("a forwarded frame parses");
        }
        Ok(Verdict::Fragmented { count }) => assert_eq!(usize::from(count), n),
        Ok(Verdict::TimeExceeded) => assert_eq!(frame.frame(), bytes),
        _ => {}
    }
}

/// The parser and etherparse agree on the flow of every generated frame.
#[test]
fn parser_agrees_with_etherparse() {
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&spec(), |s| {
            let built: Built = build(&s);
            let ours = parse(&built.bytes).unwrap();
            let theirs = etherparse::SlicedPacket::from_ethernet(&built.bytes).unwrap();
            let (sp, dp, proto) = match theirs.transport.unwrap() {
                etherparse::TransportSlice::Tcp(t) => (t.source_port(), t.destination_port(), Protocol::Tcp),
                etherparse::TransportSlice::Udp(u) => (u.source_port(), u.destination_port(), Protocol::Udp),
                _ => unreachable!(),
            };
            let (src, dst, ttl): (IpAddr, IpAddr, u8) = match theirs.net.unwrap() {
                etherparse::NetSlice::Ipv4(v4) => {
                    (v4.header().source_addr().into(), v4.header().destination_addr().into(), v4.header().ttl())
                }
                etherparse::NetSlice::Ipv6(v6) => {
                    (v6.header().source_addr().into(), v6.header().destination_addr().into(), v6.header().hop_limit())
                }
                _ => unreachable!(),
            };
            prop_assert_eq!(ours.flow(), lb_sched::Flow { proto, src, dst, src_port: sp, dst_port: dp });
            prop_assert_eq!(ours.ttl(), ttl);
            prop_assert_eq!(usize::from(ours.vlan_tags()), s.tags.len());
            Ok(())
        })
        .unwrap();
}
