//! `ConnTable::input_batch` is `ConnTable::input` for each packet in turn: the same verdicts,
//! counters, destination loads and table contents, whatever the batch's size and mix.

mod common;

use common::{ip, service, t, tcp, udp};
use lb_conntrack::{Config, ConnInfo, ConnTable, InVerdict, ServiceParams};
use lb_sched::{Flow, ForwardMethod, Protocol, Service, TcpFlags};

const P: ServiceParams = ServiceParams { persistence: None, one_packet: false, catch_all: false };

fn table() -> ConnTable {
    ConnTable::new(Config { hash_seed: Some(11), shards: 4, max_connections: 64, ..Config::default() })
}

fn tcp6(client: u16, cport: u16) -> Flow {
    Flow {
        proto: Protocol::Tcp,
        src: ip(&format!("2001:db8::{client:x}")),
        src_port: cport,
        dst: ip("2001:db8:ff::1"),
        dst_port: 80,
    }
}

/// A mix of every outcome: new connections (v4 and v6, TCP and UDP), hits, a SYN and its ACK in
/// one batch, RSTs and non-SYNs of unknown connections, ICMP (not keyed), mixed families, and
/// more new connections than the table holds (eviction and refusal).
fn packets(round: u16) -> Vec<(Flow, u8)> {
    let mut v = Vec::new();
    for i in 0..40u16 {
        let c = format!("192.0.2.{}", i % 13);
        match i % 8 {
            0 => v.push((tcp(&c, 1000 + i), TcpFlags::SYN)),
            1 => v.push((tcp(&c, 999 + i), TcpFlags::ACK)),
            2 => v.push((tcp6(i % 5, 2000 + round), TcpFlags::SYN)),
            3 => v.push((tcp(&c, 5000 + i), TcpFlags::RST)),
            4 => v.push((udp(&c, 53 + i % 3), 0)),
            5 => v.push((tcp(&c, 6000 + i), TcpFlags::ACK | TcpFlags::PSH)),
            6 => v.push((Flow { proto: Protocol::Icmp, src_port: 0, dst_port: 0, ..tcp(&c, 0) }, 0)),
            _ => v.push((Flow { dst: ip("2001:db8:ff::1"), ..tcp(&c, 7000) }, TcpFlags::SYN)),
        }
        v.push((tcp(&format!("198.18.{}.{}", round, i), 40_000 + i), TcpFlags::SYN));
    }
    v
}

fn contents(tb: &ConnTable) -> Vec<String> {
    let mut all = Vec::new();
    tb.for_each(|c: &ConnInfo| all.push(format!("{c:?}")));
    all.sort();
    all
}

fn loads(svc: &Service) -> Vec<(u32, u32)> {
    svc.destinations().iter().map(|d| (d.active_conns(), d.inactive_conns())).collect()
}

#[test]
fn a_batch_is_its_packets_one_by_one() {
    let (one, batched) = (table(), table());
    let (svc_one, svc_batched) = (service("wlc", 3, ForwardMethod::Masq), service("wlc", 3, ForwardMethod::Masq));
    // Batches of every size around the chunk of 32, at times that let some connections expire.
    for (round, size) in [1usize, 31, 32, 33, 80].into_iter().enumerate() {
        let now = t(1.0 + 20.0 * round as f64);
        let pkts = packets(round as u16);
        let expected: Vec<InVerdict> = pkts.iter().map(|(f, fl)| one.input(now, f, *fl, &svc_one, &P)).collect();
        let mut got = Vec::new();
        for chunk in pkts.chunks(size) {
            // One more verdict than packets: the extra one is left as it was.
            let mut out = vec![InVerdict::NoDestination; chunk.len() + 1];
            batched.input_batch(now, chunk, &svc_batched, &P, &mut out);
            assert_eq!(out.pop(), Some(InVerdict::NoDestination));
            got.extend(out);
        }
        assert_eq!(got, expected, "verdicts, batches of {size}");
        assert_eq!(batched.stats(), one.stats(), "counters, batches of {size}");
        assert_eq!(batched.len(), one.len());
        assert_eq!(contents(&batched), contents(&one));
        assert_eq!(loads(&svc_batched), loads(&svc_one));
    }
    let s = batched.stats();
    assert!(s.created > 0 && s.hits > 0 && s.not_scheduled > 0 && s.refused + s.evicted > 0, "{s:?}");
}

/// `warm` changes nothing: warming a mix of known and unknown flows before handling each batch
/// leaves verdicts, counters and contents those of a table never warmed.
#[test]
fn warming_changes_nothing() {
    let (plain, warmed) = (table(), table());
    let (svc_plain, svc_warmed) = (service("wlc", 3, ForwardMethod::Masq), service("wlc", 3, ForwardMethod::Masq));
    let mut read = 0u64;
    for round in 0..4u16 {
        let now = t(1.0 + 20.0 * f64::from(round));
        let pkts = packets(round);
        for chunk in pkts.chunks(32) {
            let flows: Vec<Flow> = chunk.iter().map(|(f, _)| *f).collect();
            read = read.wrapping_add(warmed.warm(&flows));
            let before = warmed.stats();
            read = read.wrapping_add(warmed.warm(&flows));
            assert_eq!(warmed.stats(), before, "warming counts nothing");
            for (f, fl) in chunk {
                assert_eq!(warmed.input(now, f, *fl, &svc_warmed, &P), plain.input(now, f, *fl, &svc_plain, &P));
            }
        }
        assert_eq!(warmed.stats(), plain.stats());
        assert_eq!(contents(&warmed), contents(&plain));
        assert_eq!(loads(&svc_warmed), loads(&svc_plain));
    }
    // Known connections were found by the warming: what it read is not all empty buckets.
    assert_ne!(read, 0);
}
