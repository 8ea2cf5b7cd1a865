//! The parser's tests: crafted messages, every truncation, bad lengths, random bytes.

use super::build::*;
use super::*;
use proptest::prelude::*;

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x50];

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A datagram: a neighbour, then a route, then DONE.
fn datagram() -> Vec<u8> {
    let mut d = message(RTM_NEWNEIGH, 0, 7, &neigh_payload(3, NUD_REACHABLE, v4("10.0.0.5"), Some(MAC)));
    d.extend(message(
        RTM_NEWROUTE,
        0,
        7,
        &route_payload(RTN_UNICAST, v4("203.0.113.0"), 24, Some(v4("10.0.0.1")), Some(3), 100),
    ));
    d.extend(message(NLMSG_DONE, 0, 7, &0i32.to_ne_bytes()));
    d
}

#[test]
fn constants_match_the_kernel_headers() {
    assert_eq!(libc::RTM_NEWNEIGH, RTM_NEWNEIGH);
    assert_eq!(libc::RTM_DELROUTE, RTM_DELROUTE);
    assert_eq!(libc::NLM_F_DUMP as u16, NLM_F_DUMP);
    assert_eq!(libc::NUD_PERMANENT, NUD_PERMANENT);
    assert_eq!(libc::NUD_NOARP, NUD_NOARP);
    assert_eq!(libc::AF_INET6 as u8, AF_INET6);
    assert_eq!(libc::RT_TABLE_MAIN as u32, RT_TABLE_MAIN);
    assert_eq!(std::mem::size_of::<libc::nlmsghdr>(), NLMSG_HDR);
}

#[test]
fn a_datagram_of_three_messages() {
    let d = datagram();
    let ms: Vec<_> = messages(&d).collect::<Result<_, _>>().unwrap();
    assert_eq!(ms.iter().map(|m| m.kind).collect::<Vec<_>>(), [RTM_NEWNEIGH, RTM_NEWROUTE, NLMSG_DONE]);
    assert!(ms.iter().all(|m| m.seq == 7));
    let n = neigh_of(&ms[0]);
    assert_eq!(
        n,
        Neigh {
            family: AF_INET,
            ifindex: 3,
            state: NUD_REACHABLE,
            flags: 0,
            dst: Some(v4("10.0.0.5")),
            lladdr: Some(MacAddr(MAC))
        }
    );
    let r = super::route(ms[1].payload).unwrap();
    assert_eq!((r.family, r.dst_len, r.table, r.kind), (AF_INET, 24, RT_TABLE_MAIN, RTN_UNICAST));
    assert_eq!((r.dst, r.gateway, r.oif, r.priority), (Some(v4("203.0.113.0")), Some(v4("10.0.0.1")), Some(3), 100));
    assert_eq!(status(&ms[2]), Ok(0));
}

fn neigh_of(m: &Message<'_>) -> Neigh {
    super::neigh(m.payload).unwrap()
}

#[test]
fn an_ipv6_neighbour_and_an_error() {
    let p = neigh_payload(9, NUD_STALE, "fd00::2".parse().unwrap(), None);
    let n = super::neigh(&p).unwrap();
    assert_eq!((n.family, n.ifindex, n.state), (AF_INET6, 9, NUD_STALE));
    assert_eq!((n.dst, n.lladdr), (Some("fd00::2".parse().unwrap()), None));
    let e = message(NLMSG_ERROR, 0, 1, &(-libc::EPERM).to_ne_bytes());
    let m = messages(&e).next().unwrap().unwrap();
    assert_eq!(status(&m), Ok(-libc::EPERM));
    // An error message without its errno is truncated; a DONE without one is fine.
    let e = message(NLMSG_ERROR, 0, 1, &[]);
    assert_eq!(status(&messages(&e).next().unwrap().unwrap()), Err(WireError::Truncated));
    let d = message(NLMSG_DONE, 0, 1, &[]);
    assert_eq!(status(&messages(&d).next().unwrap().unwrap()), Ok(0));
}

#[test]
fn a_link_layer_address_of_another_size_is_no_mac() {
    let mut p = neigh_payload(3, NUD_NOARP, v4("10.0.0.9"), None);
    p.extend(attr(NDA_LLADDR, &[1, 2, 3, 4]));
    assert_eq!(super::neigh(&p).unwrap().lladdr, None);
}

#[test]
fn unknown_and_flagged_attributes_are_skipped() {
    let mut p = neigh_payload(3, NUD_REACHABLE, v4("10.0.0.5"), None);
    p.extend(attr(0x3000, &[1, 2, 3])); // unknown, odd length (padded)
    p.extend(attr(NDA_LLADDR | 0x8000, &MAC)); // with NLA_F_NESTED set: still NDA_LLADDR
    p.extend(attr(NDA_DST + 200, &[9; 16]));
    let n = super::neigh(&p).unwrap();
    assert_eq!((n.dst, n.lladdr), (Some(v4("10.0.0.5")), Some(MacAddr(MAC))));
}

#[test]
fn every_truncation_of_a_datagram_is_an_error_or_fewer_messages() {
    let d = datagram();
    let whole: Vec<_> = messages(&d).map(Result::unwrap).collect();
    for cut in 0..d.len() {
        let got: Vec<_> = messages(&d[..cut]).collect();
        // The complete messages before the cut parse as before, then one error, nothing more.
        let ok = got.iter().take_while(|m| m.is_ok()).count();
        assert!(ok < whole.len(), "cut {cut}");
        for (g, w) in got.iter().zip(&whole).take(ok) {
            assert_eq!(g.as_ref().unwrap(), w);
        }
        assert!(got.len() <= ok + 1, "cut {cut}: one error at most");
        // The messages are 4-aligned: a cut on a boundary leaves no partial message.
        let len0 = NLMSG_HDR + whole[0].payload.len();
        let boundaries = [0, len0, len0 + NLMSG_HDR + whole[1].payload.len()];
        if boundaries.contains(&cut) {
            assert_eq!(got.len(), ok, "cut {cut} on a boundary");
        } else {
            assert_eq!(got.last().unwrap(), &Err(WireError::Truncated), "cut {cut}");
        }
    }
}

#[test]
fn every_truncation_of_a_payload_is_an_error_not_a_panic() {
    let n = neigh_payload(3, NUD_REACHABLE, v4("10.0.0.5"), Some(MAC));
    for cut in 0..n.len() {
        let r = super::neigh(&n[..cut]);
        // Cut inside the header or an attribute: an error; cut between attributes: fewer.
        match cut {
            0..NDMSG => assert_eq!(r, Err(WireError::Truncated), "cut {cut}"),
            // After the header, after NDA_DST, and after NDA_LLADDR without (all of) its
            // padding.
            12 | 20 | 30 | 31 => assert!(r.is_ok(), "cut {cut}"),
            _ => assert!(r.is_err(), "cut {cut}"),
        }
    }
    let r = route_payload(RTN_UNICAST, "2001:db8::".parse().unwrap(), 32, Some("fe80::1".parse().unwrap()), Some(4), 1);
    for cut in 0..r.len() {
        let _ = super::route(&r[..cut]);
        if cut < RTMSG {
            assert_eq!(super::route(&r[..cut]), Err(WireError::Truncated));
        }
    }
    assert!(super::route(&r).is_ok());
}

#[test]
fn bad_lengths() {
    // nlmsg_len smaller than the header, larger than the buffer.
    let mut d = datagram();
    d[0..4].copy_from_slice(&8u32.to_ne_bytes());
    assert_eq!(messages(&d).collect::<Vec<_>>(), [Err(WireError::BadLength)]);
    d[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
    assert_eq!(messages(&d).collect::<Vec<_>>(), [Err(WireError::Truncated)]);
    // rta_len of 2 (less than its header), of 0xffff.
    let mut p = neigh_payload(3, NUD_REACHABLE, v4("10.0.0.5"), None);
    p[NDMSG..NDMSG + 2].copy_from_slice(&2u16.to_ne_bytes());
    assert_eq!(super::neigh(&p), Err(WireError::BadLength));
    p[NDMSG..NDMSG + 2].copy_from_slice(&0xffffu16.to_ne_bytes());
    assert_eq!(super::neigh(&p), Err(WireError::Truncated));
    // An IPv4 neighbour with a 16-byte destination.
    let mut p = neigh_payload(3, NUD_REACHABLE, "fd00::1".parse().unwrap(), None);
    p[0] = AF_INET;
    assert_eq!(super::neigh(&p), Err(WireError::BadAddress));
}

#[test]
fn multipath_and_via() {
    let mut p = route_payload(RTN_UNICAST, v4("198.51.100.0"), 24, None, None, 0);
    p.extend(multipath(&[(2, v4("192.0.2.1")), (5, v4("10.9.0.1"))]));
    let r = super::route(&p).unwrap();
    let hops: Vec<_> = nexthops(r.family, r.multipath.unwrap()).collect::<Result<_, _>>().unwrap();
    assert_eq!(
        hops,
        [NextHop { ifindex: 2, gateway: Some(v4("192.0.2.1")) }, NextHop { ifindex: 5, gateway: Some(v4("10.9.0.1")) }]
    );
    // Truncated next hops: an error, never a panic.
    let mp = r.multipath.unwrap();
    for cut in 0..mp.len() {
        let _ = nexthops(AF_INET, &mp[..cut]).count();
    }
    // An IPv4 route via an IPv6 gateway (RTA_VIA: family u16, then the address).
    let mut p = route_payload(RTN_UNICAST, v4("198.51.100.0"), 24, None, Some(2), 0);
    let mut v = u16::from(AF_INET6).to_ne_bytes().to_vec();
    v.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
    p.extend(attr(RTA_VIA, &v));
    assert_eq!(super::route(&p).unwrap().gateway, Some("fe80::1".parse().unwrap()));
}

#[test]
fn the_dump_request() {
    let m = dump_request(RTM_GETNEIGH, 42, 0);
    let got = messages(&m).next().unwrap().unwrap();
    assert_eq!(
        (got.kind, got.flags, got.seq, got.payload),
        (RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, 42, &[0u8; 12][..])
    );
}

/// Everything a message could hold, parsed every way.
fn parse_all(b: &[u8]) {
    for m in messages(b).flatten() {
        let _ = status(&m);
        let _ = super::neigh(m.payload);
        if let Ok(r) = super::route(m.payload) {
            if let Some(mp) = r.multipath {
                let _ = nexthops(r.family, mp).count();
            }
        }
    }
    let _ = super::neigh(b);
    let _ = super::route(b);
    let _ = nexthops(AF_INET6, b).count();
    let _ = attrs(b).count();
}

proptest! {
    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_all(&b);
    }

    #[test]
    fn mutated_messages_never_panic(at in 0usize..200, byte in any::<u8>(), cut in 0usize..200) {
        let mut d = datagram();
        let mut p = route_payload(RTN_UNICAST, v4("198.51.100.0"), 24, None, None, 0);
        p.extend(multipath(&[(2, v4("192.0.2.1"))]));
        d.extend(message(RTM_NEWROUTE, 0, 1, &p));
        let len = d.len();
        d[at % len] = byte;
        d.truncate(cut.min(len));
        parse_all(&d);
    }
}
