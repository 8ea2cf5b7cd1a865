//! lb-rewrite: ns per packet, parse included, per mode and frame size, with `smoltcp::wire` and
//! `pnet_packet` doing the same DNAT in the NAT groups (reference/peers.md §4(d)).
//!
//! Every contender works on the same frame in a buffer that stays hot in cache, as a frame in a
//! receive ring would be. Each iteration first copies the original headers (Ethernet, IP, TCP:
//! 54 / 74 bytes) back over the previous iteration's output, so every iteration rewrites the
//! same received frame; `reset_only` in each group times that copy alone (subtract it to get
//! the rewrite). Each contender does the whole job a director does for a NAT request: parse
//! Ethernet / IP / TCP, new destination and source MACs, TTL / hop limit decremented, new
//! destination address and port, IPv4 header and TCP checksums made right. lbkit updates the
//! checksums incrementally (RFC 1624); the peers' APIs recompute them in full. Every contender
//! also materialises the 5-tuple it parsed (`black_box(&tuple)`), as a director does for its
//! connection lookup. Each contender's output is verified once (etherparse re-parse, checksums, fields)
//! before timing.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-rewrite cargo bench -p lb-benches --bench rewrite -- \
//!       --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lb_rewrite::{
    checksum, dnat, dr, parse, tun, DiscardFragments, Encap, FrameBuf, MacAddr, NextHop, Tunnel, Verdict,
};

const DIRECTOR: [u8; 6] = [2, 0, 0, 0, 0, 1];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const RS4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const RS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const RPORT: u16 = 8080;
/// Headroom in front of every frame (TUN needs 20).
const HEADROOM: usize = 64;

fn hop() -> NextHop {
    // A jumbo-capable link, so that a 1500-byte packet plus a tunnel header still fits.
    NextHop { src_mac: MacAddr(DIRECTOR), dst_mac: MacAddr(RS_MAC), mtu: 9000 }
}

/// An Ethernet / IPv4 or IPv6 / TCP frame of `frame_len` bytes, checksums right.
fn tcp_frame(v6: bool, frame_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; frame_len];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x0d]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x0c]);
    let (l4, ip_len) = if v6 {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let payload = (frame_len - 54) as u16;
        f[14..22].copy_from_slice(&[0x60, 0, 0, 0, (payload >> 8) as u8, payload as u8, 6, 64]);
        f[22..38].copy_from_slice(&"2001:db8:c::7".parse::<Ipv6Addr>().unwrap().octets());
        f[38..54].copy_from_slice(&"2001:db8:f::1".parse::<Ipv6Addr>().unwrap().octets());
        (54, frame_len - 14)
    } else {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = (frame_len - 14) as u16;
        f[14..34].copy_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0x12,
            0x34,
            0x40,
            0,
            64,
            6,
            0,
            0,
            192,
            0,
            2,
            7,
            198,
            51,
            100,
            1,
        ]);
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        (34, frame_len - 14)
    };
    let t = &mut f[l4..l4 + 20];
    t.copy_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    for (i, b) in f[l4 + 20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let seg_len = ip_len - (l4 - 14);
    let pseudo = if v6 {
        checksum::pseudo_header_v6(f[22..38].try_into().unwrap(), f[38..54].try_into().unwrap(), 6, seg_len as u32)
    } else {
        checksum::pseudo_header_v4(f[26..30].try_into().unwrap(), f[30..34].try_into().unwrap(), 6, seg_len as u16)
    };
    let c = pseudo.add_bytes(&f[l4..]).checksum();
    f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    verify(&f, None);
    f
}

/// etherparse re-parses the frame and every checksum is right; with `dnat`, the destination is
/// the real server, the MACs and TTL are the rewritten ones.
fn verify(frame: &[u8], dnat_to: Option<IpAddr>) {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses the frame");
    let (src, dst, ttl) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum(), "IPv4 header checksum");
            (IpAddr::from(h.source()), IpAddr::from(h.destination()), h.ttl())
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (IpAddr::from(h.source()), IpAddr::from(h.destination()), h.hop_limit())
        }
        _ => panic!("not IP"),
    };
    let Some(TransportSlice::Tcp(t)) = &p.transport else { panic!("not TCP") };
    let want = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => t.calc_checksum_ipv4(s.octets(), d.octets()).unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => t.calc_checksum_ipv6(s.octets(), d.octets()).unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(t.checksum(), want, "TCP checksum");
    if let Some(rs) = dnat_to {
        assert_eq!(dst, rs);
        assert_eq!(t.destination_port(), RPORT);
        assert_eq!(ttl, 63);
        assert_eq!(&frame[..6], &RS_MAC);
        assert_eq!(&frame[6..12], &DIRECTOR);
    }
}

// ----- the contenders' DNAT -----------------------------------------------------------------

fn lbkit_dnat(buf: &mut [u8], len: usize, to: SocketAddr) -> Verdict {
    let mut frame = FrameBuf::new(buf, HEADROOM, len).unwrap();
    // Bound by reference, as the crate docs advise: moving the `Packet` out of the `Result`
    // right after it was written costs a store-forwarding stall.
    let parsed = parse(frame.frame());
    let Ok(pkt) = &parsed else { panic!("parse") };
    black_box(&pkt.flow());
    dnat(&mut frame, pkt, &hop(), to, &mut DiscardFragments::default()).unwrap()
}

fn lbkit_dr(buf: &mut [u8], len: usize) -> Verdict {
    let mut frame = FrameBuf::new(buf, HEADROOM, len).unwrap();
    let parsed = parse(frame.frame());
    let Ok(pkt) = &parsed else { panic!("parse") };
    black_box(&pkt.flow());
    dr(&mut frame, pkt, &hop(), &mut DiscardFragments::default()).unwrap()
}

/// Returns the verdict and the new start of the frame (20 bytes earlier).
fn lbkit_tun(buf: &mut [u8], len: usize, tunnel: &Tunnel) -> (Verdict, usize) {
    let mut frame = FrameBuf::new(buf, HEADROOM, len).unwrap();
    let parsed = parse(frame.frame());
    let Ok(pkt) = &parsed else { panic!("parse") };
    black_box(&pkt.flow());
    let v = tun(&mut frame, pkt, &hop(), tunnel, &mut DiscardFragments::default()).unwrap();
    (v, frame.start())
}

fn smoltcp_dnat(frame: &mut [u8], to: SocketAddr) {
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket,
    };
    let mut eth = EthernetFrame::new_checked(frame).unwrap();
    eth.set_dst_addr(EthernetAddress(RS_MAC));
    eth.set_src_addr(EthernetAddress(DIRECTOR));
    match (eth.ethertype(), to.ip()) {
        (EthernetProtocol::Ipv4, IpAddr::V4(rs)) => {
            let mut ip = Ipv4Packet::new_checked(eth.payload_mut()).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload_mut()).unwrap();
            let ports = (tcp.src_port(), tcp.dst_port());
            black_box(&(ip.src_addr(), ip.dst_addr(), ports));
            let ttl = ip.hop_limit();
            ip.set_hop_limit(ttl - 1);
            ip.set_dst_addr(rs);
            let src = IpAddress::Ipv4(ip.src_addr());
            let mut tcp = TcpPacket::new_checked(ip.payload_mut()).unwrap();
            tcp.set_dst_port(to.port());
            tcp.fill_checksum(&src, &IpAddress::Ipv4(rs));
            ip.fill_checksum();
        }
        (EthernetProtocol::Ipv6, IpAddr::V6(rs)) => {
            let mut ip = Ipv6Packet::new_checked(eth.payload_mut()).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload_mut()).unwrap();
            let ports = (tcp.src_port(), tcp.dst_port());
            black_box(&(ip.src_addr(), ip.dst_addr(), ports));
            let hl = ip.hop_limit();
            ip.set_hop_limit(hl - 1);
            ip.set_dst_addr(rs);
            let src = IpAddress::Ipv6(ip.src_addr());
            let mut tcp = TcpPacket::new_checked(ip.payload_mut()).unwrap();
            tcp.set_dst_port(to.port());
            tcp.fill_checksum(&src, &IpAddress::Ipv6(rs));
        }
        _ => panic!("unexpected frame"),
    }
}

fn pnet_dnat(frame: &mut [u8], to: SocketAddr) {
    use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
    use pnet_packet::ipv4::{self, MutableIpv4Packet};
    use pnet_packet::ipv6::MutableIpv6Packet;
    use pnet_packet::tcp::{self, MutableTcpPacket};
    use pnet_packet::MutablePacket;
    let mut eth = MutableEthernetPacket::new(frame).unwrap();
    eth.set_destination(RS_MAC.into());
    eth.set_source(DIRECTOR.into());
    let ethertype = eth.get_ethertype();
    match (ethertype, to.ip()) {
        (EtherTypes::Ipv4, IpAddr::V4(rs)) => {
            let mut ip = MutableIpv4Packet::new(eth.payload_mut()).unwrap();
            let tcp = MutableTcpPacket::new(ip.payload_mut()).unwrap();
            let ports = (tcp.get_source(), tcp.get_destination());
            black_box(&(ip.get_source(), ip.get_destination(), ports));
            let ttl = ip.get_ttl();
            ip.set_ttl(ttl - 1);
            ip.set_destination(rs);
            let src = ip.get_source();
            {
                let mut tcp = MutableTcpPacket::new(ip.payload_mut()).unwrap();
                tcp.set_destination(to.port());
                let c = tcp::ipv4_checksum(&tcp.to_immutable(), &src, &rs);
                tcp.set_checksum(c);
            }
            let c = ipv4::checksum(&ip.to_immutable());
            ip.set_checksum(c);
        }
        (EtherTypes::Ipv6, IpAddr::V6(rs)) => {
            let mut ip = MutableIpv6Packet::new(eth.payload_mut()).unwrap();
            let tcp = MutableTcpPacket::new(ip.payload_mut()).unwrap();
            let ports = (tcp.get_source(), tcp.get_destination());
            black_box(&(ip.get_source(), ip.get_destination(), ports));
            let hl = ip.get_hop_limit();
            ip.set_hop_limit(hl - 1);
            ip.set_destination(rs);
            let src = ip.get_source();
            let mut tcp = MutableTcpPacket::new(ip.payload_mut()).unwrap();
            tcp.set_destination(to.port());
            let c = tcp::ipv6_checksum(&tcp.to_immutable(), &src, &rs);
            tcp.set_checksum(c);
        }
        _ => panic!("unexpected frame"),
    }
}

/// Ethernet + IP + TCP header bytes of the frames built here.
fn headers_len(v6: bool) -> usize {
    if v6 {
        74
    } else {
        54
    }
}

/// Copies the original headers back into the working buffer (undoes the previous rewrite).
#[inline(always)]
fn restore(work: &mut [u8], orig: &[u8], len: usize) {
    work[HEADROOM..HEADROOM + len].copy_from_slice(&orig[HEADROOM..HEADROOM + len]);
    black_box(&mut *work);
}

/// The cost of `restore` alone, for subtraction.
fn bench_reset(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    size: usize,
    buf: &[u8],
    len: usize,
) {
    g.bench_with_input(BenchmarkId::new("reset_only", size), &size, |bch, _| {
        let mut b = buf.to_vec();
        bch.iter(|| restore(&mut b, buf, len))
    });
}

/// A buffer holding `frame` after `HEADROOM` bytes.
fn with_headroom(frame: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; HEADROOM + frame.len()];
    b[HEADROOM..].copy_from_slice(frame);
    b
}

fn nat_groups(c: &mut Criterion) {
    for (name, v6, sizes) in [("nat_v4_tcp", false, [64usize, 1514]), ("nat_v6_tcp", true, [74, 1514])] {
        let to = if v6 { SocketAddr::new(RS6.into(), RPORT) } else { SocketAddr::new(RS4.into(), RPORT) };
        let mut g = c.benchmark_group(format!("rewrite/{name}"));
        g.throughput(Throughput::Elements(1));
        for size in sizes {
            let frame = tcp_frame(v6, size);
            let buf = with_headroom(&frame);

            // Each contender's output, checked once.
            let mut b = buf.clone();
            assert_eq!(lbkit_dnat(&mut b, frame.len(), to), Verdict::Forward);
            verify(&b[HEADROOM..], Some(to.ip()));
            let mut b = frame.clone();
            smoltcp_dnat(&mut b, to);
            verify(&b, Some(to.ip()));
            let mut b = frame.clone();
            pnet_dnat(&mut b, to);
            verify(&b, Some(to.ip()));

            let reset = headers_len(v6);
            bench_reset(&mut g, size, &buf, reset);
            g.bench_with_input(BenchmarkId::new("lbkit", size), &size, |bch, _| {
                let mut b = buf.clone();
                bch.iter(|| {
                    restore(&mut b, &buf, reset);
                    black_box(lbkit_dnat(black_box(&mut b), frame.len(), black_box(to)))
                })
            });
            g.bench_with_input(BenchmarkId::new("smoltcp", size), &size, |bch, _| {
                let mut b = buf.clone();
                bch.iter(|| {
                    restore(&mut b, &buf, reset);
                    smoltcp_dnat(black_box(&mut b[HEADROOM..]), black_box(to))
                })
            });
            g.bench_with_input(BenchmarkId::new("pnet", size), &size, |bch, _| {
                let mut b = buf.clone();
                bch.iter(|| {
                    restore(&mut b, &buf, reset);
                    pnet_dnat(black_box(&mut b[HEADROOM..]), black_box(to))
                })
            });
        }
        g.finish();
    }
}

fn dr_tun_groups(c: &mut Criterion) {
    for v6 in [false, true] {
        // Bytes restored per iteration (Ethernet + IP + TCP) and where the TTL / hop limit is.
        let (name, hdrs, ttl_at) = if v6 { ("dr_v6", 74, 21) } else { ("dr_v4", 54, 22) };
        let mut g = c.benchmark_group(format!("rewrite/{name}"));
        g.throughput(Throughput::Elements(1));
        // The smallest frame of each family: 64 bytes (IPv4 + TCP padded), 74 (IPv6 + TCP).
        for size in [if v6 { 74usize } else { 64 }, 1514] {
            let frame = tcp_frame(v6, size);
            let buf = with_headroom(&frame);
            let run = |b: &mut [u8]| lbkit_dr(b, size);
            let mut b = buf.clone();
            assert_eq!(run(&mut b), Verdict::Forward);
            verify(&b[HEADROOM..], None);
            assert_eq!(b[HEADROOM + ttl_at], 63);
            bench_reset(&mut g, size, &buf, hdrs);
            g.bench_with_input(BenchmarkId::new("lbkit", size), &size, |bch, _| {
                let mut b = buf.clone();
                bch.iter(|| {
                    restore(&mut b, &buf, hdrs);
                    black_box(run(black_box(&mut b)))
                })
            });
        }
        g.finish();
    }

    for v6 in [false, true] {
        let (name, hdrs, overhead, tunnel) = if v6 {
            let t = Tunnel { src: "fd00::fe".parse().unwrap(), dst: RS6.into(), encap: Encap::Ipip, ident: 7 };
            ("tun_v6_in_v6", 74, 40, t)
        } else {
            let t = Tunnel { src: "10.0.0.254".parse().unwrap(), dst: RS4.into(), encap: Encap::Ipip, ident: 7 };
            ("tun_v4_in_v4", 54, 20, t)
        };
        let mut g = c.benchmark_group(format!("rewrite/{name}"));
        g.throughput(Throughput::Elements(1));
        // The smallest frame of each family: 64 bytes (IPv4 + TCP padded), 74 (IPv6 + TCP).
        for size in [if v6 { 74usize } else { 64 }, 1514] {
            let frame = tcp_frame(v6, size);
            let buf = with_headroom(&frame);
            let run = |b: &mut [u8], tunnel: &Tunnel| lbkit_tun(b, size, tunnel);
            let mut b = buf.clone();
            let (v, start) = run(&mut b, &tunnel);
            assert_eq!(v, Verdict::Forward);
            assert_eq!(start, HEADROOM - overhead);
            let out = &b[start..start + size + overhead];
            let p = etherparse::SlicedPacket::from_ethernet(out).unwrap();
            match p.net {
                Some(etherparse::NetSlice::Ipv4(outer)) if !v6 => {
                    assert_eq!(outer.header().protocol(), etherparse::IpNumber::IPV4);
                    assert_eq!(outer.header().header_checksum(), outer.header().to_header().calc_header_checksum());
                }
                Some(etherparse::NetSlice::Ipv6(outer)) if v6 => {
                    assert_eq!(outer.header().next_header(), etherparse::IpNumber::IPV6);
                    assert_eq!(usize::from(outer.header().payload_length()), size - 14);
                }
                _ => panic!("outer header of the tunnel's family"),
            }
            let mut inner = out[..14].to_vec();
            inner.extend_from_slice(&out[14 + overhead..]);
            verify(&inner, None);
            bench_reset(&mut g, size, &buf, hdrs);
            g.bench_with_input(BenchmarkId::new("lbkit", size), &size, |bch, _| {
                let mut b = buf.clone();
                bch.iter(|| {
                    restore(&mut b, &buf, hdrs);
                    black_box(run(black_box(&mut b), black_box(&tunnel)))
                })
            });
        }
        g.finish();
    }
}

/// Parsing alone: lbkit's typed views against etherparse's whole-packet slicing and its
/// single-header slices (the decision the issue asks to make by measurement).
fn parse_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("rewrite/parse_v4_tcp");
    g.throughput(Throughput::Elements(1));
    for size in [64usize, 1514] {
        let frame = tcp_frame(false, size);
        g.bench_with_input(BenchmarkId::new("lbkit", size), &frame, |b, f| {
            b.iter(|| {
                let parsed = parse(black_box(f));
                let Ok(pkt) = &parsed else { panic!("parse") };
                black_box(&pkt.flow());
            })
        });
        g.bench_with_input(BenchmarkId::new("etherparse_sliced", size), &frame, |b, f| {
            b.iter(|| {
                let p = etherparse::SlicedPacket::from_ethernet(black_box(f)).unwrap();
                let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) =
                    (p.net, p.transport)
                else {
                    panic!("IPv4 / TCP")
                };
                black_box(&(ip.header().source(), ip.header().destination(), t.source_port(), t.destination_port()));
            })
        });
        g.bench_with_input(BenchmarkId::new("etherparse_headers", size), &frame, |b, f| {
            b.iter(|| {
                let f = black_box(f);
                let e = etherparse::Ethernet2HeaderSlice::from_slice(f).unwrap();
                let ip = etherparse::Ipv4HeaderSlice::from_slice(&f[e.slice().len()..]).unwrap();
                let t = etherparse::TcpHeaderSlice::from_slice(&f[e.slice().len() + ip.slice().len()..]).unwrap();
                black_box(&(ip.source(), ip.destination(), t.source_port(), t.destination_port()));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, nat_groups, dr_tun_groups, parse_group);

/// Instruction counting (noise-free, for a shared machine): with `LBKIT_ICOUNT=CASE` the binary
/// runs `LBKIT_ICOUNT_N` (default 100000) iterations of one case, the same code the timed
/// benches run, and exits; under `valgrind --tool=callgrind` the difference between a case and
/// `reset` (`reset6` for the IPv6 cases) divided by N is the instructions per packet. Cases:
/// `reset`, `reset6`, `nat4_{lbkit,smoltcp,pnet}`,
/// `nat6_{lbkit,smoltcp,pnet}`, `dr4_lbkit`, `dr6_lbkit`, `tun4_lbkit`, `tun6_lbkit`,
/// `parse4_lbkit`, `parse6_lbkit` (parse and 5-tuple only, the frame still restored); frames of
/// 64 (IPv4) or 74 (IPv6) bytes, or `LBKIT_ICOUNT_SIZE` bytes.
fn icount(case: &str, n: usize, size: Option<usize>) {
    let v6 = case.starts_with("nat6")
        || case.starts_with("dr6")
        || case.starts_with("tun6")
        || case.starts_with("parse6")
        || case == "reset6";
    let frame = tcp_frame(v6, size.unwrap_or(if v6 { 74 } else { 64 }));
    let orig = with_headroom(&frame);
    let mut b = orig.clone();
    let to = if v6 { SocketAddr::new(RS6.into(), RPORT) } else { SocketAddr::new(RS4.into(), RPORT) };
    let tunnel = if v6 {
        Tunnel { src: "fd00::fe".parse().unwrap(), dst: RS6.into(), encap: Encap::Ipip, ident: 7 }
    } else {
        Tunnel { src: "10.0.0.254".parse().unwrap(), dst: RS4.into(), encap: Encap::Ipip, ident: 7 }
    };
    let reset = headers_len(v6);
    let len = frame.len();
    // The case is chosen once, outside the loop: matching its name per iteration would add
    // string comparisons that differ between cases.
    let mut run = |step: &mut dyn FnMut(&mut [u8])| {
        for _ in 0..n {
            restore(&mut b, &orig, reset);
            step(&mut b);
        }
    };
    match case {
        "reset" | "reset6" => run(&mut |_| {}),
        "nat4_lbkit" | "nat6_lbkit" => run(&mut |b| {
            let _ = black_box(lbkit_dnat(black_box(b), len, black_box(to)));
        }),
        "nat4_smoltcp" | "nat6_smoltcp" => run(&mut |b| smoltcp_dnat(black_box(&mut b[HEADROOM..]), black_box(to))),
        "nat4_pnet" | "nat6_pnet" => run(&mut |b| pnet_dnat(black_box(&mut b[HEADROOM..]), black_box(to))),
        "dr4_lbkit" | "dr6_lbkit" => run(&mut |b| {
            let _ = black_box(lbkit_dr(black_box(b), len));
        }),
        "parse4_lbkit" | "parse6_lbkit" => run(&mut |b| {
            let parsed = parse(black_box(&b[HEADROOM..HEADROOM + len]));
            let Ok(pkt) = &parsed else { panic!("parse") };
            black_box(&pkt.flow());
        }),
        "tun4_lbkit" | "tun6_lbkit" => run(&mut |b| {
            let _ = black_box(lbkit_tun(black_box(b), len, black_box(&tunnel)));
        }),
        other => panic!("unknown LBKIT_ICOUNT case {other}"),
    }
}

fn main() {
    if let Ok(case) = std::env::var("LBKIT_ICOUNT") {
        let n = std::env::var("LBKIT_ICOUNT_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
        let size = std::env::var("LBKIT_ICOUNT_SIZE").ok().and_then(|v| v.parse().ok());
        icount(&case, n, size);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
