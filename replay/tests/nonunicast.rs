//! Traffic that is not unicast (mDNS, LLMNR, DHCP, SSDP, broadcasts, martian sources) is never
//! scheduled, even by a catch-all service, and the director never answers it, or an ICMP error,
//! or a non-first fragment, with an ICMP error of its own (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7,
//! RFC 4443 §2.4). Every ICMP error it does send comes from a unicast address. In every mode.

#![cfg(feature = "cli")]

mod support;

use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket};
use lb_replay::config::{parse_backend, Neighbours, ServiceSpec, Vip};
use lb_replay::pipeline::{DropReason, Outcome, PipelineConfig};
use lb_sched::ForwardMethod;
use support::*;

fn config(mode: ForwardMethod) -> PipelineConfig {
    let mut neigh = Neighbours::new();
    let mut backends = Vec::new();
    for (i, a) in ["10.0.0.1", "2001:db8:ffff::1"].iter().enumerate() {
        backends.push(parse_backend(a).unwrap());
        neigh.insert(a.parse().unwrap(), lb_rewrite::MacAddr([2, 0, 0, 0, 1, i as u8]));
    }
    let svc = |v6| ServiceSpec { backends: backends.clone(), ..ServiceSpec::new(Vip::Any { v6 }) };
    PipelineConfig {
        tun_src: vec!["192.0.2.254".parse().unwrap(), "2001:db8:fffe::1".parse().unwrap()],
        neigh,
        ..PipelineConfig::new(vec![svc(false), svc(true)], Some(mode))
    }
}

/// The frame with its IPv4 TTL or IPv6 hop limit set (IPv4 header checksum recomputed).
fn with_ttl(mut f: Vec<u8>, ttl: u8) -> Vec<u8> {
    if f[12..14] == [0x86, 0xdd] {
        f[14 + 7] = ttl;
        return f;
    }
    f[14 + 8] = ttl;
    f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let mut sum: u32 = f[14..14 + ihl].chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[14 + 10..14 + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f
}

fn run_one(mode: ForwardMethod, frame: Vec<u8>) -> Processed {
    let pipe = pipeline(&config(mode));
    let cap = capture(&[(1_000_000_000, frame)]);
    process_all(&pipe, &cap).pop().unwrap()
}

const MODES: [ForwardMethod; 3] = [ForwardMethod::DirectRoute, ForwardMethod::Masq, ForwardMethod::Tunnel];

#[test]
fn traffic_to_or_from_non_unicast_addresses_is_never_scheduled_nor_answered() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("mDNS", udp("192.0.2.7", 5353, "224.0.0.251", 5353, b"q")),
        ("mDNS v6", udp("2001:db8::7", 5353, "ff02::fb", 5353, b"q")),
        ("LLMNR v6", udp("2001:db8::7", 50000, "ff02::1:3", 5355, b"q")),
        ("SSDP", udp("192.0.2.7", 50000, "239.255.255.250", 1900, b"M-SEARCH")),
        ("DHCP discover", udp("0.0.0.0", 68, "255.255.255.255", 67, b"discover")),
        ("broadcast", udp("192.0.2.7", 50000, "255.255.255.255", 9, b"x")),
        ("multicast source", tcp("224.1.1.1", 40000, "198.51.100.1", 80, SYN, b"")),
        ("loopback source", tcp("127.0.0.1", 40000, "198.51.100.1", 80, SYN, b"")),
        ("unspecified v6 source", tcp("::", 40000, "2001:db8::80", 80, SYN, b"")),
        // Hop limit 1 to a multicast group: no time exceeded from the group's address.
        ("v6 multicast, hop limit 1", with_ttl(udp("2001:db8::7", 5353, "ff02::fb", 5353, b"q"), 1)),
        ("v4 multicast, TTL 1", with_ttl(udp("192.0.2.7", 5353, "224.0.0.251", 5353, b"q"), 1)),
    ];
    for mode in MODES {
        for (what, frame) in &cases {
            let p = run_one(mode, frame.clone());
            assert_eq!(p.outcome, Outcome::Dropped(DropReason::NotUnicast), "{what} in {mode:?}");
            assert!(p.extra.is_empty(), "{what} in {mode:?}: the director sent {} frame(s)", p.extra.len());
        }
    }
}

/// The source address of an ICMP error the director built.
fn icmp_source(frame: &[u8]) -> IpAddr {
    match SlicedPacket::from_ethernet(frame).unwrap().net.unwrap() {
        NetSlice::Ipv4(v4) => IpAddr::V4(v4.header().source_addr()),
        NetSlice::Ipv6(v6) => IpAddr::V6(v6.header().source_addr()),
        _ => unreachable!(),
    }
}

#[test]
fn icmp_errors_only_about_unicast_non_error_first_fragments_and_from_unicast() {
    for mode in MODES {
        // A unicast SYN with TTL 1: time exceeded, from the address the client sent to.
        for (src, dst) in [("192.0.2.7", "198.51.100.1"), ("2001:db8::7", "2001:db8::80")] {
            let p = run_one(mode, with_ttl(tcp(src, 40000, dst, 80, SYN, b""), 1));
            assert_eq!(p.outcome, Outcome::Dropped(DropReason::TtlExceeded), "{mode:?}");
            assert_eq!(p.extra.len(), 1, "{mode:?}: one time exceeded");
            assert_eq!(icmp_source(&p.extra[0]), dst.parse::<IpAddr>().unwrap(), "{mode:?}");
        }
        // An ICMP error (port unreachable, quoting a packet from the client) with TTL 1: no
        // error about an error.
        let quoted = udp("198.51.100.1", 53, "192.0.2.7", 40000, b"answer");
        let mut err = Vec::new();
        etherparse::PacketBuilder::ethernet2(ROUTER, DIRECTOR)
            .ipv4([192, 0, 2, 7], [198, 51, 100, 1], 1)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port))
            .write(&mut err, &quoted[14..])
            .unwrap();
        let p = run_one(mode, err);
        assert!(p.extra.is_empty(), "{mode:?}: no ICMP error about an ICMP error ({:?})", p.outcome);
        // A non-first fragment with TTL 1: no error (it names no connection).
        let mut frag = with_ttl(udp("192.0.2.7", 40000, "198.51.100.1", 53, &[0u8; 64]), 1);
        frag[14 + 6..14 + 8].copy_from_slice(&(100u16).to_be_bytes()); // offset 800 bytes
        let frag = with_ttl(frag, 1);
        let p = run_one(mode, frag);
        assert!(matches!(p.outcome, Outcome::Dropped(_)), "{mode:?}");
        assert!(p.extra.is_empty(), "{mode:?}: no ICMP error about a non-first fragment");
    }
}

/// A NAT real server's reply too big for the MTU: the "fragmentation needed" error goes back to
/// that real server (the kernel checks the MTU before it SNATs the reply), quoting the reply as
/// the real server sent it, from the director's address on that side (`--director-ip`, or the
/// virtual address), to the real server's MAC.
#[test]
fn a_nat_reply_too_big_is_answered_to_its_real_server() {
    use etherparse::{Icmpv4Type, TransportSlice};
    let rs_mac = [2, 0, 0, 0, 1, 1];
    for director_ip in [None, Some("10.0.0.254")] {
        let mut cfg = PipelineConfig {
            services: vec![ServiceSpec {
                backends: vec![parse_backend("10.0.0.1,mac=02:00:00:00:01:01").unwrap()],
                ..ServiceSpec::new(Vip::Addr { proto: None, addr: "198.51.100.10:80".parse().unwrap() })
            }],
            mtu: 300,
            ..config(ForwardMethod::Masq)
        };
        cfg.director_ips = director_ip.iter().map(|a| a.parse().unwrap()).collect();
        let pipe = pipeline(&cfg);
        // A SYN, then the server's reply with 400 bytes of data, DF set.
        let syn = tcp("192.0.2.7", 40000, "198.51.100.10", 80, SYN, b"");
        let mut big = tcp("198.51.100.10", 80, "192.0.2.7", 40000, ACK, &[0x5a; 400]);
        big[0..6].copy_from_slice(&DIRECTOR);
        big[6..12].copy_from_slice(&ROUTER);
        let cap = capture(&[(1_000_000_000, syn), (1_001_000_000, big)]);
        let done = process_all(&pipe, &cap);
        assert_eq!(done[1].outcome, Outcome::Dropped(DropReason::TooBig));
        assert_eq!(done[1].extra.len(), 1, "one ICMP error");
        let err = &done[1].extra[0];
        assert_eq!(&err[0..6], &rs_mac, "to the real server's MAC");
        let s = SlicedPacket::from_ethernet(err).unwrap();
        let NetSlice::Ipv4(ip) = s.net.unwrap() else { panic!("IPv4") };
        let want_src = director_ip.unwrap_or("198.51.100.10");
        assert_eq!(ip.header().source_addr().to_string(), want_src);
        assert_eq!(ip.header().destination_addr().to_string(), "10.0.0.1");
        let Some(TransportSlice::Icmpv4(icmp)) = s.transport else { panic!("ICMP") };
        assert!(matches!(icmp.icmp_type(), Icmpv4Type::DestinationUnreachable(_)));
        assert_eq!(&icmp.slice()[6..8], &300u16.to_be_bytes(), "the MTU");
        // The quoted packet: the reply as the real server sent it.
        let quoted = &icmp.slice()[8..];
        assert_eq!(&quoted[12..16], &[10, 0, 0, 1], "quoted source: the real server");
        assert_eq!(&quoted[16..20], &[192, 0, 2, 7], "quoted destination: the client");
        assert_eq!(&quoted[20..22], &80u16.to_be_bytes(), "quoted source port: the real server's");
        // Checksums: the ICMP one over the whole message, the outer IPv4 header's.
        let sum = |b: &[u8]| {
            let mut s: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        };
        assert_eq!(sum(icmp.slice()), 0xffff, "ICMP checksum");
        assert_eq!(sum(ip.header().slice()), 0xffff, "IPv4 header checksum");
    }
}
