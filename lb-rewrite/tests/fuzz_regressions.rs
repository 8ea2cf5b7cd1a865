//! Inputs the fuzz targets (`fuzz/`) found to break a promise of lb-rewrite, kept as tests.

use lb_rewrite::{dnat, dr, nat_icmp_in, nat_icmp_out, parse, FrameBuf, MacAddr, NextHop, ParseError, RewriteError};

fn hop() -> NextHop {
    NextHop { src_mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), dst_mac: MacAddr([2, 0, 0, 0, 1, 2]), mtu: 1500 }
}

/// `rewrite_nat`, 2026-11-29: an ICMP error that is the first fragment of a larger datagram
/// (IPv4 MF set, offset 0), whose checksum happens to be right over this fragment alone, was
/// NAT'ed and its checksum recomputed over the fragment, which is wrong for the whole datagram.
/// A fragmented ICMP error cannot be verified and is refused as `BadIcmpChecksum`, untouched.
#[test]
fn fragmented_icmp_error_is_refused_even_when_the_fragment_sums_right() {
    #[rustfmt::skip]
    let frame: [u8; 70] = [
        // Ethernet
        0x28, 0x37, 0x37, 0x00, 0x6d, 0xc8, 0x10, 0x13, 0x31, 0xf1, 0x39, 0x76, 0x08, 0x00,
        // IPv4, total length 56, MF set, offset 0, ICMP, 93.71.110.205 -> 192.168.1.6
        0x45, 0xa0, 0x00, 0x38, 0xd1, 0xf8, 0x20, 0x00, 0x35, 0x01, 0x25, 0x6a, 0x5d, 0x47,
        0x6e, 0xcd, 0xc0, 0xa8, 0x01, 0x06,
        // ICMP port unreachable, checksum 0x702b (right over these 36 bytes)
        0x03, 0x03, 0x70, 0x2b, 0x00, 0x00, 0x00, 0x00,
        // quoted IPv4 / UDP 192.168.1.6:49972 -> 93.71.110.205:16333
        0x45, 0x00, 0x00, 0x4a, 0x1d, 0x80, 0x00, 0x00, 0x32, 0x11, 0xdd, 0x60, 0xc0, 0xa8,
        0x01, 0x06, 0x5d, 0x47, 0x6e, 0xcd, 0xc3, 0x74, 0x3f, 0xcd, 0x00, 0x36, 0x89, 0x59,
    ];
    let pkt = parse(&frame).unwrap();
    assert!(pkt.is_first_fragment() && pkt.has_quote());
    assert!(lb_rewrite::checksum::verify(&frame[34..]), "the fragment alone sums right");
    let to = "10.0.0.2:8080".parse().unwrap();
    for inbound in [true, false] {
        let mut buf = frame;
        let mut fb = FrameBuf::whole(&mut buf);
        let r = if inbound {
            nat_icmp_in(&mut fb, &pkt, &hop(), to, &mut |_: &[u8]| {})
        } else {
            nat_icmp_out(&mut fb, &pkt, &hop(), to, &mut |_: &[u8]| {})
        };
        assert_eq!(r, Err(RewriteError::BadIcmpChecksum));
        assert_eq!(buf, frame, "refused before any change");
    }
}

/// An IPv4 / UDP frame without DF, 100 bytes of IP: 14 + 20 + 8 + 72.
fn udp_frame() -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 100, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 10];
    let sum = lb_rewrite::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0x9c, 0x40, 0x00, 0x50, 0x00, 80, 0, 0]); // UDP, checksum 0
    f.extend((0..72).map(|i| i as u8));
    f
}

/// `rewrite_dr`, 2026-11-29: a frame whose IPv4 total length was changed after parsing (larger
/// than the frame) and that had to be fragmented: fragmentation read the total length from the
/// frame and checked it against the whole buffer, tailroom included, so it wrote fragment
/// headers and read data past the frame's end. Now the frame's header must say what the
/// `Packet` says, or the rewrite is refused as `PacketMismatch` before any change, and
/// fragmentation never reaches past the frame whatever the header claims.
#[test]
fn fragmenting_a_frame_whose_header_grew_after_parsing_stays_inside_the_frame() {
    let frame = udp_frame();
    let pkt = parse(&frame).unwrap();
    let mut edited = frame.clone();
    edited[16..18].copy_from_slice(&456u16.to_be_bytes()); // total length 100 -> 456
    let (head, tail) = (64, 512);
    let mut want = vec![0xA5; head];
    want.extend_from_slice(&edited);
    want.extend(std::iter::repeat_n(0x5A, tail));
    let hop = NextHop { mtu: 39, ..hop() };
    for nat in [false, true] {
        let mut buf = want.clone();
        let mut frags = 0;
        let r = {
            let mut fb = FrameBuf::new(&mut buf, head, edited.len()).unwrap();
            let mut sink = |_: &[u8]| frags += 1;
            if nat {
                dnat(&mut fb, &pkt, &hop, "10.0.0.2:8080".parse().unwrap(), &mut sink)
            } else {
                dr(&mut fb, &pkt, &hop, &mut sink)
            }
        };
        assert_eq!(r, Err(RewriteError::PacketMismatch), "nat {nat}");
        assert_eq!(frags, 0);
        assert!(buf == want, "nat {nat}: refused before any change, nothing written around the frame");
    }
    // The same packet, unedited, is fragmented (MTU 39: 16 bytes of data per fragment).
    let mut buf = frame.clone();
    let mut frags = 0;
    let r = dr(&mut FrameBuf::whole(&mut buf), &pkt, &hop, &mut |_: &[u8]| frags += 1);
    assert_eq!(r, Ok(lb_rewrite::Verdict::Fragmented { count: 5 }));
    assert_eq!(frags, 5);
}

/// An IPv6 / TCP SYN frame whose extension headers are `exts` (type, 8-byte header without its
/// next-header byte: one option pad).
fn v6_frame(exts: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
    let payload = exts.len() * 8 + 20;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload as u16).to_be_bytes());
    f.push(exts.first().copied().unwrap_or(6));
    f.push(64);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    for i in 0..exts.len() {
        let next = exts.get(i + 1).copied().unwrap_or(6);
        f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]); // PadN of 4 bytes
    }
    f.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 3, 0xe8, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    f
}

/// `pipeline`, 2026-11-29: an IPv6 packet with a second hop-by-hop header (after another
/// hop-by-hop or a destination options header) was parsed and forwarded; RFC 8200 §4.1 allows
/// hop-by-hop options only directly after the IPv6 header, etherparse refuses the forwarded frame
/// and Linux answers such a packet with a parameter problem and drops it. Now it is a typed
/// parse error, `MisplacedHopByHop`, and the pipeline drops it under that reason.
#[test]
fn a_hop_by_hop_header_is_only_accepted_directly_after_the_ipv6_header() {
    const HBH: u8 = 0;
    const DST_OPTS: u8 = 60;
    for ok in [&[][..], &[HBH], &[HBH, DST_OPTS], &[DST_OPTS]] {
        let f = v6_frame(ok);
        let pkt = parse(&f).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        assert_eq!(pkt.l4(), 14 + 40 + ok.len() * 8, "{ok:?}");
        etherparse::SlicedPacket::from_ethernet(&f).unwrap();
    }
    for bad in [&[HBH, HBH][..], &[DST_OPTS, HBH], &[HBH, DST_OPTS, HBH]] {
        let f = v6_frame(bad);
        assert_eq!(parse(&f), Err(ParseError::MisplacedHopByHop), "{bad:?}");
        assert!(etherparse::SlicedPacket::from_ethernet(&f).is_err(), "the oracle agrees: {bad:?}");
    }
}
