//! A data plane of its own on lbkit's pipeline: a DR service with two real servers, frames in,
//! frames out, counters. Builds without default features (no CLI, no AF_XDP):
//! `cargo run -p lb-replay --no-default-features --example embed`.

use lb_replay::config::{parse_backend, ServiceSpec, Vip};
use lb_replay::pipeline::{Counters, Outcome, Pipeline, PipelineConfig, Worker};
use lb_rewrite::FrameBuf;
use lb_sched::{ForwardMethod, Timestamp};

fn main() {
    // One virtual service, 198.51.100.10:80, two real servers (the second twice the weight).
    let mut svc = ServiceSpec::new(Vip::Addr { proto: None, addr: "198.51.100.10:80".parse().unwrap() });
    svc.sched = "wrr".into();
    for b in ["10.0.0.1,mac=02:00:00:00:01:01", "10.0.0.2,weight=2,mac=02:00:00:00:01:02"] {
        svc.backends.push(parse_backend(b).unwrap());
    }
    let cfg = PipelineConfig::new(vec![svc], Some(ForwardMethod::DirectRoute));
    let pipe = Pipeline::new(&cfg, &|_| None).expect("a valid configuration");
    let mut worker = Worker::new(&pipe);

    // Frames in: a SYN from each of six clients (a NIC's receive ring in a real data plane).
    let mut buf = vec![0u8; 128 + 1514];
    for client in 1..=6u8 {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, client], [2, 0, 0, 0, 0, 0xfe])
            .ipv4([192, 0, 2, client], [198, 51, 100, 10], 64)
            .tcp(40_000, 80, 1, 64_240)
            .syn()
            .write(&mut frame, &[])
            .unwrap();
        buf[128..128 + frame.len()].copy_from_slice(&frame);
        let mut fb = FrameBuf::new(&mut buf, 128, frame.len()).expect("the frame fits the buffer");
        let now = Timestamp::from_secs(u64::from(client));
        // Frames out: a forwarded frame is rewritten in place; ICMP errors and fragments go to the sink.
        let outcome = worker.process(now, &mut fb, &mut |extra: &[u8]| println!("extra frame, {} bytes", extra.len()));
        if outcome == Outcome::Forwarded {
            let f = fb.frame();
            println!("client 192.0.2.{client} -> real server MAC {:02x?}", &f[..6]);
        }
    }
    let c: &Counters = &worker.counters;
    println!("read {} forwarded {} dropped {}", c.read, c.forwarded, c.dropped_total());
    for d in pipe.services()[0].svc.destinations() {
        let scheduled = c.dests[0].get(d.id().0 as usize).map_or(0, |x| x.connections);
        println!("{}: {scheduled} connections, {} active", d.addr(), d.active_conns());
    }
    assert_eq!((c.read, c.forwarded), (6, 6), "every SYN reached a real server");
}
