//! `netlink_messages`: any bytes as one datagram from the kernel's rtnetlink socket, through the
//! director's next-hop tables as its listener thread applies them (route and neighbour messages,
//! new and deleted), then a lookup.
//!
//! Asserts: no panic; the tables stay within their bounds (64 routes, 64 neighbours); a MAC is
//! found only with a next hop; the first byte picks the interface the tables follow and the
//! probe address, so both matching and foreign interfaces are exercised.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, datagram) = data.split_at(data.len().min(17));
    let ifindex = u32::from(head.first().copied().unwrap_or(0) & 3);
    let probe = match head.get(1..17) {
        Some(b) if head[0] & 0x80 != 0 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap())),
        Some(b) => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        None => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    };
    let (routes, neighbours, _malformed, hop, mac) = lb_replay::xdp::fuzz_datagram(ifindex, datagram, probe);
    assert!(routes <= 64 && neighbours <= 64, "{routes} routes, {neighbours} neighbours");
    assert!(mac.is_none() || hop.is_some(), "a MAC without a next hop");
});
