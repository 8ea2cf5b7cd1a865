//! Criterion helpers (feature `harness-criterion`).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion, Throughput};

use crate::registry::Factory;
use crate::{Change, DestConfig, Flow, Protocol, SchedConfig, Service};

/// The N the helpers bench at, as lbkit's `sched` group does.
const NS: [u32; 3] = [10, 100, 1000];

/// `n` fixed IPv4 TCP flows (lbkit's `sched` bench picks 4096 of them in turn).
pub fn bench_flows(n: usize) -> Vec<Flow> {
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

/// A service of the scheduler `factory` builds with `n` destinations, weights 1..=4 and spread
/// connection counters, as lbkit's `sched` bench benches every scheduler.
pub fn bench_service(name: &str, factory: &Factory, n: u32) -> Service {
    let s = Service::from_factory(name, factory, SchedConfig::default())
        .unwrap_or_else(|e| panic!("{name}: cannot build for no destination: {e}"));
    for i in 0..n {
        // Weights 1..=4 so weighted schedulers do real work; counters spread so lc/wlc compare.
        let d = s
            .add(DestConfig::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 80).weight(1 + i % 4))
            .unwrap_or_else(|e| panic!("{name}: cannot add a destination: {e}"));
        for _ in 0..(i * 7) % 13 {
            d.bind_conn(false);
        }
    }
    s
}

/// Benches the scheduler `factory` (named `name`) picking, in the criterion group `sched`
/// with ids `name/N` for N = 10, 100, 1000, exactly as lbkit's own `sched` bench measures the
/// built-ins (same flows, same destinations: weights 1..=4, spread connection counts; one
/// pick per iteration through a [`crate::ServiceReader`]), so the figures compare.
///
/// ```no_run
/// use criterion::{criterion_group, criterion_main, Criterion};
/// use lb_sched::registry::Registry;
///
/// fn picks(c: &mut Criterion) {
///     let factory = Registry::builtin().get("maglev").unwrap(); // or your own, registered
///     lb_sched::harness::bench_pick(c, "maglev", &factory);
///     lb_sched::harness::bench_rebuild(c, "maglev", &factory);
/// }
/// criterion_group!(benches, picks);
/// criterion_main!(benches);
/// ```
///
/// # Panics
///
/// If the scheduler cannot be built or picks nothing with every destination eligible.
pub fn bench_pick(c: &mut Criterion, name: &str, factory: &Factory) {
    let fl = bench_flows(4096);
    let mut g = c.benchmark_group("sched");
    g.throughput(Throughput::Elements(1));
    for n in NS {
        let svc = bench_service(name, factory, n);
        assert!(svc.pick(&fl[0]).is_some(), "{name} must pick with all destinations eligible");
        let mut reader = svc.reader();
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                reader.pick(black_box(&fl[i])).map(|d| d.id())
            })
        });
    }
    g.finish();
}

/// Benches the scheduler `factory` (named `name`) being rebuilt, in the criterion group
/// `sched_rebuild`: ids `name/N` time [`crate::Scheduler::rebuild`] after a weight edit of one
/// destination (what every `add`, `edit` or `remove` on a service costs beside copying the
/// list), and ids `name-build/N` time the constructor itself, for N = 10, 100, 1000
/// destinations set up as in [`bench_pick`].
///
/// # Panics
///
/// If the scheduler cannot be built or rebuilt.
pub fn bench_rebuild(c: &mut Criterion, name: &str, factory: &Factory) {
    let cfg = SchedConfig::default();
    let mut g = c.benchmark_group("sched_rebuild");
    g.throughput(Throughput::Elements(1));
    for n in NS {
        let svc = bench_service(name, factory, n);
        let dests = svc.destinations();
        let sched = factory(&cfg, &dests).unwrap_or_else(|e| panic!("{name}: cannot build: {e}"));
        let edited = Change::Edited { index: 0 };
        sched.rebuild(&dests, edited).unwrap_or_else(|e| panic!("{name}: cannot rebuild: {e}"));
        g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
            b.iter(|| sched.rebuild(black_box(&dests), edited).map(|s| black_box(s).name()).ok())
        });
        g.bench_with_input(BenchmarkId::new(format!("{name}-build"), n), &n, |b, _| {
            b.iter(|| factory(&cfg, black_box(&dests)).map(|s| black_box(s).name()).ok())
        });
    }
    g.finish();
}
