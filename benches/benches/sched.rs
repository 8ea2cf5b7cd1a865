//! `sched`: ns per pick for every scheduler at N = 10, 100, 1000 (all destinations eligible),
//! and `maglev_build`: table builds beside the `maglev-hash` crate.
//!
//! cargo bench -p lb-benches --bench sched

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lb_sched::{registry, DestConfig, Destination, Flow, Protocol, SchedConfig, Service};

fn flows(n: usize) -> Vec<Flow> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Flow::v4(Protocol::Tcp, Ipv4Addr::from((x >> 32) as u32), x as u16, Ipv4Addr::new(198, 51, 100, 1), 80)
        })
        .collect()
}

fn service(name: &str, n: u32) -> Service {
    let s = Service::new(name, SchedConfig::default()).unwrap();
    for i in 0..n {
        // Weights 1..=4 so weighted schedulers do real work; counters spread so lc/wlc compare.
        let d = s.add(DestConfig::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 80).weight(1 + i % 4)).unwrap();
        for _ in 0..(i * 7) % 13 {
            d.bind_conn(false);
        }
    }
    s
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

/// Checks a `maglev-hash` table through its public API (the table itself is private): every
/// key maps to a node, and over 1M keys every node's share is within 20 % of the mean.
fn check_peer(t: &maglev_hash::MaglevTable<u32>, n: usize) {
    let mut counts = vec![0usize; n];
    for k in 0..1_000_000u64 {
        counts[*t.get(&k).unwrap() as usize] += 1;
    }
    let mean = 1_000_000.0 / n as f64;
    assert!(counts.iter().all(|&c| (c as f64 - mean).abs() / mean < 0.2), "maglev-hash table unbalanced");
    assert_eq!(t.capacity(), 65537);
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    for n in [100u32, 1000] {
        let ds = dests(n);
        check_ours(&lb_sched::maglev::populate(65537, &ds).unwrap(), n as usize);
        g.bench_with_input(BenchmarkId::new("lbkit-maglev/65537", n), &n, |b, _| {
            b.iter(|| lb_sched::maglev::populate(65537, black_box(&ds)).unwrap())
        });
        let nodes: Vec<u32> = (0..n).collect();
        check_peer(&maglev_hash::MaglevTable::with_capacity(nodes.clone(), 65537), n as usize);
        g.bench_with_input(BenchmarkId::new("maglev-hash/65537", n), &n, |b, _| {
            b.iter(|| maglev_hash::MaglevTable::with_capacity(black_box(nodes.clone()), 65537))
        });
        check_ours(&lb_sched::mh::populate(4093, 6, &ds).unwrap(), n as usize);
        g.bench_with_input(BenchmarkId::new("lbkit-mh/4093", n), &n, |b, _| {
            b.iter(|| lb_sched::mh::populate(4093, 6, black_box(&ds)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, pick, build);
criterion_main!(benches);
