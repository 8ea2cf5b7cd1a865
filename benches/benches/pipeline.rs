//! `pipeline`: the whole packet path in memory (no I/O): parse, service lookup, conntrack,
//! scheduler, rewrite. Established flows (a hit and a state update per packet) and new flows
//! (schedule and insert), DR and NAT, 64-byte frames, on 1 and 2 workers that own their
//! connections (and one on the shared table); the burst path beside the one-frame path.
//!
//! cargo bench -p lb-benches --bench pipeline

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etherparse::PacketBuilder;
use lb_replay::config::{parse_backend, ServiceSpec, Vip};
use lb_replay::pipeline::{recycle_burst, BurstOutput, Outcome, Pipeline, PipelineConfig, Worker, BURST, WARM_FROM};
use lb_rewrite::FrameBuf;
use lb_sched::{ForwardMethod, Timestamp};

const VIP: [u8; 4] = [198, 51, 100, 10];

fn frame(client: u32, port: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xfe])
        .ipv4(client.to_be_bytes(), VIP, 64)
        .tcp(port, 80, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v.resize(60, 0); // the minimum Ethernet frame (without FCS): 64 bytes on the wire
    v
}

fn pipeline(mode: ForwardMethod, syn_recv_timeout: Option<Duration>) -> Pipeline {
    let mut spec = ServiceSpec::new(Vip::Addr { proto: None, addr: "198.51.100.10:80".parse().unwrap() });
    spec.sched = "wlc".into();
    spec.backends = (1..=8).map(|i| parse_backend(&format!("10.0.0.{i},mac=02:00:00:00:01:0{i}")).unwrap()).collect();
    let mut conntrack = lb_conntrack::Config::default();
    if let Some(t) = syn_recv_timeout {
        conntrack.timeouts.set(lb_conntrack::State::SynRecv, t);
    }
    let cfg = PipelineConfig { conntrack, ..PipelineConfig::new(vec![spec], Some(mode)) };
    Pipeline::new(&cfg, &|_| None).unwrap()
}

/// A value alone on its cache lines (128 bytes: a line and the one the adjacent-line
/// prefetcher pairs with it).
#[repr(align(128))]
struct Apart<T>(T);

/// Discards what a burst produced (its outcomes kept from the optimiser).
struct Discard;

impl BurstOutput for Discard {
    fn emit(&mut self, _: usize, f: &[u8]) {
        black_box(f.len());
    }
    fn done(&mut self, _: usize, o: Outcome, f: &[u8]) {
        black_box((o, f.len()));
    }
}

/// Runs `frames` (in a loop) through worker `w` in bursts of [`BURST`]; returns the time for
/// `iters` packets.
fn drive_burst(w: &mut Worker<'_>, frames: &[Vec<u8>], iters: u64, now: &mut u64, warm_from: usize) -> Duration {
    w.auto_expire = false;
    w.warm_from = warm_from;
    let mut bufs = vec![vec![0u8; 128 + 2048]; BURST];
    let mut i = 0u64;
    let mut spare: Vec<(Timestamp, FrameBuf<'static>)> = Vec::with_capacity(BURST);
    let start = Instant::now();
    while i < iters {
        let n = (iters - i).min(BURST as u64) as usize;
        let mut burst = recycle_burst(std::mem::take(&mut spare));
        for (k, b) in bufs.iter_mut().take(n).enumerate() {
            let f = &frames[(i as usize + k) % frames.len()];
            b[128..128 + f.len()].copy_from_slice(f);
            *now += 100;
            burst.push((Timestamp::from_nanos(*now), FrameBuf::new(b, 128, f.len()).unwrap()));
        }
        w.process_burst(&mut burst, &mut Discard);
        spare = recycle_burst(burst);
        i += n as u64;
    }
    start.elapsed()
}

/// Runs `frames` (in a loop) through worker `w` one at a time; returns the time for `iters`
/// packets.
fn drive(w: &mut Worker<'_>, frames: &[Vec<u8>], iters: u64, now: &mut u64) -> Duration {
    w.auto_expire = false;
    let mut buf = vec![0u8; 128 + 2048];
    let start = Instant::now();
    for i in 0..iters {
        let f = &frames[i as usize % frames.len()];
        buf[128..128 + f.len()].copy_from_slice(f);
        let mut fb = FrameBuf::new(&mut buf, 128, f.len()).unwrap();
        *now += 100;
        let o = w.process(Timestamp::from_nanos(*now), &mut fb, &mut |_: &[u8]| {});
        black_box((o, fb.frame().len()));
    }
    start.elapsed()
}

/// Established flows, through workers that own their connections (a partition of the table
/// each, as `replay` runs them): `established/*` and `established_2workers/*` through the burst
/// path (one packet an iteration; two, one on each worker, each worker with the flows the
/// pipeline steers to it), `established_warmed/*` the burst path warming every burst whatever
/// the table's size, `established_single/*` one frame at a time; `established_shared/*` the
/// burst path on a worker of the shared (locked) table.
fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    for mode in [ForwardMethod::DirectRoute, ForwardMethod::Masq] {
        let name = if mode == ForwardMethod::Masq { "nat" } else { "dr" };
        for flows in [1_000u32, 100_000, 1_000_000] {
            let mut now = 1_000_000_000u64;
            let syns: Vec<Vec<u8>> =
                (0..flows).map(|i| frame(0xcb00_7100 + i, 10_000 + (i % 50_000) as u16, true)).collect();
            let acks: Vec<Vec<u8>> =
                (0..flows).map(|i| frame(0xcb00_7100 + i, 10_000 + (i % 50_000) as u16, false)).collect();
            let pipe = pipeline(mode, None);
            let mut w = Worker::owning(&pipe);
            drive(&mut w, &syns, u64::from(flows), &mut now);
            assert_eq!(pipe.table.len(), flows as usize, "every flow in the table");
            // Every ACK is forwarded (checked once before timing).
            {
                let mut buf = acks[0].clone();
                let mut fb = FrameBuf::whole(&mut buf);
                assert_eq!(w.process(Timestamp::from_nanos(now), &mut fb, &mut |_: &[u8]| {}), Outcome::Forwarded);
            }
            g.bench_function(BenchmarkId::new(format!("established/{name}"), flows), |b| {
                b.iter_custom(|iters| drive_burst(&mut w, &acks, iters, &mut now, WARM_FROM))
            });
            g.bench_function(BenchmarkId::new(format!("established_warmed/{name}"), flows), |b| {
                b.iter_custom(|iters| drive_burst(&mut w, &acks, iters, &mut now, 0))
            });
            g.bench_function(BenchmarkId::new(format!("established_single/{name}"), flows), |b| {
                b.iter_custom(|iters| drive(&mut w, &acks, iters, &mut now))
            });
            drop(w);
            {
                let shared = pipeline(mode, None);
                let mut w = Worker::new(&shared);
                drive(&mut w, &syns, u64::from(flows), &mut now);
                assert_eq!(shared.table.len(), flows as usize, "every flow in the table");
                g.bench_function(BenchmarkId::new(format!("established_shared/{name}"), flows), |b| {
                    b.iter_custom(|iters| drive_burst(&mut w, &acks, iters, &mut now, WARM_FROM))
                });
            }
            // Two workers, each owning the connections the pipeline steers to it.
            g.throughput(Throughput::Elements(2));
            let split = |v: &[Vec<u8>]| -> Vec<Vec<Vec<u8>>> {
                (0..2).map(|h| v.iter().filter(|f| pipe.steer(f, 2) == h).cloned().collect()).collect()
            };
            let (syn_halves, halves) = (split(&syns), split(&acks));
            assert!(halves.iter().all(|h| h.len() as u32 > flows / 3), "steering spreads the flows");
            // Each worker on cache lines of its own (two workers side by side in a vector would
            // write to a line they share: false sharing, not the pipeline's cost).
            let mut ws: Vec<Apart<Worker<'_>>> = syn_halves
                .iter()
                .map(|h| {
                    let mut w = Worker::owning(&pipe);
                    drive(&mut w, h, h.len() as u64, &mut now);
                    Apart(w)
                })
                .collect();
            assert_eq!(pipe.table.len(), flows as usize, "every flow in one of the two partitions");
            g.bench_function(BenchmarkId::new(format!("established_2workers/{name}"), flows), |b| {
                b.iter_custom(|iters| {
                    let base = now;
                    let t = std::thread::scope(|s| {
                        let hs: Vec<_> = ws
                            .iter_mut()
                            .zip(&halves)
                            .map(|(w, half)| {
                                s.spawn(move || {
                                    let mut n = base;
                                    drive_burst(&mut w.0, half, iters, &mut n, WARM_FROM)
                                })
                            })
                            .collect();
                        hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
                    });
                    now += iters * 100;
                    t
                })
            });
            g.throughput(Throughput::Elements(1));
        }
    }
    g.finish();
}

fn new_flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    for mode in [ForwardMethod::DirectRoute, ForwardMethod::Masq] {
        let name = if mode == ForwardMethod::Masq { "nat" } else { "dr" };
        // Each SYN is a new connection, 10 us of capture time apart; SYN_RECV lasts 1 s: about
        // 100,000 connections in the table in steady state, expired as they go.
        let pipe = pipeline(mode, Some(Duration::from_secs(1)));
        let syns: Vec<Vec<u8>> =
            (0..1u32 << 20).map(|i| frame(0xc000_0000 + i * 7919, 1024 + (i % 60_000) as u16, true)).collect();
        let mut now = 1_000_000_000u64;
        let mut k = 0u64;
        let mut w = Worker::owning(&pipe);
        w.auto_expire = false;
        g.bench_function(BenchmarkId::new(format!("new_flows/{name}"), "steady"), |b| {
            b.iter_custom(|iters| {
                let mut buf = vec![0u8; 128 + 2048];
                let start = Instant::now();
                for _ in 0..iters {
                    let f = &syns[(k % syns.len() as u64) as usize];
                    k += 1;
                    buf[128..128 + f.len()].copy_from_slice(f);
                    let mut fb = FrameBuf::new(&mut buf, 128, f.len()).unwrap();
                    now += 10_000;
                    if k.is_multiple_of(1024) {
                        w.expire(Timestamp::from_nanos(now));
                    }
                    black_box(w.process(Timestamp::from_nanos(now), &mut fb, &mut |_: &[u8]| {}));
                }
                start.elapsed()
            })
        });
        assert!(pipe.table.len() < 200_000, "not a steady state: {}", pipe.table.len());
    }
    g.finish();
}

criterion_group!(benches, established, new_flows);
criterion_main!(benches);
