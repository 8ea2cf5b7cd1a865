//! `--at` events on a capture with many flows: drain, remove (with and without
//! expire_nodest_conn), reweight, add. Expected destinations come from IPVS's rr rules worked
//! out here, per connection, not from the pipeline.

#![cfg(feature = "cli")]

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use lb_replay::config::{parse_backend, ServiceSpec, Vip};
use lb_replay::pipeline::{Action, PipelineConfig};
use lb_replay::run::{run, Output, RunConfig};
use support::*;

const VIP: &str = "192.0.2.10";
const FLOWS: u16 = 60;
const EVENT_AT: u64 = 3_000_000_000; // 3 s after the first packet
const T0: u64 = 1_000_000_000_000;

/// 60 connections, the i-th starting at i x 0.1 s: SYN, ACK, then an ACK every 0.5 s until
/// 10 s. Returns the frames and, per flow, the capture offsets of its packets.
/// Timestamped frames.
type Frames = Vec<(u64, Vec<u8>)>;

fn traffic() -> (Frames, Vec<Vec<u64>>) {
    let mut frames = Vec::new();
    let mut times = Vec::new();
    for i in 0..FLOWS {
        let start = u64::from(i) * 100_000_000;
        let mut ts = vec![start, start + 1_000_000];
        let mut t = start + 500_000_000;
        while t < 10_000_000_000 {
            ts.push(t);
            t += 500_000_000;
        }
        for (k, &t) in ts.iter().enumerate() {
            let flags = if k == 0 { SYN } else { ACK };
            frames.push((T0 + t, tcp("198.51.100.7", 10_000 + i, VIP, 80, flags, b"")));
        }
        times.push(ts);
    }
    frames.sort_by_key(|f| f.0);
    (frames, times)
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(u64, Vec<u8>)>>);
impl Output for Recorder {
    fn send(&self, ts: u64, frame: &[u8]) {
        self.0.lock().unwrap().push((ts, frame.to_vec()));
    }
}

fn backend(i: u8) -> String {
    format!("10.0.0.{i},mac=02:00:00:00:01:0{i}")
}

struct Outcome {
    /// Per flow: (packets before the event, packets after), by destination address.
    by_flow: Vec<HashMap<(IpAddr, bool), u64>>,
    dropped: lb_replay::pipeline::DropCounts,
    report_events: Vec<String>,
}

fn replay(action: &str, nodest: bool) -> Outcome {
    let (frames, _) = traffic();
    let cap = capture(&frames);
    let mut spec = ServiceSpec::new(Vip::Addr { proto: None, addr: format!("{VIP}:80").parse().unwrap() });
    spec.sched = "rr".into();
    // Added A, B, C: IPVS list order C, B, A.
    spec.backends = (1..=3).map(|i| parse_backend(&backend(i)).unwrap()).collect();
    let ev = lb_replay::run::parse_event(&format!("3:{action}")).unwrap();
    let future = match &ev.action {
        Action::Add(b) => vec![b.clone()],
        _ => vec![],
    };
    let cfg = PipelineConfig {
        conntrack: lb_conntrack::Config { expire_nodest_conn: nodest, ..Default::default() },
        future_backends: future,
        ..PipelineConfig::new(vec![spec], Some(lb_sched::ForwardMethod::DirectRoute))
    };
    let pipe = pipeline(&cfg);
    let rec = Recorder::default();
    let rc = RunConfig { events: vec![ev], ..RunConfig::new(1) };
    let res = run(&mut cap.source(), &pipe, &rc, &rec);
    let mut by_flow = vec![HashMap::new(); FLOWS as usize];
    for (ts, f) in rec.0.into_inner().unwrap() {
        let flow = u16::from_be_bytes([f[34], f[35]]) - 10_000;
        let dest: IpAddr = format!("10.0.0.{}", f[5]).parse().unwrap();
        *by_flow[flow as usize].entry((dest, ts - T0 >= EVENT_AT)).or_insert(0) += 1;
    }
    let report_events = res.events.iter().map(|(_, _, r)| r.clone().unwrap_or_else(|e| e)).collect();
    Outcome { by_flow, dropped: res.counters.dropped, report_events }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// rr's pick for the k-th connection, worked out from IPVS's rr rule: list order C B A; before
/// the event every node is eligible (k mod 3); after it, the walk skips `skipped` (and goes on
/// from where the cursor was).
fn rr_expected(skipped: Option<&str>, extra_first: Option<&str>) -> Vec<IpAddr> {
    let mut list: Vec<&str> = vec!["10.0.0.3", "10.0.0.2", "10.0.0.1"];
    let mut out = Vec::new();
    let mut cursor: Option<usize> = None; // index of the last pick; None = head
    for i in 0..FLOWS {
        if u64::from(i) * 100_000_000 == EVENT_AT {
            if let Some(d) = extra_first {
                // ipvsadm -a puts the new destination at the head; the cursor node is unchanged.
                list.insert(0, d);
                cursor = cursor.map(|c| c + 1);
            }
        }
        let after = u64::from(i) * 100_000_000 >= EVENT_AT;
        let n = list.len();
        let start = cursor.map_or(0, |c| c + 1);
        let pick = (0..n).map(|k| (start + k) % n).find(|&j| !(after && Some(list[j]) == skipped)).unwrap();
        cursor = Some(pick);
        out.push(ip(list[pick]));
    }
    out
}

fn packets_after(i: usize) -> u64 {
    let (_, times) = traffic();
    times[i].iter().filter(|&&t| t >= EVENT_AT).count() as u64
}

#[test]
fn drain_keeps_old_connections_and_sends_new_ones_elsewhere() {
    let o = replay("drain=10.0.0.2", false);
    let expected = rr_expected(Some("10.0.0.2"), None);
    for (i, counts) in o.by_flow.iter().enumerate() {
        let want = expected[i];
        // Every packet of the flow went to its rr destination, before and after the drain.
        assert!(counts.keys().all(|(d, _)| *d == want), "flow {i}: {counts:?}, want {want}");
        let after: u64 = counts.iter().filter(|((_, a), _)| *a).map(|(_, n)| n).sum();
        assert_eq!(after, packets_after(i), "flow {i} lost packets after the drain");
    }
    // B's connections are exactly the pre-drain ones with k mod 3 = 1.
    let b_flows: Vec<usize> = (0..FLOWS as usize).filter(|&i| expected[i] == ip("10.0.0.2")).collect();
    assert_eq!(b_flows, (0..30).filter(|i| i % 3 == 1).collect::<Vec<_>>());
    assert!(o.dropped.is_empty(), "{:?}", o.dropped);
    assert!(o.report_events[0].contains("10.0.0.2 weight 1 -> 0"), "{:?}", o.report_events);
}

#[test]
fn remove_drops_the_removed_destinations_packets_or_expires_them() {
    let expected = rr_expected(Some("10.0.0.2"), None);
    let b_flows: Vec<usize> = (0..FLOWS as usize).filter(|&i| expected[i] == ip("10.0.0.2")).collect();
    let lost: u64 = b_flows.iter().map(|&i| packets_after(i)).sum();
    for nodest in [false, true] {
        let o = replay("remove=10.0.0.2", nodest);
        for (i, counts) in o.by_flow.iter().enumerate() {
            assert!(counts.keys().all(|(d, _)| *d == expected[i]), "flow {i}: {counts:?}");
            let after: u64 = counts.iter().filter(|((_, a), _)| *a).map(|(_, n)| n).sum();
            let want = if b_flows.contains(&i) { 0 } else { packets_after(i) };
            assert_eq!(after, want, "flow {i} after the removal");
        }
        // expire_nodest_conn = 0: IPVS drops them silently, the connection survives;
        // = 1: the connection is expired and the (non-SYN) packet may not open a new one.
        let reason = if nodest { "not_syn_without_connection" } else { "destination_removed" };
        assert_eq!(o.dropped.by_name(reason), lost, "{:?}", o.dropped);
        assert_eq!(o.dropped.total(), lost);
    }
}

#[test]
fn add_and_reweight() {
    let o = replay("add=10.0.0.4,mac=02:00:00:00:01:04", false);
    let expected = rr_expected(None, Some("10.0.0.4"));
    for (i, counts) in o.by_flow.iter().enumerate() {
        assert!(counts.keys().all(|(d, _)| *d == expected[i]), "flow {i}: {counts:?}, want {}", expected[i]);
    }
    assert!(expected[30..].contains(&ip("10.0.0.4")));
    // weight=ADDR:W is an edit: with rr, weight 0 is a drain; a non-zero weight changes nothing.
    let o = replay("weight=10.0.0.2:0", false);
    let drained = rr_expected(Some("10.0.0.2"), None);
    assert!(o.by_flow.iter().enumerate().all(|(i, c)| c.keys().all(|(d, _)| *d == drained[i])));
}
