//! Known answers for the weighted schedulers beyond IPVS: `swrr` (nginx smooth weighted round
//! robin) and `random` (alias method). Expected values are nginx's documented sequence, tables
//! worked by hand from Vose's construction, and a small reimplementation of nginx's loop written
//! here from its description.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use lb_sched::{DestConfig, DestId, Destination, RandomSource, SchedConfig, Service, SplitMix64};

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const C: &str = "10.0.0.3";

fn letters(s: &Service, n: usize) -> String {
    let f = tcp_from("192.0.2.1", 1000);
    (0..n)
        .map(|_| match pick(s, &f).as_str() {
            A => 'a',
            B => 'b',
            C => 'c',
            "-" => '-',
            other => panic!("unexpected {other}"),
        })
        .collect()
}

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

/// Pick counts by address over `n` picks.
fn tally(s: &Service, n: usize) -> HashMap<IpAddr, usize> {
    let f = tcp_from("192.0.2.1", 1000);
    let mut c = HashMap::new();
    for _ in 0..n {
        *c.entry(s.pick(&f).unwrap().addr()).or_default() += 1;
    }
    c
}

/// A random source that replays scripted values.
#[derive(Debug)]
struct Scripted {
    values: Vec<u64>,
    next: AtomicUsize,
}

impl Scripted {
    fn new(values: &[u64]) -> Arc<Self> {
        Arc::new(Scripted { values: values.to_vec(), next: AtomicUsize::new(0) })
    }
}

impl RandomSource for Scripted {
    fn below(&self, n: u64) -> u64 {
        let v = self.values[self.next.fetch_add(1, Ordering::Relaxed)];
        assert!(v < n, "scripted {v} not below {n}");
        v
    }
}

// ---------------------------------------------------------------- swrr

#[test]
fn swrr_gives_nginxs_documented_sequence() {
    // ngx_http_upstream_round_robin.c: weights { 5, 1, 1 } give { a, a, b, a, c, a, a }.
    let s = service("swrr", SchedConfig::default(), &[(A, 80, 5), (B, 80, 1), (C, 80, 1)]);
    assert_eq!(letters(&s, 14), "aabacaaaabacaa");
    // Quiescing rebuilds: nginx's sequence over b and c from a fresh start.
    s.edit(DestConfig::new(ip(A), 80).weight(0)).unwrap();
    assert_eq!(letters(&s, 4), "bcbc");
    dest(&s, B).set_overloaded(true);
    assert_eq!(letters(&s, 3), "ccc");
    dest(&s, C).set_overloaded(true);
    assert_eq!(letters(&s, 2), "--");
}

/// nginx's loop, from its description: every peer adds its weight to its current weight; the
/// largest current weight wins (first on ties); the winner gives back the total.
fn nginx(weights: &[u32], picks: usize) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut cur = vec![0i64; weights.len()];
    (0..picks)
        .map(|_| {
            let mut best: Option<usize> = None;
            for (i, &w) in weights.iter().enumerate() {
                cur[i] += i64::from(w);
                if best.is_none_or(|b| cur[i] > cur[b]) {
                    best = Some(i);
                }
            }
            let b = best.unwrap();
            cur[b] -= total;
            b
        })
        .collect()
}

#[test]
fn swrr_equals_nginxs_loop_for_many_weight_sets() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for _ in 0..200 {
        let n = 1 + next(8) as usize;
        let scale = 1 + next(3) as u32;
        let weights: Vec<u32> = (0..n).map(|_| (1 + next(20) as u32) * scale).collect();
        let list: Vec<(String, u16, u32)> = (0..n).map(|i| (addr(i as u32 + 1).to_string(), 80, weights[i])).collect();
        let list: Vec<(&str, u16, u32)> = list.iter().map(|(a, p, w)| (a.as_str(), *p, *w)).collect();
        let s = service("swrr", SchedConfig::default(), &list);
        let total: u32 = weights.iter().sum();
        let want = nginx(&weights, 3 * total as usize);
        let f = tcp_from("192.0.2.1", 1);
        let got: Vec<usize> = (0..want.len())
            .map(|_| s.pick(&f).unwrap().addr())
            .map(|a| list.iter().position(|d| ip(d.0) == a).unwrap())
            .collect();
        assert_eq!(got, want, "weights {weights:?}");
    }
}

#[test]
fn swrr_concurrent_picks_share_exact_periods() {
    let s = Arc::new(service("swrr", SchedConfig::default(), &[(A, 80, 5), (B, 80, 1), (C, 80, 1)]));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || tally(&s, 7 * 2500))
        })
        .collect();
    let mut all: HashMap<IpAddr, usize> = HashMap::new();
    for t in threads {
        for (a, n) in t.join().unwrap() {
            *all.entry(a).or_default() += n;
        }
    }
    // 10,000 whole periods between them: every step taken once.
    assert_eq!((all[&ip(A)], all[&ip(B)], all[&ip(C)]), (50_000, 10_000, 10_000));
}

#[test]
fn swrr_caps_the_period() {
    let d: Vec<Arc<Destination>> = [3_000_000u32, 1_000_000, 1]
        .iter()
        .enumerate()
        .map(|(i, &w)| Arc::new(Destination::new(DestId(i as u32), &DestConfig::new(addr(i as u32), 80).weight(w))))
        .collect();
    let p = lb_sched::swrr::schedule(&d);
    // P = 4,000,001 > 2^20: weights scaled by 2^20 / P (floored, at least 1):
    // 786431, 262143 and 1.
    assert_eq!(p.len(), 786_431 + 262_143 + 1);
    let count = |i: u32| p.iter().filter(|&&x| x == i).count();
    assert_eq!((count(0), count(1), count(2)), (786_431, 262_143, 1));
}

// ---------------------------------------------------------------- random

#[test]
fn random_alias_table_and_draws_worked_by_hand() {
    // Weights a 1, b 3: n = 2, W = 4, sizes w * n = 2 and 6. Small: a; large: b. Column 0 keeps
    // a below 2 (out of 4), alias b; b's size drops to 6 - (4 - 2) = 4, a full column 1.
    let rng = Scripted::new(&[0, 1, 0, 2, 1, 3, 1, 0]);
    let s = service("random", SchedConfig { random: rng, ..SchedConfig::default() }, &[(A, 80, 1), (B, 80, 3)]);
    // (column 0, r 1) -> a; (0, 2) -> alias b; (1, 3) -> b; (1, 0) -> b.
    assert_eq!(letters(&s, 4), "abbb");
    let d = s.destinations();
    assert_eq!(lb_sched::random::alias_table(&d).1.to_vec(), vec![(2, 0, 1), (4, 1, 1)]);
}

#[test]
fn random_frequencies_follow_weights() {
    let cfg = SchedConfig { random: Arc::new(SplitMix64::new(42)), ..SchedConfig::default() };
    let s = service("random", cfg, &[(A, 80, 1), (B, 80, 2), (C, 80, 3), ("10.0.0.4", 80, 4)]);
    let n = 200_000;
    let c = tally(&s, n);
    for d in s.destinations() {
        let want = f64::from(d.weight()) / 10.0;
        let got = c[&d.addr()] as f64 / n as f64;
        assert!((got - want).abs() / want < 0.03, "weight {}: {got} vs {want}", d.weight());
    }
    // An OVERLOADed destination is redrawn: the others keep their proportions (1 : 3 : 4).
    dest(&s, B).set_overloaded(true);
    let c = tally(&s, n);
    assert!(!c.contains_key(&ip(B)));
    for (a, w) in [(A, 1.0), (C, 3.0), ("10.0.0.4", 4.0)] {
        let got = c[&ip(a)] as f64 / n as f64;
        assert!((got - w / 8.0).abs() / (w / 8.0) < 0.03, "{a}: {got}");
    }
}

// ---------------------------------------------------------------- all

#[test]
fn weighted_schedulers_never_pick_ineligible_and_survive_1000() {
    for name in ["swrr", "random"] {
        let s = Service::new(name, SchedConfig::default()).unwrap();
        assert_eq!(pick(&s, &tcp_from("192.0.2.1", 1)), "-", "{name}: empty");
        let s = service(name, SchedConfig::default(), &[(A, 80, 0), (B, 80, 3), (C, 80, 1), ("10.0.0.4", 80, 2)]);
        dest(&s, "10.0.0.4").set_overloaded(true);
        let c = tally(&s, 4000);
        assert!(c.keys().all(|a| *a == ip(B) || *a == ip(C)), "{name}: {c:?}");
        for d in s.destinations() {
            d.set_overloaded(true);
        }
        assert_eq!(pick(&s, &tcp_from("192.0.2.1", 1)), "-", "{name}: all overloaded");
        let big = Service::new(name, SchedConfig::default()).unwrap();
        for i in 0..1000 {
            big.add(DestConfig::new(addr(i), 80).weight(1 + i % 7)).unwrap();
        }
        let c = tally(&big, 20_000);
        assert!(c.len() > 900, "{name}: only {} of 1000 picked", c.len());
    }
}
