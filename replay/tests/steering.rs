//! Steering: every packet of a connection (the client's requests, the replies, ICMP errors
//! quoting either) goes to one worker, the one owning the connection-table shard that holds it;
//! a persistent service keeps each client on one worker; the clients spread over the workers.

#![cfg(feature = "cli")]

mod support;

use std::net::Ipv4Addr;

use etherparse::{Icmpv4Type, PacketBuilder};
use lb_replay::config::{parse_backend, Neighbours, ServiceSpec, Vip};
use lb_replay::pipeline::{Pipeline, PipelineConfig};
use lb_sched::{Flow, ForwardMethod, Protocol};
use support::*;

const VIP: &str = "192.0.2.10";

fn pipe(persistent: bool) -> Pipeline {
    let mut neigh = Neighbours::new();
    neigh.insert("10.0.0.1".parse().unwrap(), lb_rewrite::MacAddr([2, 0, 0, 0, 1, 1]));
    neigh.insert("10.0.0.2".parse().unwrap(), lb_rewrite::MacAddr([2, 0, 0, 0, 1, 2]));
    let mut spec = ServiceSpec::new(Vip::Addr { proto: None, addr: format!("{VIP}:80").parse().unwrap() });
    spec.backends = vec![parse_backend("10.0.0.1").unwrap(), parse_backend("10.0.0.2").unwrap()];
    if persistent {
        spec.persistence = Some(lb_conntrack::Persistence { v4_prefix: 24, ..lb_conntrack::Persistence::default() });
    }
    pipeline(&PipelineConfig { neigh, ..PipelineConfig::new(vec![spec], Some(ForwardMethod::Masq)) })
}

/// An ICMP destination unreachable from a router, quoting `quoted` (an IPv4 packet).
fn icmp_about(quoted: &[u8], to: [u8; 4]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(ROUTER, DIRECTOR)
        .ipv4([203, 0, 113, 1], to, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Host));
    let q = &quoted[..28];
    let mut out = Vec::new();
    b.write(&mut out, q).unwrap();
    out
}

#[test]
fn both_directions_and_icmp_errors_of_a_connection_reach_its_owner() {
    let p = pipe(false);
    let shards = p.table.shard_count();
    for workers in [2usize, 3, 4] {
        let mut per = vec![0u32; workers];
        for i in 0..2000u32 {
            let client = Ipv4Addr::from(0xc633_6400 + i).to_string();
            let port = 10_000 + (i % 40_000) as u16;
            let req = tcp(&client, port, VIP, 80, ACK, b"");
            let reply = tcp(VIP, 80, &client, port, ACK, b"");
            let c = Ipv4Addr::from(0xc633_6400 + i).octets();
            let v: Ipv4Addr = VIP.parse().unwrap();
            let w = p.steer(&req, workers);
            assert!(w < workers);
            assert_eq!(p.steer(&reply, workers), w, "client {client}: the reply");
            // An error about a reply (sent to the client), and one about a request.
            assert_eq!(p.steer(&icmp_about(&reply[14..], v.octets()), workers), w, "ICMP about the reply");
            assert_eq!(p.steer(&icmp_about(&req[14..], c), workers), w, "ICMP about the request");
            // The owner is the worker of the connection's shard: no shard has two workers.
            let flow = Flow::v4(Protocol::Tcp, client.parse().unwrap(), port, v, 80);
            let shard = p.table.shard_of(&flow).unwrap();
            assert!(shards >= workers);
            assert_eq!(w, shard % workers, "client {client}");
            per[w] += 1;
        }
        // 2000 clients over the workers: none gets less than half or more than twice its share.
        let fair = 2000 / workers as u32;
        assert!(per.iter().all(|&n| n > fair / 2 && n < fair * 2), "{workers} workers: {per:?}");
    }
}

#[test]
fn a_persistent_service_keeps_each_client_network_on_one_worker() {
    let p = pipe(true);
    let mut seen = std::collections::HashSet::new();
    for net in 0..64u32 {
        let mut workers = std::collections::HashSet::new();
        for host in 1..20u32 {
            let client = Ipv4Addr::from(0xc633_0000 + (net << 8) + host).to_string();
            for port in [1025u16, 40_000, 65_000] {
                workers.insert(p.steer(&tcp(&client, port, VIP, 80, SYN, b""), 4));
                workers.insert(p.steer(&tcp(VIP, 80, &client, port, ACK, b""), 4));
            }
        }
        assert_eq!(workers.len(), 1, "198.51.{net}.0/24 (the persistence netmask) on one worker: {workers:?}");
        seen.extend(workers);
    }
    assert!(seen.len() > 1, "the client networks spread over the workers");
}

#[test]
fn frames_no_service_claims_go_by_a_symmetric_hash() {
    let p = pipe(false);
    for i in 0..500u32 {
        let a = Ipv4Addr::from(0x0a01_0000 + i).to_string();
        let f = tcp(&a, 5000, "10.9.9.9", 22, ACK, b"");
        let r = tcp("10.9.9.9", 22, &a, 5000, ACK, b"");
        assert_eq!(p.steer(&f, 3), p.steer(&r, 3));
    }
    assert_eq!(p.steer(&[0u8; 10], 4), 0, "a frame that does not parse goes to worker 0");
    assert_eq!(p.steer(&tcp("198.51.100.1", 1, VIP, 80, SYN, b""), 1), 0);
}
