//! The burst path gives exactly what the one-frame path gives: for every bundled capture in
//! every mode, `Worker::process_burst` (warming every burst, or none) and `Worker::process`
//! frame by frame produce the same outcomes, the same output frames in the same order, and the
//! same counters.

#![cfg(feature = "cli")]

mod support;

use lb_replay::capture::Capture;
use lb_replay::config::{parse_backend, Neighbours, ServiceSpec, Vip};
use lb_replay::pipeline::{BurstOutput, Outcome, PipelineConfig, Worker};
use lb_rewrite::FrameBuf;
use lb_sched::{ForwardMethod, Timestamp};
use support::*;

fn config(mode: ForwardMethod, by_address: bool) -> PipelineConfig {
    let mut backends = Vec::new();
    let mut neigh = Neighbours::new();
    for (i, a) in ["10.0.0.1", "10.0.0.2", "2001:db8:ffff::1", "2001:db8:ffff::2"].iter().enumerate() {
        backends.push(parse_backend(a).unwrap());
        neigh.insert(a.parse().unwrap(), lb_rewrite::MacAddr([2, 0, 0, 0, 1, i as u8]));
    }
    let svc = |vip: Vip, b: &[lb_replay::config::Backend]| ServiceSpec {
        sched: "wlc".into(),
        backends: b.to_vec(),
        ..ServiceSpec::new(vip)
    };
    let services = if by_address {
        // The captures' servers, as services by address (the rest is not claimed).
        ["65.208.228.223:80", "178.62.197.130:443", "93.17.156.250:80", "216.69.252.100:80"]
            .iter()
            .map(|a| svc(Vip::Addr { proto: None, addr: a.parse().unwrap() }, &backends[..2]))
            .collect()
    } else {
        vec![svc(Vip::Any { v6: false }, &backends), svc(Vip::Any { v6: true }, &backends)]
    };
    PipelineConfig {
        tun_src: vec!["192.0.2.254".parse().unwrap(), "2001:db8:fffe::1".parse().unwrap()],
        neigh,
        ..PipelineConfig::new(services, Some(mode))
    }
}

/// What a burst produced, per input frame: its outcome, its forwarded frame, its own frames.
#[derive(Default)]
struct Collect(Vec<(usize, Option<Outcome>, Vec<Vec<u8>>)>);

impl BurstOutput for Collect {
    fn emit(&mut self, i: usize, frame: &[u8]) {
        self.0.push((i, None, vec![frame.to_vec()]));
    }
    fn done(&mut self, i: usize, outcome: Outcome, frame: &[u8]) {
        let fwd = if outcome == Outcome::Forwarded { vec![frame.to_vec()] } else { vec![] };
        self.0.push((i, Some(outcome), fwd));
    }
}

#[test]
fn bursts_give_what_single_frames_give() {
    for name in ["dpkt-http.pcap", "443-curl.pcap", "dpkt-nb6-http.pcap", "6in4tunnel.pcap", "dpkt-truncated_dns.pcap"]
    {
        let cap = Capture::open(&bundled_pcap(name)).unwrap();
        for mode in [ForwardMethod::Masq, ForwardMethod::DirectRoute, ForwardMethod::Tunnel] {
            for (by_address, warm_from) in [(false, 0), (true, 0), (false, usize::MAX), (true, usize::MAX)] {
                let ctx = format!("{name}, {mode:?}, services by address {by_address}, warm from {warm_from}");
                // One frame at a time (the expiry before each frame, as the burst path's caller
                // does not expire within a burst: both with automatic expiry off).
                let one = pipeline(&config(mode, by_address));
                let mut w = Worker::new(&one);
                w.auto_expire = false;
                let mut want = Collect::default();
                let mut buf = vec![0u8; 128 + 70_000];
                for (i, f) in cap.frames.iter().enumerate() {
                    let data = cap.frame(f);
                    buf[128..128 + data.len()].copy_from_slice(data);
                    let mut fb = FrameBuf::new(&mut buf, 128, data.len()).unwrap();
                    let mut extra = Vec::new();
                    let o = w.process(Timestamp::from_nanos(f.ts_ns), &mut fb, &mut |x: &[u8]| extra.push(x.to_vec()));
                    for x in extra {
                        want.emit(i, &x);
                    }
                    want.done(i, o, fb.frame());
                }
                let want_counters = w.counters.clone();
                // Bursts of every size from 1 to 40 frames, so bursts split at every place.
                let many = pipeline(&config(mode, by_address));
                let mut w = Worker::new(&many);
                w.auto_expire = false;
                w.warm_from = warm_from;
                let mut got = Collect::default();
                let mut at = 0usize;
                let mut size = 1usize;
                while at < cap.frames.len() {
                    let end = (at + size).min(cap.frames.len());
                    let mut bufs: Vec<Vec<u8>> = cap.frames[at..end]
                        .iter()
                        .map(|f| {
                            let mut b = vec![0u8; 128];
                            b.extend_from_slice(cap.frame(f));
                            b
                        })
                        .collect();
                    let mut frames: Vec<(Timestamp, FrameBuf<'_>)> = bufs
                        .iter_mut()
                        .zip(&cap.frames[at..end])
                        .map(|(b, f)| {
                            let n = b.len() - 128;
                            (Timestamp::from_nanos(f.ts_ns), FrameBuf::new(b, 128, n).unwrap())
                        })
                        .collect();
                    let mut part = Collect::default();
                    w.process_burst(&mut frames, &mut part);
                    got.0.extend(part.0.into_iter().map(|(i, o, f)| (i + at, o, f)));
                    at = end;
                    size = size % 40 + 1;
                }
                assert_eq!(got.0.len(), want.0.len(), "{ctx}");
                for (g, w) in got.0.iter().zip(&want.0) {
                    assert!(g == w, "{ctx}: frame {} differs", w.0);
                }
                assert_eq!(format!("{:?}", w.counters), format!("{want_counters:?}"), "{ctx}");
                assert!(want_counters.read > 0, "{ctx}");
                if by_address && name != "6in4tunnel.pcap" && name != "dpkt-truncated_dns.pcap" {
                    assert!(want_counters.forwarded > 0, "{ctx}: the services claim the capture's traffic");
                }
            }
        }
    }
}
