//! With a hash scheduler the frames a replay emits do not depend on the number of workers:
//! `--workers 1` and `--workers 2` give the same frames (as a set), for sh, dh, mh and maglev.

#![cfg(feature = "cli")]

mod support;

use std::sync::Mutex;

use lb_replay::capture::Capture;
use lb_replay::config::{parse_backend, Neighbours, ServiceSpec, Vip};
use lb_replay::pipeline::PipelineConfig;
use lb_replay::run::{run, Output, RunConfig};
use lb_sched::ForwardMethod;
use support::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<(u64, Vec<u8>)>>);
impl Output for Recorder {
    fn send(&self, ts: u64, frame: &[u8]) {
        self.0.lock().unwrap().push((ts, frame.to_vec()));
    }
}

/// Catch-all services (`explicit` false: frames are steered by a symmetric hash), or one service
/// per server address of [`synthetic`] (frames steered to the worker owning their client's
/// connection-table shard).
fn config(sched: &str, mode: ForwardMethod, explicit: bool) -> PipelineConfig {
    let addrs = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "2001:db8:ffff::1", "2001:db8:ffff::2"];
    let mut neigh = Neighbours::new();
    for (i, a) in addrs.iter().enumerate() {
        neigh.insert(a.parse().unwrap(), lb_rewrite::MacAddr([2, 0, 0, 0, 1, i as u8]));
    }
    let backends: Vec<_> = addrs.iter().map(|a| parse_backend(a).unwrap()).collect();
    let svc = |v6| ServiceSpec { sched: sched.into(), backends: backends.clone(), ..ServiceSpec::new(Vip::Any { v6 }) };
    let services = if explicit {
        (10..13)
            .map(|i| ServiceSpec {
                sched: sched.into(),
                backends: backends[..4].to_vec(),
                ..ServiceSpec::new(Vip::Addr { proto: None, addr: format!("192.0.2.{i}:0").parse().unwrap() })
            })
            .collect()
    } else {
        vec![svc(false), svc(true)]
    };
    PipelineConfig { neigh, ..PipelineConfig::new(services, Some(mode)) }
}

/// What the output received, in the order it received it (timestamp, frame).
fn frames(
    cap: &Capture,
    sched: &str,
    mode: ForwardMethod,
    workers: usize,
    explicit: bool,
) -> (Vec<(u64, Vec<u8>)>, u64) {
    let pipe = pipeline(&config(sched, mode, explicit));
    let rec = Recorder::default();
    let rc = RunConfig { loops: 2, ..RunConfig::new(workers) };
    let res = run(&mut cap.source(), &pipe, &rc, &rec);
    (rec.0.into_inner().unwrap(), res.counters.forwarded)
}

/// 200 connections from 50 clients, both directions, interleaved over 2 s, plus UDP.
fn synthetic() -> Capture {
    let mut f = Vec::new();
    for i in 0..200u32 {
        let c = format!("198.51.{}.{}", 100 + i % 5, 1 + i % 50);
        let s = format!("192.0.2.{}", 10 + i % 3);
        let p = 20_000 + i as u16;
        let t = 1_000_000_000 + u64::from(i) * 10_000_000;
        let mut push = |dt: u64, fr: Vec<u8>| f.push((t + dt, fr));
        push(0, tcp(&c, p, &s, 80, SYN, b""));
        push(1_000, server(&s, 80, &c, p, SYN | ACK));
        push(2_000, tcp(&c, p, &s, 80, ACK, b"GET / HTTP/1.0\r\n\r\n"));
        push(3_000, server(&s, 80, &c, p, ACK));
        push(4_000, tcp(&c, p, &s, 80, FIN | ACK, b""));
        push(5_000, udp(&c, p, &s, 53, b"query"));
    }
    f.sort_by_key(|x| x.0);
    capture(&f)
}

fn server(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Vec<u8> {
    let mut fr = tcp(src, sport, dst, dport, flags, b"");
    // Replies come from the director's side of the link.
    fr[0..6].copy_from_slice(&ROUTER);
    fr[6..12].copy_from_slice(&DIRECTOR);
    fr
}

/// With schedulers that hash (the same pick on any worker), 2 and 4 workers emit exactly what
/// one does, in the same order: the output is merged back into capture order.
fn same_frames(cap: &Capture, what: &str) {
    same_frames_with(cap, what, false)
}

fn same_frames_with(cap: &Capture, what: &str, explicit: bool) {
    for sched in ["sh", "dh", "mh", "maglev"] {
        for mode in [ForwardMethod::Masq, ForwardMethod::DirectRoute] {
            let (one, fwd) = frames(cap, sched, mode, 1, explicit);
            assert!(fwd > 0, "{what}: nothing forwarded");
            for workers in [2, 3, 4] {
                let (many, _) = frames(cap, sched, mode, workers, explicit);
                assert_eq!(one.len(), many.len(), "{what}, {sched}, {mode:?}, {workers} workers: frame counts differ");
                let first_diff = one.iter().zip(&many).position(|(a, b)| a != b);
                assert!(
                    first_diff.is_none(),
                    "{what}, {sched}, {mode:?}, {workers} workers: frame {first_diff:?} differs"
                );
            }
        }
    }
}

#[test]
fn synthetic_capture_same_frames_on_one_and_two_workers() {
    same_frames(&synthetic(), "synthetic");
}

#[test]
fn synthetic_capture_with_services_by_address_same_frames_on_one_and_more_workers() {
    same_frames_with(&synthetic(), "synthetic, services by address", true);
}

#[test]
fn bundled_captures_same_frames_on_one_and_two_workers() {
    for name in ["443-curl.pcap", "dpkt-http.pcap", "dpkt-http-vlan.pcap", "dpkt-nb6-http.pcap"] {
        same_frames(&Capture::open(&bundled_pcap(name)).unwrap(), name);
    }
}

#[test]
fn shared_captures_same_frames_on_one_and_two_workers() {
    let Some(dir) = shared_pcaps() else {
        available("../shared/testdata/pcaps", false);
        return;
    };
    for name in ["teams.pcap", "KakaoTalk_chat.pcap"] {
        same_frames(&Capture::open(&dir.join(name)).unwrap(), name);
    }
}

/// With persistence (a /24 netmask) and rr, every frame of a client network goes to one real
/// server (per protocol and virtual address; per network alone for a catch-all service), however
/// many workers replay the capture: services by address are replayed by workers that own their
/// connections (steering keeps a network on one worker, with its template), a persistent
/// catch-all service by workers sharing the table (`Pipeline::can_partition` is false for it).
#[test]
fn persistence_holds_on_any_number_of_workers() {
    use std::collections::{HashMap, HashSet};
    let cap = synthetic();
    for catch_all in [false, true] {
        let mut cfg = config("rr", ForwardMethod::DirectRoute, !catch_all);
        for s in &mut cfg.services {
            s.persistence = Some(lb_conntrack::Persistence { v4_prefix: 24, ..lb_conntrack::Persistence::default() });
        }
        for workers in [1usize, 2, 3, 4] {
            let pipe = pipeline(&cfg);
            assert_eq!(pipe.can_partition(), !catch_all);
            let rec = Recorder::default();
            let res = run(&mut cap.source(), &pipe, &RunConfig::new(workers), &rec);
            // IPv4 frames only (the capture's clients are IPv4): client network, protocol and
            // virtual address → the real servers (destination MACs) it reached.
            let mut servers: HashMap<(Vec<u8>, u8, Vec<u8>), HashSet<u8>> = HashMap::new();
            let frames = rec.0.into_inner().unwrap();
            for (_, f) in &frames {
                let key = if catch_all {
                    (f[26..29].to_vec(), 0, Vec::new())
                } else {
                    (f[26..29].to_vec(), f[23], f[30..34].to_vec())
                };
                servers.entry(key).or_default().insert(f[5]);
            }
            assert_eq!(frames.len() as u64, res.counters.forwarded);
            assert!(res.counters.forwarded >= 600, "{workers} workers: {}", res.counters.forwarded);
            let moved: Vec<_> = servers.iter().filter(|(_, s)| s.len() > 1).collect();
            assert!(moved.is_empty(), "catch-all {catch_all}, {workers} workers: networks on two servers: {moved:?}");
            let used: HashSet<u8> = servers.values().flatten().copied().collect();
            assert!(used.len() > 1, "catch-all {catch_all}, {workers} workers: rr used one server only");
            // The report's templates: one per network (and protocol and service).
            assert_eq!(res.table_stats(&pipe).templates as usize, servers.len(), "{workers} workers");
        }
    }
}
