//! `pipeline`: arbitrary frames, in order and with time passing, through replay's whole
//! pipeline (parse, service lookup, conntrack, scheduling, NAT / DR / TUN rewrite, ICMP errors,
//! replies) with a fixed configuration: a catch-all IPv4 service and a catch-all IPv6 service
//! whose backends use every forwarding method (NAT, DR, IPIP and GUE tunnels, a tunnel across
//! families), and an explicit TCP VIP with persistence; operator events (drain, reweight,
//! remove, re-add a backend) between frames.
//!
//! Input: a first byte choosing the MTU, then records. A record is `kind` (u8), `dt` (u8,
//! milliseconds), then for a frame (`kind < 0xF0`) a big-endian u16 length and the frame's
//! bytes; for an event (`kind >= 0xF0`) nothing more: `kind & 3` picks drain / weight 3 /
//! remove / add back, `(kind >> 2) & 3` the backend.
//!
//! Asserts: no panic; exactly one outcome per frame: `read` grows by one and exactly one of
//! `forwarded`, `replies_skipped` or the outcome's drop reason grows by one, so that after every
//! frame `read == forwarded + replies_skipped + Σ dropped`; a fragmented outcome's count is
//! the fragments the sink got; a forwarded frame lies in the buffer and parses with etherparse.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use lb_conntrack::Persistence;
use lb_replay::config::{Backend, ServiceSpec, Vip};
use lb_replay::pipeline::{Action, Counters, Outcome, Pipeline, PipelineConfig, Worker};
use lb_rewrite::{FrameBuf, MacAddr};
use lb_sched::{ForwardMethod, Protocol, Timestamp};
use libfuzzer_sys::fuzz_target;

const HEADROOM: usize = 128;

fn backend(addr: &str, fwd: ForwardMethod, mac: u8, gue: Option<u16>) -> Backend {
    let mut b = Backend::new(addr.parse().unwrap());
    b.fwd = Some(fwd);
    b.mac = Some(MacAddr([2, 0, 0, 0, 1, mac]));
    b.gue_port = gue;
    b
}

/// The backends events act on.
const EVENT_BACKENDS: [&str; 4] = ["10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::3"];

fn config(mtu: u16) -> PipelineConfig {
    use ForwardMethod::{DirectRoute, Masq, Tunnel};
    let mut any4 = ServiceSpec::new(Vip::Any { v6: false });
    any4.backends = vec![
        backend("10.0.0.1", Masq, 1, None),
        backend("10.0.0.2", DirectRoute, 2, None),
        backend("10.0.0.3", Tunnel, 3, None),
        backend("10.0.0.4", Tunnel, 4, Some(6080)),
        backend("2001:db8::4", Tunnel, 5, None),
    ];
    let mut any6 = ServiceSpec::new(Vip::Any { v6: true });
    any6.sched = "sh".into();
    any6.backends = vec![
        backend("2001:db8::1", Masq, 6, None),
        backend("2001:db8::2", DirectRoute, 7, None),
        backend("2001:db8::3", Tunnel, 8, Some(6080)),
    ];
    let mut vip =
        ServiceSpec::new(Vip::Addr { proto: Some(Protocol::Tcp), addr: SocketAddr::from(([192, 0, 2, 80], 80)) });
    vip.sched = "rr".into();
    vip.persistence = Some(Persistence::default());
    vip.backends = vec![backend("10.0.1.1", Masq, 9, None), backend("10.0.1.2", DirectRoute, 10, None)];
    PipelineConfig {
        services: vec![any4, any6, vip],
        mode: None,
        conntrack: lb_conntrack::Config { max_connections: 4096, shards: 1, hash_seed: Some(1), ..Default::default() },
        mtu,
        tun_src: vec!["192.0.2.254".parse().unwrap(), "2001:db8::fe".parse().unwrap()],
        director_ips: vec![],
        neigh: Default::default(),
        director_mac: None,
        future_backends: Vec::new(),
        live_next_hops: None,
    }
}

fn event(p: &Pipeline, kind: u8) {
    let addr: IpAddr = EVENT_BACKENDS[usize::from((kind >> 2) & 3)].parse().unwrap();
    let action = match kind & 3 {
        0 => Action::Drain(addr),
        1 => Action::Weight(addr, 3),
        2 => Action::Remove(addr),
        _ => {
            let mut b = Backend::new(addr);
            b.fwd = Some(ForwardMethod::Masq);
            Action::Add(b)
        }
    };
    let _ = p.apply(&action);
}

/// Which counter an outcome moves.
fn counted(c: &Counters, o: &Outcome) -> u64 {
    match o {
        Outcome::Forwarded | Outcome::Fragmented(_) => c.forwarded,
        Outcome::ReplySkipped => c.replies_skipped,
        Outcome::Dropped(why) => c.dropped.get(*why),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mtu_choice, mut rest)) = data.split_first() else { return };
    let mtu = [1500, 1280, 576, 9000][usize::from(mtu_choice & 3)];
    let pipe = Pipeline::new(&config(mtu), &|_| None).expect("the fixed configuration is valid");
    // Bit 2 of the first byte: a worker that owns its connections (a partition, no lock).
    let mut worker = if mtu_choice & 4 != 0 { Worker::owning(&pipe) } else { Worker::new(&pipe) };
    let mut buf = vec![0u8; HEADROOM + 65_536];
    let mut now = Timestamp::from_secs(1_700_000_000);
    while let [kind, dt, tail @ ..] = rest {
        now = now.saturating_add(std::time::Duration::from_millis(u64::from(*dt)));
        if *kind >= 0xF0 {
            event(&pipe, *kind);
            rest = tail;
            continue;
        }
        let [hi, lo, tail @ ..] = tail else { return };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;

        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut fb = FrameBuf::new(&mut buf, HEADROOM, frame.len()).unwrap();
        worker.expire(now);
        let before = worker.counters.clone();
        let mut sunk = 0u64;
        let outcome = worker.process(now, &mut fb, &mut |_: &[u8]| sunk += 1);
        let after = &worker.counters;

        assert_eq!(after.read, before.read + 1, "one frame read");
        let moved = [
            after.forwarded - before.forwarded,
            after.replies_skipped - before.replies_skipped,
            after.dropped_total() - before.dropped_total(),
        ];
        assert_eq!(moved.iter().sum::<u64>(), 1, "exactly one outcome counted for {outcome:?}: {moved:?}");
        assert_eq!(counted(after, &outcome), counted(&before, &outcome) + 1, "{outcome:?} counted under its name");
        assert_eq!(after.read, after.forwarded + after.replies_skipped + after.dropped_total());
        match outcome {
            Outcome::Fragmented(n) => {
                assert_eq!(after.fragments - before.fragments, u64::from(n), "fragments counted");
                assert_eq!(sunk, u64::from(n), "fragments emitted");
            }
            Outcome::Forwarded => {
                let out = fb.frame();
                assert!(fb.start() + out.len() <= HEADROOM + frame.len());
                if let Err(e) = etherparse::SlicedPacket::from_ethernet(out) {
                    panic!("forwarded frame does not parse: {e}");
                }
            }
            Outcome::ReplySkipped | Outcome::Dropped(_) => {}
        }
    }
});
