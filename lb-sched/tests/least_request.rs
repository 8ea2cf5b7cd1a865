//! Known answers for `p2c` (Envoy's LEAST_REQUEST): power of two choices with equal weights,
//! the load-scaled EDF schedule with unequal ones. Expected sequences are worked by hand from
//! Envoy's documented rules (in the comments).

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use lb_sched::p2c::LeastRequest;
use lb_sched::{DestConfig, RandomSource, SchedConfig, Service, SplitMix64};

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const C: &str = "10.0.0.3";

#[derive(Debug)]
struct Scripted {
    values: Vec<u64>,
    next: AtomicUsize,
    bounds: std::sync::Mutex<Vec<u64>>,
}

impl RandomSource for Scripted {
    fn below(&self, n: u64) -> u64 {
        self.bounds.lock().unwrap().push(n);
        let v = self.values[self.next.fetch_add(1, Ordering::Relaxed)];
        assert!(v < n, "scripted {v} not below {n}");
        v
    }
}

fn scripted(values: &[u64]) -> Arc<Scripted> {
    Arc::new(Scripted { values: values.to_vec(), next: AtomicUsize::new(0), bounds: Default::default() })
}

fn seeded(seed: u64) -> SchedConfig {
    SchedConfig { random: Arc::new(SplitMix64::new(seed)), ..SchedConfig::default() }
}

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

fn tally(s: &Service, n: usize) -> HashMap<IpAddr, usize> {
    let f = tcp_from("192.0.2.1", 1000);
    let mut c = HashMap::new();
    for _ in 0..n {
        *c.entry(s.pick(&f).unwrap().addr()).or_default() += 1;
    }
    c
}

// ---------------------------------------------------------------- equal weights: P2C

#[test]
fn p2c_the_lightly_loaded_of_two_always_wins() {
    // Two destinations: both are drawn every time (distinct draws), so the one with fewer
    // active connections wins every pick.
    for loaded in [A, B] {
        let s = service("p2c", seeded(7), &[(A, 80, 1), (B, 80, 1)]);
        set_conns(&dest(&s, loaded), 100, 0);
        let light = if loaded == A { B } else { A };
        assert_eq!(tally(&s, 1000)[&ip(light)], 1000);
    }
    // Three: the most loaded loses to either other, so it is never picked.
    let s = service("p2c", seeded(9), &[(A, 80, 1), (B, 80, 1), (C, 80, 1)]);
    set_conns(&dest(&s, B), 9, 0);
    set_conns(&dest(&s, C), 1, 0);
    let c = tally(&s, 3000);
    assert!(!c.contains_key(&ip(B)));
    // A (0 active) wins whenever drawn: in 2 of the 3 equally likely pairs; C in the third.
    let a = c[&ip(A)] as f64 / 3000.0;
    assert!((a - 2.0 / 3.0).abs() < 0.04, "{a}");
    // Inactive connections do not count (twos would count them, at 1/256 of an active one).
    let s = service("p2c", seeded(3), &[(A, 80, 1), (B, 80, 1)]);
    set_conns(&dest(&s, A), 0, 500);
    set_conns(&dest(&s, B), 1, 0);
    assert_eq!(tally(&s, 100)[&ip(A)], 100);
}

#[test]
fn p2c_draws_worked_by_hand() {
    // Active: a 5, b 2, c 2. Draw 1 from 0..3, draw 2 from 0..2 skipping draw 1.
    // (2, 0): c then a -> c (2 < 5). (1, 1): b then 1 >= 1 -> c; tie -> first drawn, b.
    // (0, 0): a then 0 >= 0 -> b -> b.
    let rng = scripted(&[2, 0, 1, 1, 0, 0]);
    let s = service(
        "p2c",
        SchedConfig { random: rng.clone(), ..Default::default() },
        &[(A, 80, 1), (B, 80, 1), (C, 80, 1)],
    );
    set_conns(&dest(&s, A), 5, 0);
    set_conns(&dest(&s, B), 2, 0);
    set_conns(&dest(&s, C), 2, 0);
    assert_eq!(letters(&s, 3), "cbb");
    assert_eq!(*rng.bounds.lock().unwrap(), vec![3, 2, 3, 2, 3, 2]);
    // b overloaded: draw 1 = 1 (b) is redrawn: 0 (a); draw 2 = 0 -> b again, redrawn: 1 -> c.
    // a 5 vs c 2 -> c.
    let rng = scripted(&[1, 0, 0, 1]);
    let s = service("p2c", SchedConfig { random: rng, ..Default::default() }, &[(A, 80, 1), (B, 80, 1), (C, 80, 1)]);
    set_conns(&dest(&s, A), 5, 0);
    set_conns(&dest(&s, C), 2, 0);
    dest(&s, B).set_overloaded(true);
    assert_eq!(letters(&s, 1), "c");
}

// ---------------------------------------------------------------- unequal weights: EDF

#[test]
fn p2c_weighted_mode_is_envoys_edf_schedule() {
    // Weights a 2, b 1, no connections: deadlines start at 1/2 and 1; each pick takes the
    // earliest (list order on ties) and moves it on by (active + 1) / weight:
    // a(0.5) -> 1, a(1) [tie with b, a first] -> 1.5, b(1) -> 2, a(1.5) -> 2, a(2) -> 2.5,
    // b(2) -> 3, ...: a a b a a b.
    let s = service("p2c", seeded(1), &[(A, 80, 2), (B, 80, 1)]);
    assert_eq!(letters(&s, 6), "aabaab");
    // Active connections lower the dynamic weight: a weight 2 with 3 active steps by
    // (3 + 1) / 2 = 2, b by 1. Fresh deadlines a 0.5, b 1: a(0.5) -> 2.5, b(1) -> 2,
    // b(2) -> 3, a(2.5) -> 4.5, b(3) -> 4, b(4) -> 5, a(4.5) -> 6.5: a b b a b b a.
    let s = service("p2c", seeded(1), &[(A, 80, 2), (B, 80, 1)]);
    set_conns(&dest(&s, A), 3, 0);
    assert_eq!(letters(&s, 7), "abbabba");
    // Envoy's example: weight 2 with 4 active has an effective weight of 2 / 5 = 0.4.
    assert_eq!(lb_sched::p2c::step(2, 4), 1.0 / 0.4);
}

#[test]
fn p2c_mode_follows_the_weights() {
    let equal = service("p2c", seeded(1), &[(A, 80, 3), (B, 80, 0), (C, 80, 3)]).destinations();
    assert!(!LeastRequest::new(Arc::new(SplitMix64::new(1)), &equal).is_weighted());
    let unequal = service("p2c", seeded(1), &[(A, 80, 3), (B, 80, 1)]).destinations();
    assert!(LeastRequest::new(Arc::new(SplitMix64::new(1)), &unequal).is_weighted());
}

#[test]
fn p2c_weighted_shares_and_no_burst_after_overload() {
    let s = service("p2c", seeded(1), &[(A, 80, 1), (B, 80, 2), (C, 80, 3), ("10.0.0.4", 80, 4)]);
    let c = tally(&s, 10_000);
    for d in s.destinations() {
        assert_eq!(c[&d.addr()], 1000 * d.weight() as usize, "{}", d.addr());
    }
    // c out for a while, then back: it takes its share from then on, not a burst of catch-up.
    dest(&s, C).set_overloaded(true);
    assert!(!tally(&s, 1000).contains_key(&ip(C)));
    dest(&s, C).set_overloaded(false);
    let after = tally(&s, 100);
    assert!(after[&ip(C)] <= 35, "{after:?}");
}

#[test]
fn p2c_weighted_concurrent_picks_keep_the_shares() {
    let s = Arc::new(service("p2c", seeded(1), &[(A, 80, 1), (B, 80, 3)]));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || tally(&s, 20_000))
        })
        .collect();
    let mut all: HashMap<IpAddr, usize> = HashMap::new();
    for t in threads {
        for (a, n) in t.join().unwrap() {
            *all.entry(a).or_default() += n;
        }
    }
    let a = all[&ip(A)] as f64 / 80_000.0;
    assert!((a - 0.25).abs() < 0.01, "{a}");
}

// ---------------------------------------------------------------- both modes

#[test]
fn p2c_never_picks_ineligible_and_survives_1000() {
    for weights in [[1u32, 1, 1, 1], [2, 1, 1, 3]] {
        let s = Service::new("p2c", seeded(5)).unwrap();
        assert_eq!(pick(&s, &tcp_from("192.0.2.1", 1)), "-");
        let list = [(A, 80, 0), (B, 80, weights[1]), (C, 80, weights[2]), ("10.0.0.4", 80, weights[3])];
        let s = service("p2c", seeded(5), &list);
        dest(&s, C).set_overloaded(true);
        assert!(tally(&s, 1000).keys().all(|a| *a == ip(B) || *a == ip("10.0.0.4")));
        dest(&s, B).set_overloaded(true);
        assert!(tally(&s, 100).keys().all(|a| *a == ip("10.0.0.4")));
        dest(&s, "10.0.0.4").set_overloaded(true);
        assert_eq!(letters(&s, 3), "---");
        s.edit(DestConfig::new(ip(A), 80).weight(5)).unwrap();
        assert_eq!(letters(&s, 3), "aaa");
    }
    for equal in [true, false] {
        let big = Service::new("p2c", SchedConfig::default()).unwrap();
        for i in 0..1000u32 {
            let w = if equal { 1 } else { 1 + i % 7 };
            big.add(DestConfig::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 80).weight(w)).unwrap();
        }
        assert!(tally(&big, 5000).len() > 900);
    }
}
