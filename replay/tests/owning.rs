//! Workers that own their connections (`Worker::owning`: a partition of the table each, no
//! lock): given the frames `Pipeline::steer` gives them, they answer frame for frame as one
//! worker on the shared table does; a persistent client keeps its real server across them; a
//! frame handed to a worker that does not own its connection does not find it.

#![cfg(feature = "cli")]

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::{Icmpv4Type, PacketBuilder};
use lb_replay::config::{parse_backend, Neighbours, ServiceSpec, Vip};
use lb_replay::pipeline::{DropReason, Outcome, Pipeline, PipelineConfig, Worker};
use lb_rewrite::FrameBuf;
use lb_sched::{ForwardMethod, Timestamp};
use support::*;

const VIP: &str = "192.0.2.10";
const FIN: u8 = 0x01;

fn pipe(sched: &str, persistent: bool, any: bool) -> Pipeline {
    let mut neigh = Neighbours::new();
    for i in 1..=3u8 {
        neigh.insert(format!("10.0.0.{i}").parse().unwrap(), lb_rewrite::MacAddr([2, 0, 0, 0, 1, i]));
    }
    let vip = if any {
        Vip::Any { v6: false }
    } else {
        Vip::Addr { proto: None, addr: format!("{VIP}:80").parse().unwrap() }
    };
    let mut spec = ServiceSpec::new(vip);
    spec.sched = sched.to_string();
    spec.backends = (1..=3).map(|i| parse_backend(&format!("10.0.0.{i}")).unwrap()).collect();
    if persistent {
        spec.persistence = Some(lb_conntrack::Persistence {
            timeout: Duration::from_secs(300),
            v4_prefix: 24,
            ..lb_conntrack::Persistence::default()
        });
    }
    pipeline(&PipelineConfig { neigh, ..PipelineConfig::new(vec![spec], Some(ForwardMethod::Masq)) })
}

/// An ICMP destination unreachable from a router to `to`, quoting `quoted` (an IPv4 packet).
fn icmp_about(quoted: &[u8], to: [u8; 4]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(ROUTER, DIRECTOR)
        .ipv4([203, 0, 113, 1], to, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Host));
    let mut out = Vec::new();
    b.write(&mut out, &quoted[..28]).unwrap();
    out
}

/// Connections of 300 clients, interleaved: SYN, the reply, ACK with data, an ICMP error about
/// the request, FIN; and frames of unknown connections.
fn traffic() -> Vec<Vec<u8>> {
    let mut per_client: Vec<Vec<Vec<u8>>> = Vec::new();
    for i in 0..300u32 {
        let ip = Ipv4Addr::from(0xc633_6400 + i * 7);
        let c = ip.to_string();
        let port = 20_000 + (i % 5_000) as u16;
        let req = tcp(&c, port, VIP, 80, SYN, b"");
        per_client.push(vec![
            req.clone(),
            tcp(VIP, 80, &c, port, SYN | ACK, b""),
            tcp(&c, port, VIP, 80, ACK, b"GET / HTTP/1.0\r\n\r\n"),
            icmp_about(&req[14..], ip.octets()),
            tcp(VIP, 80, &c, port, ACK, b"HTTP/1.0 200 OK\r\n\r\n"),
            tcp(&c, port, VIP, 80, FIN | ACK, b""),
            tcp(&c, port + 1, VIP, 80, ACK, b""), // no connection: dropped
        ]);
    }
    // Round-robin over the clients, one frame each, so the workers' frames interleave.
    let mut out = Vec::new();
    for k in 0..7 {
        for c in &per_client {
            out.push(c[k].clone());
        }
    }
    out
}

/// Runs `frames` through one worker each, frame `i` at `i` ms to worker `owner(i)`; the outcome
/// and output bytes of each frame.
fn run(workers: &mut [Worker<'_>], frames: &[Vec<u8>], owner: impl Fn(&[u8]) -> usize) -> Vec<(Outcome, Vec<u8>)> {
    let mut buf = vec![0u8; 128 + 2048];
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            buf[128..128 + f.len()].copy_from_slice(f);
            let mut fb = FrameBuf::new(&mut buf, 128, f.len()).unwrap();
            let w = &mut workers[owner(f)];
            let o = w.process(Timestamp::from_nanos(1_000_000 * (i as u64 + 1)), &mut fb, &mut |_: &[u8]| {});
            (o, fb.frame().to_vec())
        })
        .collect()
}

#[test]
fn owning_workers_fed_by_steering_answer_as_one_worker_on_the_shared_table() {
    let frames = traffic();
    for sched in ["sh", "mh", "dh"] {
        let one = pipe(sched, false, false);
        let want = run(&mut [Worker::new(&one)], &frames, |_| 0);
        let many = pipe(sched, false, false);
        assert!(many.can_partition());
        let mut ws: Vec<Worker<'_>> = (0..3).map(|_| Worker::owning(&many)).collect();
        assert!(ws.iter().all(|w| w.owns_connections()));
        let got = run(&mut ws, &frames, |f| many.steer(f, 3));
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{sched}: frame {i}");
        }
        let forwarded = want.iter().filter(|(o, _)| *o == Outcome::Forwarded).count();
        assert_eq!(forwarded, 300 * 6, "{sched}: every frame of a connection forwarded");
        // Every worker had connections, and together they hold what the shared table holds.
        let per: Vec<u64> = ws.iter().map(|w| w.partition().unwrap().stats().created).collect();
        assert!(per.iter().all(|&n| n > 50), "{sched}: {per:?}");
        let mut sum = lb_conntrack::Stats::default();
        for w in &ws {
            sum.merge(&w.table_stats());
        }
        let shared = one.table.stats();
        assert_eq!((sum.created, sum.connections, sum.hits), (shared.created, shared.connections, shared.hits));
        assert_eq!(sum.states, shared.states);
        assert_eq!(many.table.len(), one.table.len(), "the parent counts its partitions' entries");
        // The destinations count the connections of every partition.
        let counts = |p: &Pipeline| {
            p.services()[0]
                .svc
                .destinations()
                .iter()
                .map(|d| (d.active_conns(), d.inactive_conns()))
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(&many), counts(&one), "{sched}");
        drop(ws);
        assert_eq!(many.table.len(), 0, "dropped partitions give back their room");
        assert!(counts(&many).iter().all(|&c| c == (0, 0)));
    }
}

#[test]
fn a_persistent_client_network_keeps_its_real_server_across_owning_workers() {
    let p = pipe("rr", true, false);
    let mut ws: Vec<Worker<'_>> = (0..4).map(|_| Worker::owning(&p)).collect();
    let mut buf = vec![0u8; 2048];
    let mut by_net = std::collections::HashMap::new();
    let mut t = 1u64;
    for host in 1..30u32 {
        for net in 0..16u32 {
            let client = Ipv4Addr::from(0xc633_0000 + (net << 8) + host).to_string();
            let f = tcp(&client, 1000 + host as u16, VIP, 80, SYN, b"");
            buf[128..128 + f.len()].copy_from_slice(&f);
            let mut fb = FrameBuf::new(&mut buf, 128, f.len()).unwrap();
            let w = p.steer(&f, 4);
            t += 1;
            assert_eq!(ws[w].process(Timestamp::from_nanos(t), &mut fb, &mut |_: &[u8]| {}), Outcome::Forwarded);
            let dst_mac = fb.frame()[5];
            assert_eq!(*by_net.entry(net).or_insert(dst_mac), dst_mac, "198.51.{net}.0/24 moved to another server");
        }
    }
    let templates: Vec<u64> = ws.iter().map(|w| w.table_stats().templates).collect();
    assert_eq!(templates.iter().sum::<u64>(), 16, "one template per client network: {templates:?}");
    assert!(templates.iter().filter(|&&n| n > 0).count() > 1, "the networks spread over the workers");
}

#[test]
fn a_frame_given_to_a_worker_that_does_not_own_its_connection_does_not_find_it() {
    let p = pipe("sh", false, false);
    let mut ws = [Worker::owning(&p), Worker::owning(&p)];
    let syn = tcp("198.51.100.7", 4000, VIP, 80, SYN, b"");
    let reply = tcp(VIP, 80, "198.51.100.7", 4000, SYN | ACK, b"");
    let owner = p.steer(&syn, 2);
    let mut buf = vec![0u8; 2048];
    let mut go = |w: &mut Worker<'_>, f: &[u8]| {
        buf[128..128 + f.len()].copy_from_slice(f);
        let mut fb = FrameBuf::new(&mut buf, 128, f.len()).unwrap();
        w.process(Timestamp::from_nanos(5), &mut fb, &mut |_: &[u8]| {})
    };
    assert_eq!(go(&mut ws[owner], &syn), Outcome::Forwarded);
    assert_eq!(go(&mut ws[1 - owner], &reply), Outcome::Dropped(DropReason::ReplyWithoutConnection));
    assert_eq!(go(&mut ws[owner], &reply), Outcome::Forwarded);
}

#[test]
fn only_a_persistent_catch_all_service_cannot_be_partitioned() {
    assert!(pipe("rr", false, false).can_partition());
    assert!(pipe("rr", true, false).can_partition());
    assert!(pipe("rr", false, true).can_partition());
    assert!(!pipe("rr", true, true).can_partition());
}
