//! `conntrack`: lookup + state update of an existing connection, batched lookups, and insert
//! with expiry in steady state, at 10K and 1M connections, IPv4 and IPv6, on 1 and 2 threads,
//! beside a `dashmap` keyed by the same 5-tuple.
//!
//! cargo bench -p lb-benches --bench conntrack
//!
//! Instruction counts: see [`icount`] (`LBKIT_ICOUNT=<case>`).

use std::hash::{BuildHasher, Hash, Hasher};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use lb_conntrack::{Config, ConnTable, InVerdict, Partition, ServiceParams, ShardLock, State};
use lb_sched::{DestConfig, Flow, ForwardMethod, Protocol, SchedConfig, Service, TcpFlags, Timestamp};

const P: ServiceParams = ServiceParams { persistence: None, one_packet: false, catch_all: false };

fn service() -> Service {
    let s = Service::new("wlc", SchedConfig::default()).unwrap();
    for i in 0..8u32 {
        s.add(DestConfig::new(Ipv4Addr::from(0x0a00_0000 + i).into(), 80).fwd(ForwardMethod::DirectRoute)).unwrap();
    }
    s
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn flows(n: usize, v6: bool, seed: u64) -> Vec<Flow> {
    let mut r = Rng(seed);
    (0..n)
        .map(|_| {
            let (a, b) = (r.next(), r.next());
            if v6 {
                Flow::v6(
                    Protocol::Tcp,
                    Ipv6Addr::from((u128::from(a) << 64) | u128::from(b)),
                    (b >> 48) as u16,
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100),
                    443,
                )
            } else {
                Flow::v4(Protocol::Tcp, Ipv4Addr::from(a as u32), (a >> 32) as u16, Ipv4Addr::new(198, 51, 100, 1), 80)
            }
        })
        .collect()
}

fn filled(n: usize, v6: bool, svc: &Service) -> (ConnTable, Vec<Flow>) {
    let tb = ConnTable::new(Config { max_connections: 2 * n + 1024, ..Config::default() });
    let fl = flows(n, v6, 0x1234_5678 + n as u64);
    establish(&tb, &fl, svc);
    (tb, fl)
}

/// Opens (SYN, ACK) a connection for each of `fl` in `tb`.
fn establish<L: ShardLock>(tb: &ConnTable<L>, fl: &[Flow], svc: &Service) {
    let t = Timestamp::from_secs(1);
    for f in fl {
        tb.input(t, f, TcpFlags::SYN, svc, &P);
        tb.input(t, f, TcpFlags::ACK, svc, &P);
    }
    assert_eq!(tb.stats().states[State::Established as usize] as usize, fl.len(), "random keys collided");
}

/// Runs `iters` hits on each of two threads at once, thread `w` owning partition `parts[w]` (the
/// connections of `by_thread[w]`) and walking `by_thread[w]`; returns the wall time.
fn two_partitions(
    parts: &mut [Partition],
    svc: &Service,
    t: Timestamp,
    by_thread: &[Vec<Flow>],
    iters: u64,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for (w, (part, mine)) in parts.iter_mut().zip(by_thread).enumerate() {
            s.spawn(move || {
                let mut i = w * 7919;
                for _ in 0..iters {
                    i = (i + 1) & 0xffff;
                    black_box(part.input(t, &mine[i], TcpFlags::ACK, svc, &P));
                }
            });
        }
    });
    start.elapsed()
}

/// The peer: a dashmap with the same key and the fields a connection needs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    proto: u8,
    caddr: u128,
    cport: u16,
    vaddr: u128,
    vport: u16,
}
#[derive(Clone, Copy)]
struct Val {
    last_seen: u64,
    dest: u32,
    state: u8,
}

#[derive(Clone, Default)]
struct Fold;
struct FoldHasher(u64);
impl BuildHasher for Fold {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0x9E37_79B9_7F4A_7C15)
    }
}
impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, v: u64) {
        let r = u128::from(self.0 ^ v) * 0xD6E8_FEB8_6659_FD93u128;
        self.0 = (r as u64) ^ ((r >> 64) as u64);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
}

fn key(f: &Flow) -> Key {
    let a = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v) => u128::from(u32::from(v)),
        std::net::IpAddr::V6(v) => u128::from(v),
    };
    Key { proto: f.proto.number(), caddr: a(f.src), cport: f.src_port, vaddr: a(f.dst), vport: f.dst_port }
}

fn dash(fl: &[Flow]) -> DashMap<Key, Val, Fold> {
    let m = DashMap::with_capacity_and_hasher(fl.len(), Fold);
    for (i, f) in fl.iter().enumerate() {
        m.insert(key(f), Val { last_seen: 1, dest: i as u32 % 8, state: 1 });
    }
    m
}

/// Runs `iters` hits on each of two threads at once, thread `w` walking `by_thread[w]` from
/// its own start by `step`; returns the wall time.
fn two_threads(
    tb: &ConnTable,
    svc: &Service,
    t: Timestamp,
    by_thread: &[Vec<Flow>],
    step: usize,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for (w, mine) in by_thread.iter().enumerate() {
            s.spawn(move || {
                let mut i = w * 7919;
                for _ in 0..iters {
                    i = (i + step) & 0xffff;
                    black_box(tb.input(t, &mine[i], TcpFlags::ACK, svc, &P));
                }
            });
        }
    });
    start.elapsed()
}

fn hit_update(c: &mut Criterion) {
    let svc = service();
    let mut g = c.benchmark_group("conntrack");
    for (n, label) in [(10_000usize, "10k"), (1_000_000, "1m")] {
        for v6 in [false, true] {
            let fam = if v6 { "v6" } else { "v4" };
            let (tb, fl) = filled(n, v6, &svc);
            let mut order = Rng(99);
            let idx: Vec<usize> = (0..1 << 16).map(|_| order.next() as usize % n).collect();
            let t = Timestamp::from_secs(2);
            assert!(
                matches!(tb.input(t, &fl[0], TcpFlags::ACK, &svc, &P), InVerdict::Forward(c) if c.state == State::Established)
            );
            g.throughput(Throughput::Elements(1));
            // The flows in the order they are looked up, read sequentially (as the peers read
            // their keys): the random access is the table's, not the benchmark's.
            let ordered: Vec<Flow> = idx.iter().map(|&k| fl[k]).collect();
            let mut i = 0;
            g.bench_function(BenchmarkId::new(format!("hit_update/{fam}"), label), |b| {
                b.iter(|| {
                    i = (i + 1) & 0xffff;
                    tb.input(t, black_box(&ordered[i]), TcpFlags::ACK, &svc, &P)
                })
            });
            // Batched: 32 packets a call.
            let batch: Vec<(Flow, u8)> = idx[..32 * 64].iter().map(|&k| (fl[k], TcpFlags::ACK)).collect();
            let mut out = vec![InVerdict::Refused; 32];
            g.throughput(Throughput::Elements(32));
            let mut j = 0;
            g.bench_function(BenchmarkId::new(format!("hit_update_batch32/{fam}"), label), |b| {
                b.iter(|| {
                    j = (j + 32) % batch.len();
                    tb.input_batch(t, black_box(&batch[j..j + 32]), &svc, &P, &mut out);
                })
            });
            // Two threads, each on its own half of the connections.
            let by_thread: Vec<Vec<Flow>> = (0..2).map(|w| idx.iter().map(|&k| fl[(k & !1) | w]).collect()).collect();
            g.throughput(Throughput::Elements(2));
            g.bench_function(BenchmarkId::new(format!("hit_update_2threads/{fam}"), label), |b| {
                b.iter_custom(|iters| two_threads(&tb, &svc, t, &by_thread, 2, iters))
            });
            // Two threads on shard-disjoint flows: thread w takes the flows whose shard is in its
            // half (how a data plane steering flows to workers by `shard_of` splits them), so
            // each shard lock stays in one core's cache.
            let half = tb.shard_count() / 2;
            let mine_of = |w: usize| -> Vec<Flow> {
                let own: Vec<Flow> =
                    fl.iter().filter(|f| (tb.shard_of(f).unwrap() >= half) == (w == 1)).copied().collect();
                let mut r = Rng(7 + w as u64);
                (0..1 << 16).map(|_| own[r.next() as usize % own.len()]).collect()
            };
            let affine: Vec<Vec<Flow>> = (0..2).map(mine_of).collect();
            g.throughput(Throughput::Elements(2));
            g.bench_function(BenchmarkId::new(format!("hit_update_2threads_shard_affine/{fam}"), label), |b| {
                b.iter_custom(|iters| two_threads(&tb, &svc, t, &affine, 1, iters))
            });
            // Partitions (per-worker storage, no lock): one with every connection, then two, each
            // owned by one thread, with half of them (how `Worker::owning` splits a table).
            let parent = ConnTable::new(Config { max_connections: 2 * n + 1024, ..Config::default() });
            let part = parent.partition();
            establish(&part, &fl, &svc);
            g.throughput(Throughput::Elements(1));
            let mut i = 0;
            g.bench_function(BenchmarkId::new(format!("partition_hit_update/{fam}"), label), |b| {
                b.iter(|| {
                    i = (i + 1) & 0xffff;
                    part.input(t, black_box(&ordered[i]), TcpFlags::ACK, &svc, &P)
                })
            });
            drop(part);
            let halves: Vec<Vec<Flow>> = (0..2).map(|w| fl.iter().skip(w).step_by(2).copied().collect()).collect();
            let mut parts: Vec<Partition> = halves
                .iter()
                .map(|h| {
                    let p = parent.partition();
                    establish(&p, h, &svc);
                    p
                })
                .collect();
            let part_by_thread: Vec<Vec<Flow>> = halves
                .iter()
                .enumerate()
                .map(|(w, h)| {
                    let mut r = Rng(11 + w as u64);
                    (0..1 << 16).map(|_| h[r.next() as usize % h.len()]).collect()
                })
                .collect();
            g.throughput(Throughput::Elements(2));
            g.bench_function(BenchmarkId::new(format!("partition_hit_update_2threads/{fam}"), label), |b| {
                b.iter_custom(|iters| two_partitions(&mut parts, &svc, t, &part_by_thread, iters))
            });
            drop(parts);
            // The peer, same work: find the entry, update state and last_seen.
            let dm = dash(&fl);
            let keys: Vec<Key> = idx.iter().map(|&k| key(&fl[k])).collect();
            let keys_by_thread: Vec<Key> = idx.iter().enumerate().map(|(j, &k)| key(&fl[(k & !1) | (j & 1)])).collect();
            g.throughput(Throughput::Elements(1));
            let mut i = 0;
            g.bench_function(BenchmarkId::new(format!("dashmap_hit_update/{fam}"), label), |b| {
                b.iter(|| {
                    i = (i + 1) & 0xffff;
                    let mut e = dm.get_mut(black_box(&keys[i])).unwrap();
                    e.last_seen = 2;
                    e.state = 1;
                    e.dest
                })
            });
            // papaya: lock-free reads; an update replaces the value (copy on write).
            let pm: papaya::HashMap<Key, Val, Fold> = papaya::HashMap::with_capacity_and_hasher(fl.len(), Fold);
            {
                let g = pm.pin();
                for (k, f) in fl.iter().enumerate() {
                    g.insert(key(f), Val { last_seen: 1, dest: k as u32 % 8, state: 1 });
                }
            }
            g.bench_function(BenchmarkId::new(format!("papaya_hit_update/{fam}"), label), |b| {
                b.iter(|| {
                    i = (i + 1) & 0xffff;
                    let g = pm.pin();
                    g.update(*black_box(&keys[i]), |v| Val { last_seen: 2, state: 1, ..*v }).map(|v| v.dest)
                })
            });
            g.throughput(Throughput::Elements(2));
            g.bench_function(BenchmarkId::new(format!("dashmap_hit_update_2threads/{fam}"), label), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for w in 0..2usize {
                            let (dm, keys) = (&dm, &keys_by_thread);
                            s.spawn(move || {
                                let mut i = w * 7919;
                                for _ in 0..iters {
                                    i = (i + 2) & 0xffff;
                                    let mut e = dm.get_mut(&keys[i | w]).unwrap();
                                    e.last_seen = 2;
                                    black_box(e.dest);
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            });
        }
    }
    g.finish();
}

/// Insert in steady state: each new connection is a SYN (SYN_RECV); the SYN_RECV timeout is
/// set so that the table holds about `n` of them, and an expiry pass runs every 256 inserts, so
/// the figure is one insert plus one expiry.
fn insert_expire(c: &mut Criterion) {
    let svc = service();
    let mut g = c.benchmark_group("conntrack");
    g.throughput(Throughput::Elements(1));
    for (n, label) in [(10_000usize, "10k"), (1_000_000, "1m")] {
        for v6 in [false, true] {
            let fam = if v6 { "v6" } else { "v4" };
            let step = 1_000u64; // ns between inserts
            let mut cfg = Config { max_connections: 2 * n + 4096, ..Config::default() };
            cfg.timeouts.set(State::SynRecv, Duration::from_nanos(step * n as u64));
            let tb = ConnTable::new(cfg);
            let fl = flows(1 << 22, v6, 0xfeed + n as u64);
            let mut now = 1_000_000_000u64;
            let mut i = 0usize;
            // Warm up to the steady state.
            for _ in 0..n + n / 4 {
                tb.input(Timestamp::from_nanos(now), &fl[i & ((1 << 22) - 1)], TcpFlags::SYN, &svc, &P);
                i += 1;
                now += step;
                if i.is_multiple_of(256) {
                    tb.expire(Timestamp::from_nanos(now));
                }
            }
            g.bench_function(BenchmarkId::new(format!("insert_expire/{fam}"), label), |b| {
                b.iter(|| {
                    let v = tb.input(Timestamp::from_nanos(now), &fl[i & ((1 << 22) - 1)], TcpFlags::SYN, &svc, &P);
                    i += 1;
                    now += step;
                    if i.is_multiple_of(256) {
                        tb.expire(Timestamp::from_nanos(now));
                    }
                    v
                })
            });
            assert!(tb.len() < n + n / 2 + 1024, "not a steady state: {} entries", tb.len());
            // The peer: insert a new key, remove the oldest.
            let dm: DashMap<Key, Val, Fold> = DashMap::with_capacity_and_hasher(n, Fold);
            let keys: Vec<Key> = fl.iter().map(key).collect();
            let mut head = 0usize;
            for k in &keys[..n] {
                dm.insert(*k, Val { last_seen: 0, dest: 0, state: 3 });
            }
            let mut tail = n;
            g.bench_function(BenchmarkId::new(format!("dashmap_insert_remove/{fam}"), label), |b| {
                b.iter(|| {
                    dm.insert(keys[tail & ((1 << 22) - 1)], Val { last_seen: 0, dest: 0, state: 3 });
                    dm.remove(&keys[head & ((1 << 22) - 1)]);
                    tail += 1;
                    head += 1;
                })
            });
        }
    }
    g.finish();
}

/// Instruction counting (noise-free, for a shared machine): with `LBKIT_ICOUNT=CASE` the binary
/// builds the case's table, runs `LBKIT_ICOUNT_N` (default 100000) iterations of it, the same
/// calls the timed benches make, and exits. Under `valgrind --tool=callgrind` the difference
/// between a case and its baseline (same name with `base` for `hit_update` / `insert_expire`:
/// the same setup and loop without the table call) divided by N is the instructions per call.
/// Cases: `{hit_update,hit_base}_{v4,v6}_{10k,1m}` (one ACK of an ESTABLISHED connection, in
/// the benches' pre-shuffled order), `{insert_expire,insert_base}_{v4,v6}_{10k,1m}` (one new
/// SYN in steady state, an expiry pass every 256), `mixed_{v4,v6}_10k` / `mixed_base_…` (5 %
/// SYNs of new connections, 95 % ACKs of established ones, as the pipeline's flood).
fn icount(case: &str, n: usize) {
    let parts: Vec<&str> = case.rsplitn(3, '_').collect();
    let [label, fam, kind] = parts[..] else { panic!("unknown LBKIT_ICOUNT case {case}") };
    let v6 = match fam {
        "v4" => false,
        "v6" => true,
        _ => panic!("unknown family in {case}"),
    };
    let size = match label {
        "10k" => 10_000usize,
        "1m" => 1_000_000,
        _ => panic!("unknown size in {case}"),
    };
    let svc = service();
    match kind {
        "hit_update" | "hit_base" => {
            let (tb, fl) = filled(size, v6, &svc);
            let mut order = Rng(99);
            let ordered: Vec<Flow> = (0..1 << 16).map(|_| fl[order.next() as usize % size]).collect();
            let t = Timestamp::from_secs(2);
            let real = kind == "hit_update";
            let mut i = 0;
            for _ in 0..n {
                i = (i + 1) & 0xffff;
                let f = black_box(&ordered[i]);
                if real {
                    black_box(tb.input(t, f, TcpFlags::ACK, &svc, &P));
                }
            }
        }
        "insert_expire" | "insert_base" => {
            let step = 1_000u64;
            let mut cfg = Config { max_connections: 2 * size + 4096, ..Config::default() };
            cfg.timeouts.set(State::SynRecv, Duration::from_nanos(step * size as u64));
            let tb = ConnTable::new(cfg);
            let fl = flows(1 << 22, v6, 0xfeed + size as u64);
            let mut now = 1_000_000_000u64;
            let mut i = 0usize;
            let mut go = |real: bool, i: &mut usize| {
                let f = black_box(&fl[*i & ((1 << 22) - 1)]);
                if real {
                    black_box(tb.input(Timestamp::from_nanos(now), f, TcpFlags::SYN, &svc, &P));
                }
                *i += 1;
                now += step;
                if real && i.is_multiple_of(256) {
                    black_box(tb.expire(Timestamp::from_nanos(now)));
                }
            };
            for _ in 0..size + size / 4 {
                go(true, &mut i);
            }
            let real = kind == "insert_expire";
            for _ in 0..n {
                go(real, &mut i);
            }
        }
        "mixed" | "mixed_base" => {
            // 5 % SYNs of new connections, 95 % ACKs of established ones.
            let (tb, fl) = filled(size, v6, &svc);
            let fresh = flows(n / 20 + 1, v6, 0xabcd);
            let mut order = Rng(99);
            let ordered: Vec<Flow> = (0..1 << 16).map(|_| fl[order.next() as usize % size]).collect();
            let t = Timestamp::from_secs(2);
            let real = kind == "mixed";
            let (mut i, mut j) = (0, 0);
            for k in 0..n {
                let (f, flags) = if k % 20 == 0 {
                    j += 1;
                    (black_box(&fresh[j - 1]), TcpFlags::SYN)
                } else {
                    i = (i + 1) & 0xffff;
                    (black_box(&ordered[i]), TcpFlags::ACK)
                };
                if real {
                    black_box(tb.input(t, f, flags, &svc, &P));
                }
            }
        }
        _ => panic!("unknown LBKIT_ICOUNT case {case}"),
    }
}

criterion_group!(benches, hit_update, insert_expire);

fn main() {
    if let Ok(case) = std::env::var("LBKIT_ICOUNT") {
        let n = std::env::var("LBKIT_ICOUNT_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
        icount(&case, n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
