//! Known answers for the consistent-hash schedulers beyond IPVS: `ring` (ketama with Envoy's
//! ring rules) and `hrw` (weighted rendezvous). Expected values come from Envoy's documented
//! ring-size rule worked by hand, and from small reimplementations of the published algorithms
//! written here from their descriptions (brute-force scans, not the schedulers' code).

mod common;

use core::hash::Hasher;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::*;
use lb_sched::ring::{Ring, NODE_KEY};
use lb_sched::{DestConfig, DestId, Destination, Flow, Protocol, SchedConfig, Scheduler, Service};
use siphasher::sip::SipHasher13;

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

/// Destinations 10.0.0.{1..}, port 80, in the order given.
fn dests(weights: &[u32]) -> Vec<Arc<Destination>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Arc::new(Destination::new(DestId(i as u32), &DestConfig::new(addr(i as u32 + 1), 80).weight(w))))
        .collect()
}

/// `n` flows from distinct clients (addresses and ports from a xorshift sequence).
fn flows(n: usize) -> Vec<Flow> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Flow::v4(Protocol::Tcp, Ipv4Addr::from((x >> 32) as u32), x as u16, Ipv4Addr::new(198, 51, 100, 1), 80)
        })
        .collect()
}

fn counts(table: &[u32], n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for &i in table {
        c[i as usize] += 1;
    }
    c
}

fn svc(name: &str, n: u32, weight: impl Fn(u32) -> u32) -> Service {
    let s = Service::new(name, SchedConfig::default()).unwrap();
    for i in 0..n {
        s.add(DestConfig::new(addr(i + 1), 80).weight(weight(i))).unwrap();
    }
    s
}

fn picks(s: &Service, fl: &[Flow]) -> Vec<Option<IpAddr>> {
    fl.iter().map(|f| s.pick(f).map(|d| d.addr())).collect()
}

// ---------------------------------------------------------------- ring

#[test]
fn ring_sizes_follow_envoys_rule() {
    // Envoy's own worked example (ring_hash_lb.cc): 4 hosts of normalised weight 0.25, scale 6
    // (the maximum ring size): the running sums give the hosts 2, 1, 2 and 1 hashes.
    // min = 6: ceil(0.25 * 6) / 0.25 = 8, capped at max = 6.
    let d = dests(&[1, 1, 1, 1]);
    let r = Ring::with_sizes(6, 6, &d).unwrap();
    assert_eq!(counts(r.lookup_table().unwrap(), 4), [2, 1, 2, 1]);
    // Weights 1 and 2, min 1024: m = 1/3, ceil(1024 / 3) = 342, scale = 342 * 3 = 1026:
    // 342 and 684 nodes.
    let d = dests(&[1, 2]);
    let r = Ring::with_sizes(1024, 8 << 20, &d).unwrap();
    assert_eq!(counts(r.lookup_table().unwrap(), 2), [342, 684]);
    // More destinations than the minimum: one node each (Envoy's documentation).
    let d = dests(&vec![1; 2000]);
    let r = Ring::with_sizes(1024, 8 << 20, &d).unwrap();
    assert!(counts(r.lookup_table().unwrap(), 2000).iter().all(|&c| c == 1));
    // Capped by the maximum: weights 1 and 2, min = max = 10: ceil(10 / 3) * 3 = 12 > 10, so
    // scale = 10; targets 10/3 (4 nodes) then 10 (6 more).
    let d = dests(&[1, 2]);
    let r = Ring::with_sizes(10, 10, &d).unwrap();
    assert_eq!(counts(r.lookup_table().unwrap(), 2), [4, 6]);
    // Weight 0: no nodes.
    let d = dests(&[0, 1]);
    let r = Ring::with_sizes(1024, 8 << 20, &d).unwrap();
    assert_eq!(counts(r.lookup_table().unwrap(), 2), [0, 1024]);
}

#[test]
fn ring_rejects_bad_sizes() {
    let d = dests(&[1]);
    for (min, max) in [(0, 10), (11, 10), (1, 0), (1, (8 << 20) + 1)] {
        assert!(Ring::with_sizes(min, max, &d).is_err(), "{min} {max}");
    }
}

/// The ketama lookup reimplemented by brute force: every node hash recomputed from the
/// documented key text, the first node at or after the flow hash, wrapping.
#[test]
fn ring_lookup_matches_a_brute_force_ketama() {
    // 10 equal weights: m = 0.1, ceil(102.4) = 103, 103 nodes each.
    let s = svc("ring", 10, |_| 1);
    let mut nodes: Vec<(u64, IpAddr)> = Vec::new();
    for i in 1..=10 {
        for k in 0..103 {
            let mut h = SipHasher13::new_with_keys(NODE_KEY[0], NODE_KEY[1]);
            h.write(format!("10.0.0.{i}:80_{k}").as_bytes());
            nodes.push((h.finish(), addr(i)));
        }
    }
    let lowest = *nodes.iter().min_by_key(|n| n.0).unwrap();
    for f in flows(10_000) {
        let h = lb_sched::internals::maglev::flow_hash(&f);
        let want = nodes.iter().filter(|n| n.0 >= h).min_by_key(|n| n.0).copied().unwrap_or(lowest).1;
        assert_eq!(s.pick(&f).unwrap().addr(), want, "{f}");
    }
    // The node key text for IPv6 puts the address in brackets.
    let d6 = [Arc::new(Destination::new(DestId(0), &DestConfig::new(ip("2001:db8::1"), 443)))];
    let mut h = SipHasher13::new_with_keys(NODE_KEY[0], NODE_KEY[1]);
    h.write(b"[2001:db8::1]:443_7");
    assert_eq!(lb_sched::ring::node_hash(d6[0].addr(), 443, 7), h.finish());
    assert_eq!(SocketAddr::new(d6[0].addr(), 443).to_string(), "[2001:db8::1]:443");
}

#[test]
fn ring_removal_moves_only_the_removed_destinations_flows_and_overload_walks_on() {
    // 100 and 99 equal destinations both get 11 nodes each (ceil(10.24), ceil(10.34)): the
    // ring without the victim is the old ring minus exactly its nodes.
    let fl = flows(10_000);
    let before = picks(&svc("ring", 100, |_| 1), &fl);
    let victim = addr(38);
    let removed = svc("ring", 100, |_| 1);
    removed.remove(victim, 80).unwrap();
    let after = picks(&removed, &fl);
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        if *b == Some(victim) {
            moved += 1;
            assert_ne!(*a, Some(victim));
        } else {
            assert_eq!(b, a, "a flow of another destination moved");
        }
    }
    assert!(moved > 0);
    // OVERLOAD: the walk skips the victim's nodes, so every flow goes where removal sends it.
    let over = svc("ring", 100, |_| 1);
    dest(&over, "10.0.0.38").set_overloaded(true);
    assert_eq!(picks(&over, &fl), after);
}

#[test]
fn ring_weights_are_honoured() {
    // Weights 1..=4 on a large ring (min 65536): shares within 5 % (relative) of w / 10.
    let d = dests(&[1, 2, 3, 4]);
    let r = Ring::with_sizes(65536, 8 << 20, &d).unwrap();
    let fl = flows(200_000);
    let mut c = [0usize; 4];
    for f in &fl {
        c[r.pick(&d, f).unwrap()] += 1;
    }
    for (i, &n) in c.iter().enumerate() {
        let want = (i + 1) as f64 / 10.0;
        let got = n as f64 / fl.len() as f64;
        assert!((got - want).abs() / want < 0.05, "weight {}: {got} vs {want}", i + 1);
    }
}

// ---------------------------------------------------------------- hrw

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sip18(key: [u64; 2], a: IpAddr, port: u16) -> u64 {
    let v6 = match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut h = SipHasher13::new_with_keys(key[0], key[1]);
    let mut b = v6.octets().to_vec();
    b.extend_from_slice(&port.to_be_bytes());
    h.write(&b);
    h.finish()
}

/// Weighted rendezvous by its definition: argmax over eligible destinations of -w / ln(u).
fn hrw_brute(d: &[Arc<Destination>], f: &Flow) -> Option<IpAddr> {
    let k = sip18(lb_sched::hrw::FLOW_KEY, f.src, f.src_port);
    d.iter()
        .filter(|d| d.weight() > 0 && !d.is_overloaded())
        .map(|d| {
            let x = mix64(k ^ sip18(lb_sched::hrw::DEST_KEY, d.addr(), d.port()));
            let u = ((x >> 11) as f64 + 0.5) / 9_007_199_254_740_992.0;
            (d.addr(), -f64::from(d.weight()) / u.ln())
        })
        .fold(None, |best: Option<(IpAddr, f64)>, (a, s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((a, s)),
        })
        .map(|b| b.0)
}

#[test]
fn hrw_matches_the_definition() {
    let s = svc("hrw", 10, |i| 1 + i % 4);
    dest(&s, "10.0.0.3").set_overloaded(true);
    let list = s.destinations();
    for f in flows(10_000) {
        assert_eq!(s.pick(&f).map(|d| d.addr()), hrw_brute(&list, &f), "{f}");
    }
    // 1000 destinations: the pick's shortcut changes nothing.
    let big = svc("hrw", 1000, |i| 1 + i % 7);
    let list = big.destinations();
    for f in flows(300) {
        assert_eq!(big.pick(&f).map(|d| d.addr()), hrw_brute(&list, &f), "{f}");
    }
    // Only the client's address and port count.
    let f = tcp_from("192.0.2.9", 5555);
    let mut g = f;
    g.dst_port = 443;
    g.proto = Protocol::Udp;
    assert_eq!(s.pick(&f).unwrap().addr(), s.pick(&g).unwrap().addr());
}

#[test]
fn hrw_removal_and_addition_move_only_their_own_flows() {
    let fl = flows(10_000);
    let before = picks(&svc("hrw", 100, |_| 1), &fl);
    let victim = addr(61);
    let removed = svc("hrw", 100, |_| 1);
    removed.remove(victim, 80).unwrap();
    let after = picks(&removed, &fl);
    for (b, a) in before.iter().zip(&after) {
        if *b != Some(victim) {
            assert_eq!(b, a, "a flow of another destination moved");
        }
    }
    // Adding: a flow either stays or moves to the newcomer.
    let added = svc("hrw", 100, |_| 1);
    added.add(DestConfig::new(addr(500), 80)).unwrap();
    let grown = picks(&added, &fl);
    let mut to_new = 0;
    for (b, a) in before.iter().zip(&grown) {
        if a != b {
            assert_eq!(*a, Some(addr(500)));
            to_new += 1;
        }
    }
    // About 1/101 of the flows.
    assert!((50..200).contains(&to_new), "{to_new}");
}

#[test]
fn hrw_weights_are_honoured() {
    let s = svc("hrw", 4, |i| i + 1);
    let fl = flows(100_000);
    let mut c: HashMap<IpAddr, usize> = HashMap::new();
    for f in &fl {
        *c.entry(s.pick(f).unwrap().addr()).or_default() += 1;
    }
    for d in s.destinations() {
        let want = f64::from(d.weight()) / 10.0;
        let got = c[&d.addr()] as f64 / fl.len() as f64;
        assert!((got - want).abs() / want < 0.05, "weight {}: {got} vs {want}", d.weight());
    }
}

// ---------------------------------------------------------------- both

#[test]
fn hash_schedulers_never_pick_ineligible_and_survive_1000() {
    for name in ["ring", "hrw"] {
        let s = Service::new(name, SchedConfig::default()).unwrap();
        assert!(s.pick(&tcp_from("192.0.2.1", 1)).is_none(), "{name}: empty");
        let s = svc(name, 6, |i| if i == 2 { 0 } else { 1 });
        dest(&s, "10.0.0.5").set_overloaded(true);
        for f in flows(5_000) {
            let d = s.pick(&f).unwrap();
            assert!(d.weight() > 0 && !d.is_overloaded(), "{name} picked {d:?}");
        }
        for d in s.destinations() {
            d.set_overloaded(true);
        }
        assert!(flows(100).iter().all(|f| s.pick(f).is_none()), "{name}: all overloaded");
        let big = svc(name, 1000, |i| 1 + i % 7);
        assert!(flows(1000).iter().all(|f| big.pick(f).is_some()), "{name}: 1000");
    }
}
