//! `sched`: ns per pick for every scheduler at N = 10, 100, 1000 (all destinations eligible),
//! and `maglev_build`: table builds beside the `maglev-hash` crate.
//!
//! cargo bench -p lb-benches --bench sched
//!
//! `LBKIT_ICOUNT=maglev_build` counts instructions instead (see `icount`).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lb_sched::{harness, registry, DestConfig, Destination, Flow, SchedConfig, Service};

/// The flows and services lb-sched's criterion helpers use, so a user's bench with
/// `harness::bench_pick` measures what this group measures.
fn flows(n: usize) -> Vec<Flow> {
    harness::bench_flows(n)
}

fn service(name: &str, n: u32) -> Service {
    let factory = registry::Registry::builtin().get(name).expect("a built-in scheduler");
    harness::bench_service(name, &factory, n)
}

fn pick(c: &mut Criterion) {
    let fl = flows(4096);
    let mut g = c.benchmark_group("sched");
    g.throughput(Throughput::Elements(1));
    for n in [10u32, 100, 1000] {
        for name in registry::names() {
            let svc = service(name, n);
            assert!(svc.pick(&fl[0]).is_some(), "{name} must pick with all destinations eligible");
            // The data-plane path: a per-thread reader.
            let mut reader = svc.reader();
            let mut i = 0usize;
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    i = (i + 1) & 4095;
                    reader.pick(black_box(&fl[i])).map(|d| d.id())
                })
            });
            if n == 10 {
                // The shared path: a full arc-swap load per pick.
                g.bench_with_input(BenchmarkId::new(format!("{name}-service-pick"), n), &n, |b, _| {
                    b.iter(|| {
                        i = (i + 1) & 4095;
                        svc.pick_with(black_box(&fl[i]), |d| d.id())
                    })
                });
            }
        }
        // Peers, same group, same flows: weighted-rs's LVS-style wrr and nginx smooth wrr (weights
        // 1..=4 as above), and the consistent-hash lookups of maglev-hash, maglev and
        // pingora-ketama (tables of 65537 slots for the Maglevs, like ours).
        let mut lvs = weighted_rs::RoundrobinWeight::new();
        let mut smooth = weighted_rs::SmoothWeight::new();
        for i in 0..n {
            weighted_rs::Weight::add(&mut lvs, i, 1 + (i % 4) as isize);
            weighted_rs::Weight::add(&mut smooth, i, 1 + (i % 4) as isize);
        }
        g.bench_with_input(BenchmarkId::new("peer-weighted-rs-lvs-wrr", n), &n, |b, _| {
            b.iter(|| weighted_rs::Weight::next(&mut lvs))
        });
        g.bench_with_input(BenchmarkId::new("peer-weighted-rs-smooth-wrr", n), &n, |b, _| {
            b.iter(|| weighted_rs::Weight::next(&mut smooth))
        });
        let keys: Vec<u64> = fl.iter().map(lb_sched::internals::maglev::flow_hash).collect();
        let mh = maglev_hash::MaglevTable::with_capacity((0..n).collect::<Vec<u32>>(), 65537);
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("peer-maglev-hash-get", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                mh.get(black_box(&keys[i])).copied()
            })
        });
        let fm = maglev::Maglev::with_capacity((0..n).collect::<Vec<u32>>(), 65537);
        g.bench_with_input(BenchmarkId::new("peer-maglev-get", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                maglev::ConsistentHasher::get(&fm, black_box(&keys[i])).copied()
            })
        });
        let buckets: Vec<pingora_ketama::Bucket> = (0..n)
            .map(|k| {
                pingora_ketama::Bucket::new(
                    std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + k)), 80),
                    1,
                )
            })
            .collect();
        let ring = pingora_ketama::Continuum::new(&buckets);
        g.bench_with_input(BenchmarkId::new("peer-pingora-ketama-get", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                ring.node_idx(black_box(&keys[i].to_le_bytes()))
            })
        });
    }
    g.finish();
}

/// N destinations of weight 1.
fn dests(n: u32) -> Vec<Arc<Destination>> {
    let s = Service::new("rr", SchedConfig::default()).unwrap();
    for i in 0..n {
        s.add(DestConfig::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 80)).unwrap();
    }
    s.destinations()
}

/// Checks our table: full, every destination owning ⌊M/N⌋ or ⌈M/N⌉ slots.
fn check_ours(table: &[u32], n: usize) {
    let m = table.len();
    let mut counts = vec![0usize; n];
    for &i in table {
        counts[i as usize] += 1;
    }
    assert!(counts.iter().all(|&c| c == m / n || c == m.div_ceil(n)), "not a balanced Maglev table");
}

/// Checks a `maglev-hash` table through its public API (the table itself is private): the size
/// asked for, every key maps to a node, and over 1M keys every node's share is near the mean
/// (within 20 % when M/N is large; the table's own ⌈M/N⌉ granularity when it is not).
fn check_peer(t: &maglev_hash::MaglevTable<u32>, n: usize, m: usize) {
    assert_eq!(t.capacity(), m);
    let mut counts = vec![0usize; n];
    for k in 0..1_000_000u64 {
        counts[*t.get(&k).unwrap() as usize] += 1;
    }
    let mean = 1_000_000.0 / n as f64;
    let slack = if m / n >= 50 { 0.2 } else { 0.6 };
    assert!(counts.iter().all(|&c| (c as f64 - mean).abs() / mean < slack), "maglev-hash table unbalanced");
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    for m in [4093u32, 65537] {
        for n in [100u32, 1000] {
            let ds = dests(n);
            let id = format!("M={m}/N={n}");
            let ours = lb_sched::internals::maglev::populate(m, &ds).unwrap();
            assert_eq!(ours.len(), m as usize);
            check_ours(&ours, n as usize);
            g.bench_function(BenchmarkId::new("lbkit-maglev", &id), |b| {
                b.iter(|| lb_sched::internals::maglev::populate(m, black_box(&ds)).unwrap())
            });
            if m == 4093 {
                // IPVS's mh (its table sizes come from a fixed prime list; 4093 is the default).
                check_ours(&lb_sched::internals::mh::populate(m, 6, &ds).unwrap(), n as usize);
                g.bench_function(BenchmarkId::new("lbkit-mh", &id), |b| {
                    b.iter(|| lb_sched::internals::mh::populate(m, 6, black_box(&ds)).unwrap())
                });
            }
            let nodes: Vec<u32> = (0..n).collect();
            check_peer(&maglev_hash::MaglevTable::with_capacity(nodes.clone(), m as usize), n as usize, m as usize);
            g.bench_function(BenchmarkId::new("peer-maglev-hash", &id), |b| {
                b.iter(|| maglev_hash::MaglevTable::with_capacity(black_box(nodes.clone()), m as usize))
            });
            if n <= 100 || m <= 4093 {
                // maglev (flier) fills an N x M permutation matrix up front: at N = 1000, M = 65537
                // that is ~0.5 GB and ~0.4 s a build (reference/peers.md), left out here.
                g.bench_function(BenchmarkId::new("peer-maglev", &id), |b| {
                    b.iter(|| maglev::Maglev::with_capacity(black_box(nodes.clone()), m as usize))
                });
            }
        }
    }
    for n in [100u32, 1000] {
        let buckets: Vec<pingora_ketama::Bucket> = (0..n)
            .map(|k| {
                pingora_ketama::Bucket::new(
                    std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + k)), 80),
                    1,
                )
            })
            .collect();
        g.bench_function(BenchmarkId::new("peer-pingora-ketama", format!("ring/N={n}")), |b| {
            b.iter(|| pingora_ketama::Continuum::new(black_box(&buckets)))
        });
    }
    g.finish();
}

criterion_group!(benches, pick, build);

/// Instruction counting (noise-free, for a shared machine): with `LBKIT_ICOUNT=maglev_build` the
/// binary builds a `maglev` table `LBKIT_ICOUNT_N` times (default 10), of `LBKIT_ICOUNT_M`
/// slots (default 65537) for `LBKIT_ICOUNT_DESTS` destinations of weight 1 (default 1000), the
/// inputs of the `maglev_build` group, and exits. Under `valgrind --tool=callgrind`, the
/// difference between N builds and 0 divided by N is the instructions per build.
fn icount(case: &str) {
    let env = |k: &str, d: u32| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (n, m) = (env("LBKIT_ICOUNT_N", 10), env("LBKIT_ICOUNT_M", 65537));
    let ds = dests(env("LBKIT_ICOUNT_DESTS", 1000));
    match case {
        "maglev_build" => {
            for _ in 0..n {
                black_box(lb_sched::internals::maglev::populate(m, black_box(&ds)).unwrap());
            }
        }
        other => panic!("unknown LBKIT_ICOUNT case {other}"),
    }
}

fn main() {
    if let Ok(case) = std::env::var("LBKIT_ICOUNT") {
        icount(&case);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
