//! Every option the rules reader accepts changes what the director does: each test runs the
//! same traffic with and without the option and shows the difference.

#![cfg(feature = "cli")]

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lb_replay::config::Neighbours;
use lb_replay::pipeline::{Outcome, PipelineConfig};
use lb_rewrite::MacAddr;
use support::*;

const VIP: &str = "192.0.2.10";

fn mac_of(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, i])
}

fn neigh() -> Neighbours {
    (1..=4u8).map(|i| (format!("10.0.0.{i}").parse().unwrap(), mac_of(i))).collect()
}

fn config(rules: &str) -> PipelineConfig {
    PipelineConfig {
        neigh: neigh(),
        ..PipelineConfig::new(lb_replay::rules::parse(rules, Path::new("test.rules")).unwrap(), None)
    }
}

/// The real server each forwarded frame went to: by destination MAC (every method sets it).
fn dests(rules: &str, frames: &[(u64, Vec<u8>)]) -> Vec<Option<IpAddr>> {
    let by_mac: HashMap<[u8; 6], IpAddr> = neigh().into_iter().map(|(a, m)| (m.0, a)).collect();
    let p = pipeline(&config(rules));
    process_all(&p, &capture(frames))
        .into_iter()
        .map(|r| r.output.map(|o| by_mac[&<[u8; 6]>::try_from(&o[0..6]).unwrap()]))
        .collect()
}

fn ips(v: &[Option<IpAddr>]) -> Vec<String> {
    v.iter().map(|a| a.map_or("-".into(), |a| a.to_string())).collect()
}

fn syns(client: &str, n: u16) -> Vec<(u64, Vec<u8>)> {
    (0..n).map(|i| (1_000_000_000 + u64::from(i) * 1000, tcp(client, 40000 + i, VIP, 80, SYN, b""))).collect()
}

const THREE: &str = "-a -t 192.0.2.10:80 -r 10.0.0.1:80 -g -w 1\n-a -t 192.0.2.10:80 -r 10.0.0.2:80 -g -w 1\n-a -t 192.0.2.10:80 -r 10.0.0.3:80 -g -w 1\n";

#[test]
fn scheduler_option() {
    // rr over the IPVS list order (the last -a line first): .3 .2 .1 .3 ...
    let rr = dests(&format!("-A -t 192.0.2.10:80 -s rr\n{THREE}"), &syns("198.51.100.7", 6));
    assert_eq!(ips(&rr), ["10.0.0.3", "10.0.0.2", "10.0.0.1", "10.0.0.3", "10.0.0.2", "10.0.0.1"]);
    // sh: every connection of one client to one server.
    let sh = dests(&format!("-A -t 192.0.2.10:80 -s sh\n{THREE}"), &syns("198.51.100.7", 6));
    assert!(sh.iter().all(|d| d.is_some() && *d == sh[0]), "{:?}", ips(&sh));
}

#[test]
fn sched_flags_option() {
    let without = dests(&format!("-A -t 192.0.2.10:80 -s sh\n{THREE}"), &syns("198.51.100.7", 12));
    let with = dests(&format!("-A -t 192.0.2.10:80 -s sh -b sh-port\n{THREE}"), &syns("198.51.100.7", 12));
    let distinct = |v: &[Option<IpAddr>]| v.iter().collect::<std::collections::HashSet<_>>().len();
    assert_eq!(distinct(&without), 1);
    assert!(distinct(&with) >= 2, "sh-port hashes the source port too: {:?}", ips(&with));
}

#[test]
fn persistence_and_netmask_options() {
    let plain = dests(&format!("-A -t 192.0.2.10:80 -s rr\n{THREE}"), &syns("198.51.100.7", 3));
    assert_eq!(ips(&plain).len(), 3);
    assert_ne!(plain[0], plain[1]);
    let sticky = dests(&format!("-A -t 192.0.2.10:80 -s rr -p 300\n{THREE}"), &syns("198.51.100.7", 3));
    assert!(sticky.iter().all(|d| *d == sticky[0]), "{:?}", ips(&sticky));
    // Two clients of one /24: apart without -M, together with -M 255.255.255.0.
    let mut two = syns("198.51.100.7", 1);
    two.push((1_000_100_000, tcp("198.51.100.8", 40000, VIP, 80, SYN, b"")));
    let host = dests(&format!("-A -t 192.0.2.10:80 -s rr -p 300\n{THREE}"), &two);
    assert_ne!(host[0], host[1]);
    let net = dests(&format!("-A -t 192.0.2.10:80 -s rr -p 300 -M 255.255.255.0\n{THREE}"), &two);
    assert_eq!(net[0], net[1]);
}

#[test]
fn one_packet_option() {
    let udp_rules = "-a -u 192.0.2.10:53 -r 10.0.0.1:53 -g\n-a -u 192.0.2.10:53 -r 10.0.0.2:53 -g\n";
    let dgrams: Vec<(u64, Vec<u8>)> =
        (0..4).map(|i| (1_000_000_000 + i * 1000, udp("198.51.100.7", 5353, VIP, 53, b"query"))).collect();
    let kept = dests(&format!("-A -u 192.0.2.10:53 -s rr\n{udp_rules}"), &dgrams);
    assert!(kept.iter().all(|d| *d == kept[0]), "one connection: {:?}", ips(&kept));
    let ops = dests(&format!("-A -u 192.0.2.10:53 -s rr -o\n{udp_rules}"), &dgrams);
    assert_eq!(ips(&ops), ["10.0.0.2", "10.0.0.1", "10.0.0.2", "10.0.0.1"]);
}

#[test]
fn forwarding_method_options() {
    let f = syns("198.51.100.7", 1);
    let run = |m: &str| {
        let p = pipeline(&config(&format!("-A -t 192.0.2.10:80 -s rr\n-a -t 192.0.2.10:80 -r 10.0.0.1:8080 {m}\n")));
        process_all(&p, &capture(&f)).remove(0).output.unwrap()
    };
    let net = |frame: &[u8]| match SlicedPacket::from_ethernet(frame).unwrap().net.unwrap() {
        NetSlice::Ipv4(v4) => (v4.header().protocol().0, v4.header().destination_addr().to_string()),
        _ => panic!("not IPv4"),
    };
    let port = |frame: &[u8]| match SlicedPacket::from_ethernet(frame).unwrap().transport {
        Some(TransportSlice::Tcp(t)) => t.destination_port(),
        _ => 0,
    };
    let (dr, nat, tun) = (run("-g"), run("-m"), run("-i"));
    assert_eq!((net(&dr), port(&dr)), ((6, VIP.to_string()), 80));
    assert_eq!((net(&nat), port(&nat)), ((6, "10.0.0.1".to_string()), 8080));
    assert_eq!(net(&tun), (4, "10.0.0.1".to_string()));
    for f in [&dr, &nat, &tun] {
        assert_eq!(&f[0..6], &mac_of(1).0);
    }
    // GUE: --tun-type gue --tun-port puts the inner packet in UDP to that port.
    let p = pipeline(&config(
        "-A -t 192.0.2.10:80 -s rr\n-a -t 192.0.2.10:80 -r 10.0.0.1:80 -i --tun-type gue --tun-port 6080\n",
    ));
    let gue = process_all(&p, &capture(&f)).remove(0).output.unwrap();
    let sliced = SlicedPacket::from_ethernet(&gue).unwrap();
    match &sliced.transport {
        Some(TransportSlice::Udp(u)) => assert_eq!(u.destination_port(), 6080),
        other => panic!("{other:?}"),
    }
}

#[test]
fn weight_option() {
    let base = "-A -t 192.0.2.10:80 -s wrr\n";
    let w = dests(
        &format!("{base}-a -t 192.0.2.10:80 -r 10.0.0.1:80 -g -w 3\n-a -t 192.0.2.10:80 -r 10.0.0.2:80 -g -w 1\n"),
        &syns("198.51.100.7", 8),
    );
    let one = w.iter().filter(|d| d.map(|a| a.to_string()) == Some("10.0.0.1".into())).count();
    assert_eq!(one, 6, "weights 3:1 over 8 connections: {:?}", ips(&w));
    let z = dests(
        &format!("{base}-a -t 192.0.2.10:80 -r 10.0.0.1:80 -g -w 0\n-a -t 192.0.2.10:80 -r 10.0.0.2:80 -g -w 1\n"),
        &syns("198.51.100.7", 4),
    );
    assert!(z.iter().all(|d| d.map(|a| a.to_string()) == Some("10.0.0.2".into())));
}

#[test]
fn threshold_options() {
    // rr over (A = 10.0.0.1, B = 10.0.0.2); list order B, A. A has an upper threshold of 1:
    // once it holds a connection it is OVERLOAD, and everything goes to B.
    let rules = |a_opts: &str| {
        format!("-A -t 192.0.2.10:80 -s rr\n-a -t 192.0.2.10:80 -r 10.0.0.1:80 -g {a_opts}\n-a -t 192.0.2.10:80 -r 10.0.0.2:80 -g\n")
    };
    let plain = dests(&rules(""), &syns("198.51.100.7", 4));
    assert_eq!(ips(&plain), ["10.0.0.2", "10.0.0.1", "10.0.0.2", "10.0.0.1"]);
    let capped = dests(&rules("-x 1"), &syns("198.51.100.7", 4));
    assert_eq!(ips(&capped), ["10.0.0.2", "10.0.0.1", "10.0.0.2", "10.0.0.2"]);

    // -y: A with -x 2 gets two connections and is OVERLOAD. One of them is reset (CLOSE, 10 s)
    // and expires; without -y, OVERLOAD clears when 4 x total < 3 x 2 (total 1); with -y 1 only
    // when total < 1.
    let mut f = syns("198.51.100.7", 4); // B A B A: A holds 2
                                         // A's second connection: established (a reset in SYN_RECV keeps SYN_RECV), then reset:
                                         // CLOSE, 10 s.
    f.push((1_050_000_000, tcp("198.51.100.7", 40003, VIP, 80, ACK, b"")));
    f.push((1_100_000_000, tcp("198.51.100.7", 40003, VIP, 80, RST | ACK, b"")));
    for i in 0..2u16 {
        // After the CLOSE timeout: new connections.
        f.push((12_000_000_000 + u64::from(i), tcp("198.51.100.9", 50000 + i, VIP, 80, SYN, b"")));
    }
    let without_y = dests(&rules("-x 2"), &f);
    let with_y = dests(&rules("-x 2 -y 1"), &f);
    // After the expiry, rr's cursor is on A (the 4th pick): the walk tries B, then A.
    assert_eq!(ips(&without_y[6..]), ["10.0.0.2", "10.0.0.1"]);
    assert_eq!(ips(&with_y[6..]), ["10.0.0.2", "10.0.0.2"]);
}

#[test]
fn a_flow_with_no_service_is_dropped_with_its_reason() {
    let p = pipeline(&config(&format!("-A -t 192.0.2.10:80 -s rr\n{THREE}")));
    let r = process_all(&p, &capture(&[(1, tcp("198.51.100.7", 1, VIP, 443, SYN, b""))]));
    assert_eq!(r[0].outcome, Outcome::Dropped(lb_replay::pipeline::DropReason::NoService));
    assert_eq!(lb_replay::pipeline::DropReason::NoService.name(), "no_service");
}
