//! Known-answer tests: every scheduler rule of docs/ipvs.md §1 worked out by hand (in the
//! comments) or by `tests/kat/ipvs_kat.py`, an independent implementation of the reference's
//! formulas (its SipHash-1-3 checks against the kernel's own self-test vectors).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use lb_sched::{registry, DestConfig, RandomSource, SchedConfig, SchedError, SchedFlags, Service};

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const C: &str = "10.0.0.3";
const D: &str = "10.0.0.4";

fn picks(s: &Service, n: usize) -> String {
    let f = tcp_from("192.0.2.1", 1000);
    (0..n)
        .map(|_| match pick(s, &f).as_str() {
            A => 'A',
            B => 'B',
            C => 'C',
            D => 'D',
            "-" => '-',
            other => panic!("unexpected {other}"),
        })
        .collect()
}

// ---------------------------------------------------------------- rr

#[test]
fn rr_cycles_in_list_order_skipping_ineligible() {
    let s = service("rr", SchedConfig::default(), &[(A, 80, 1), (B, 80, 1), (C, 80, 1)]);
    assert_eq!(picks(&s, 7), "ABCABCA");
    dest(&s, B).set_overloaded(true);
    // Cursor on A: walk B (overloaded), C.
    assert_eq!(picks(&s, 4), "CACA");
    s.edit(DestConfig::new(ip(A), 80).weight(0)).unwrap();
    // Only C is eligible: the walk ends on the cursor node itself, so C again and again.
    assert_eq!(picks(&s, 3), "CCC");
    dest(&s, C).set_overloaded(true);
    assert_eq!(picks(&s, 2), "--");
    assert_eq!(s.no_destination_count(), 2);
}

#[test]
fn rr_cursor_moves_to_predecessor_on_delete_and_survives_add() {
    let s = service("rr", SchedConfig::default(), &[(A, 80, 1), (B, 80, 1), (C, 80, 1)]);
    assert_eq!(picks(&s, 2), "AB"); // cursor on B
    s.remove(ip(B), 80).unwrap(); // cursor moves to A (its predecessor)
    assert_eq!(picks(&s, 1), "C"); // had it gone back to the head, this would be A
                                   // Cursor on C; a new destination D goes to the head: list D A C.
    s.add(DestConfig::new(ip(D), 80)).unwrap();
    assert_eq!(picks(&s, 4), "DACD");
    // Deleting the first node while the cursor is on it moves the cursor to the head.
    s.remove(ip(D), 80).unwrap();
    assert_eq!(picks(&s, 3), "ACA");
}

// ---------------------------------------------------------------- wrr

#[test]
fn wrr_weights_4_3_2_give_aababcabc() {
    let s = service("wrr", SchedConfig::default(), &[(A, 80, 4), (B, 80, 3), (C, 80, 2)]);
    // init_service on the full list: cl = head, cw = mw = 4.
    s.set_scheduler("wrr", SchedConfig::default()).unwrap();
    assert_eq!(picks(&s, 18), "AABABCABCAABABCABC");
}

#[test]
fn wrr_after_incremental_adds_follows_dest_changed() {
    // ipvsadm -A then -a C(2), -a B(3), -a A(4): dest_changed after each add.
    // empty: mw = 0, cw = 0. +C: di 2, mw 1, cw 0 -> mw = 1. +B: di 1, mw 3, cw 1 kept.
    // +A: di 1, mw 4, cw 1 kept. Picks: cw 1 from head: A B C; end -> cw 0 -> restart cw 4:
    // A; cw 3: A B; cw 2: A B C; cw 1: A B C; ...
    let s = service("wrr", SchedConfig::default(), &[(A, 80, 4), (B, 80, 3), (C, 80, 2)]);
    assert_eq!(picks(&s, 12), "ABCAABABCABC");
}

#[test]
fn wrr_gcd_step_and_edit() {
    // Weights 4 and 2: di = 2, mw = 4 - 1 = 3. Passes cw = 3 (A), 1 (A, B): A A B.
    let s = service("wrr", SchedConfig::default(), &[(A, 80, 4), (B, 80, 2)]);
    s.set_scheduler("wrr", SchedConfig::default()).unwrap();
    assert_eq!(picks(&s, 6), "AABAAB");
    // Overloaded A: only B (weight >= cw happens at cw = 1).
    dest(&s, A).set_overloaded(true);
    assert_eq!(picks(&s, 3), "BBB");
    dest(&s, A).set_overloaded(false);
    // All weights 0: mw = 0 after the edit -> no destination.
    s.edit(DestConfig::new(ip(A), 80).weight(0)).unwrap();
    s.edit(DestConfig::new(ip(B), 80).weight(0)).unwrap();
    assert_eq!(picks(&s, 2), "--");
}

// ---------------------------------------------------------------- lc, wlc, sed, nq

#[test]
fn lc_and_wlc_winners() {
    let list = [(A, 80, 1), (B, 80, 2), (C, 80, 3)];
    let lc = service("lc", SchedConfig::default(), &list);
    let wlc = service("wlc", SchedConfig::default(), &list);
    for s in [&lc, &wlc] {
        set_conns(&dest(s, A), 1, 0); // overhead 256
        set_conns(&dest(s, B), 1, 100); // overhead 356
        set_conns(&dest(s, C), 2, 0); // overhead 512
    }
    // lc: least overhead, A (256).
    assert_eq!(pick(&lc, &tcp_from("192.0.2.1", 1)), A);
    // wlc: least = A (256, w1). B: 256*2 = 512 > 356*1 -> B. C: 356*3 = 1068 > 512*2 = 1024 -> C.
    assert_eq!(pick(&wlc, &tcp_from("192.0.2.1", 1)), C);
}

#[test]
fn lc_wlc_ties_go_to_the_first_in_list_and_weight_zero_never_wins() {
    let lc = service("lc", SchedConfig::default(), &[(A, 80, 1), (B, 80, 1)]);
    assert_eq!(pick(&lc, &tcp_from("192.0.2.1", 1)), A);
    let wlc = service("wlc", SchedConfig::default(), &[(A, 80, 1), (B, 80, 1)]);
    set_conns(&dest(&wlc, A), 1, 0);
    set_conns(&dest(&wlc, B), 1, 0);
    // 256*1 > 256*1 is false: A stays.
    assert_eq!(pick(&wlc, &tcp_from("192.0.2.1", 1)), A);
    // A quiesced with no connections at all still cannot win: B (loaded) is picked.
    let wlc = service("wlc", SchedConfig::default(), &[(A, 80, 0), (B, 80, 1)]);
    set_conns(&dest(&wlc, B), 5, 5);
    assert_eq!(pick(&wlc, &tcp_from("192.0.2.1", 1)), B);
    let lc = service("lc", SchedConfig::default(), &[(A, 80, 0), (B, 80, 1)]);
    set_conns(&dest(&lc, B), 5, 5);
    assert_eq!(pick(&lc, &tcp_from("192.0.2.1", 1)), B);
}

#[test]
fn sed_ignores_inactive_and_nq_prefers_idle() {
    let list = [(A, 80, 1), (B, 80, 2), (C, 80, 1)];
    let sed = service("sed", SchedConfig::default(), &list);
    set_conns(&dest(&sed, A), 1, 0); // sed overhead 2
    set_conns(&dest(&sed, B), 3, 1000); // 4 (inactive ignored)
    set_conns(&dest(&sed, C), 0, 0); // 1
                                     // least A (2, w1). B: 2*2 = 4 > 4*1 = 4? no. C: 2*1 = 2 > 1*1 -> C.
    assert_eq!(pick(&sed, &tcp_from("192.0.2.1", 1)), C);

    // Where sed and nq differ: A idle with weight 1, B busy with weight 10.
    let list = [(A, 80, 1), (B, 80, 10)];
    let sed = service("sed", SchedConfig::default(), &list);
    let nq = service("nq", SchedConfig::default(), &list);
    for s in [&sed, &nq] {
        set_conns(&dest(s, B), 1, 0);
    }
    // sed: least A (1, w1); B: 1*10 = 10 > 2*1 = 2 -> B.
    assert_eq!(pick(&sed, &tcp_from("192.0.2.1", 1)), B);
    // nq: A has no active connection: returned at once.
    assert_eq!(pick(&nq, &tcp_from("192.0.2.1", 1)), A);
    // nq when nobody is idle: the sed rule (A: 2 with w1 vs B: 2 with w10 -> B).
    set_conns(&dest(&nq, A), 1, 0);
    assert_eq!(pick(&nq, &tcp_from("192.0.2.1", 1)), B);
}

// ---------------------------------------------------------------- fo, ovf

#[test]
fn fo_takes_the_first_highest_weight() {
    let s = service("fo", SchedConfig::default(), &[(A, 80, 2), (B, 80, 5), (C, 80, 5)]);
    assert_eq!(pick(&s, &tcp_from("192.0.2.1", 1)), B);
    dest(&s, B).set_overloaded(true);
    assert_eq!(pick(&s, &tcp_from("192.0.2.1", 1)), C);
}

#[test]
fn ovf_skips_destinations_with_more_active_than_weight() {
    let s = service("ovf", SchedConfig::default(), &[(A, 80, 2), (B, 80, 5), (C, 80, 5)]);
    set_conns(&dest(&s, B), 6, 0); // 6 > 5: skipped
    set_conns(&dest(&s, C), 5, 0); // 5 <= 5: still eligible
    assert_eq!(pick(&s, &tcp_from("192.0.2.1", 1)), C);
    let c = dest(&s, C);
    c.bind_conn(false);
    c.conn_moved(true); // now 6 > 5
    assert_eq!(pick(&s, &tcp_from("192.0.2.1", 1)), A);
}

// ---------------------------------------------------------------- twos

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
        assert!(v < n);
        v
    }
}

#[test]
fn twos_with_injected_randomness() {
    let rng =
        Arc::new(Scripted { values: vec![0, 6, 3, 5, 10, 10], next: AtomicUsize::new(0), bounds: Default::default() });
    let cfg = SchedConfig { random: rng.clone(), ..SchedConfig::default() };
    let s = service("twos", cfg, &[(A, 80, 2), (B, 80, 3), (C, 80, 5)]);
    set_conns(&dest(&s, A), 1, 0); // overhead 256
    let f = tcp_from("192.0.2.1", 1);
    // W = 10, values drawn below 11. r1 = 0: A (0-2 <= 0). r2 = 6: 4, 1, -4 -> C.
    // C wins: w2*oh1 = 5*256 > w1*oh2 = 2*0.
    assert_eq!(pick(&s, &f), C);
    // r1 = 3: 1, -2 -> B. r2 = 5: 3, 0 -> B (0 counts as <= 0).
    assert_eq!(pick(&s, &f), B);
    // r1 = r2 = 10: 8, 5, 0 -> C both.
    assert_eq!(pick(&s, &f), C);
    assert_eq!(*rng.bounds.lock().unwrap(), vec![11; 6]);
}

// ---------------------------------------------------------------- sh

fn sh_cfg(bits: u8, flags: &str) -> SchedConfig {
    SchedConfig { sh_table_bits: bits, flags: SchedFlags::parse(flags).unwrap(), ..SchedConfig::default() }
}

#[test]
fn sh_fill_follows_weights_in_list_order() {
    let s = service("sh", sh_cfg(8, ""), &[(A, 80, 3), (B, 80, 1), (C, 80, 2)]);
    let snap = s.snapshot();
    let t = snap.scheduler().lookup_table().unwrap();
    assert_eq!(t.len(), 256);
    // Pattern A A A B C C repeated (ipvs_kat.py prints the same first 16).
    for (b, &i) in t.iter().enumerate() {
        assert_eq!(i, [0, 0, 0, 1, 2, 2][b % 6], "bucket {b}");
    }
    // A weight-0 destination still gets one bucket: A B B A B B ...
    let s = service("sh", sh_cfg(8, ""), &[(A, 80, 0), (B, 80, 2)]);
    let snap = s.snapshot();
    let t = snap.scheduler().lookup_table().unwrap();
    assert!(t.iter().enumerate().all(|(b, &i)| i == [0, 1, 1][b % 3]));
    // Weights beyond the table: T = 16, weights 10, 10, 1 -> A 10, B 6, C none.
    let s = service("sh", sh_cfg(4, ""), &[(A, 80, 10), (B, 80, 10), (C, 80, 1)]);
    let snap = s.snapshot();
    let t = snap.scheduler().lookup_table().unwrap();
    assert_eq!(t, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
}

#[test]
fn sh_buckets_from_hash_32() {
    // Buckets from ipvs_kat.py: hash_32(port + fold(src), 8).
    // 10.0.0.1 -> 39 (39 mod 6 = 3: B); 192.168.1.77 -> 144 (0: A);
    // 10.0.0.1 port 40000 -> 203 (5: C); 2001:db8::1 -> 63 (3: B); bits 4, 10.0.0.1 -> 2.
    let s = service("sh", sh_cfg(8, ""), &[(A, 80, 3), (B, 80, 1), (C, 80, 2)]);
    assert_eq!(pick(&s, &tcp_from("10.0.0.1", 40000)), B); // port ignored without sh-port
    assert_eq!(pick(&s, &tcp_from("192.168.1.77", 1)), A);
    assert_eq!(pick(&s, &tcp_from("2001:db8::1", 1)), B);
    let sp = service("sh", sh_cfg(8, "sh-port"), &[(A, 80, 3), (B, 80, 1), (C, 80, 2)]);
    assert_eq!(pick(&sp, &tcp_from("10.0.0.1", 40000)), C);
    // bits = 4: bucket 2 of A A A B C C A ... -> A
    let s4 = service("sh", sh_cfg(4, ""), &[(A, 80, 3), (B, 80, 1), (C, 80, 2)]);
    assert_eq!(pick(&s4, &tcp_from("10.0.0.1", 1)), A);
}

#[test]
fn sh_fallback_probes_from_twice_the_bucket() {
    let list = [(A, 80, 3), (B, 80, 1), (C, 80, 2)];
    let plain = service("sh", sh_cfg(8, ""), &list);
    let fb = service("sh", sh_cfg(8, "sh-fallback"), &list);
    for s in [&plain, &fb] {
        dest(s, B).set_overloaded(true);
    }
    // 10.0.0.1 -> bucket 39 -> B, unavailable.
    assert_eq!(pick(&plain, &tcp_from("10.0.0.1", 1)), "-");
    // Probe 0 lands on (2*39 + 0) mod 256 = 78 -> 78 mod 6 = 0 -> A.
    assert_eq!(pick(&fb, &tcp_from("10.0.0.1", 1)), A);
    // Quiesced works the same way (weight 0 = unavailable); the table is rebuilt on the edit
    // (B gets its one bucket anyway) and the probe again lands on A.
    dest(&fb, B).set_overloaded(false);
    fb.edit(DestConfig::new(ip(B), 80).weight(0)).unwrap();
    assert_eq!(pick(&fb, &tcp_from("10.0.0.1", 1)), A);
}

#[test]
fn sh_rejects_table_bits_outside_4_to_20() {
    for bits in [3u8, 21] {
        assert!(matches!(Service::new("sh", sh_cfg(bits, "")), Err(SchedError::BadTableSize { .. })));
    }
}

// ---------------------------------------------------------------- dh

#[test]
fn dh_buckets_from_hash_32_of_the_destination_address() {
    let s = service("dh", SchedConfig::default(), &[(A, 80, 1), (B, 80, 1), (C, 80, 9), (D, 80, 1)]);
    // Bucket b holds destination b mod 4 (no weights). From ipvs_kat.py:
    // 192.0.2.10 -> 162 (2: C), 198.51.100.7 -> 171 (3: D), 2001:db8::80 -> 248 (0: A).
    assert_eq!(pick(&s, &tcp_to("192.0.2.10")), C);
    assert_eq!(pick(&s, &tcp_to("198.51.100.7")), D);
    assert_eq!(pick(&s, &tcp_to("2001:db8::80")), A);
    // No fallback: an overloaded or quiesced destination fails the pick.
    dest(&s, C).set_overloaded(true);
    assert_eq!(pick(&s, &tcp_to("192.0.2.10")), "-");
    s.edit(DestConfig::new(ip(D), 80).weight(0)).unwrap();
    assert_eq!(pick(&s, &tcp_to("198.51.100.7")), "-");
}

// ---------------------------------------------------------------- mh

/// `ipvs_kat.py`'s table for M = 251 and the list (10.0.0.3:80 w1, 10.0.0.2:80 w2,
/// 10.0.0.1:80 w1): letter A = 10.0.0.3, B = 10.0.0.2, C = 10.0.0.1 (list positions 0, 1, 2).
const MH_251: &str = "BBBBCCBBBCCCBBBBBBABBBBCBBBCCCCBBBBCCABBBBCBAAACCBBBBCCAAABBBBAAAACAABBAAAAAAAAAACBCCCBBBCCCBBBBBBBBBBCCBBBCCCBBBBBBAABBBCBBBACCCBBBBBCAAABCCBBAACCAABBBCAAAAAAABAAACBBBBBCBBBBBBCBCCCCCBBBBCCBBBBBCBACCCCBBBBCCBBBBBBBAAACCBBBBACCAABBBBAAAAACABBAAAAAABBB";

fn mh_cfg(flags: &str) -> SchedConfig {
    SchedConfig { mh_table_size: 251, flags: SchedFlags::parse(flags).unwrap(), ..SchedConfig::default() }
}

fn mh_service(flags: &str) -> Service {
    service("mh", mh_cfg(flags), &[(C, 80, 1), (B, 80, 2), (A, 80, 1)])
}

fn mh_letter_addr(letter: u8) -> &'static str {
    match letter {
        b'A' => C,
        b'B' => B,
        b'C' => A,
        _ => "-",
    }
}

#[test]
fn mh_table_m251_matches_the_reference_computation() {
    let s = mh_service("");
    let snap = s.snapshot();
    let t = snap.scheduler().lookup_table().unwrap();
    let got: String = t.iter().map(|&i| [b'A', b'B', b'C'][i as usize] as char).collect();
    assert_eq!(got, MH_251);
    // Turns: g = 1, rshift = 0: weights 1, 2, 1 -> 63, 126, 62 slots.
    assert_eq!([0u32, 1, 2].map(|i| t.iter().filter(|&&x| x == i).count()), [63, 126, 62]);
}

#[test]
fn mh_lookup_slots_and_port_flag() {
    let s = mh_service("");
    let at = |slot: usize| mh_letter_addr(MH_251.as_bytes()[slot]);
    // Slots from ipvs_kat.py: 192.0.2.1 -> 227, 192.0.2.2 -> 247, 203.0.113.9 -> 111, 2001:db8::7 -> 184.
    assert_eq!(pick(&s, &tcp_from("192.0.2.1", 7)), at(227));
    assert_eq!(pick(&s, &tcp_from("192.0.2.2", 7)), at(247));
    assert_eq!(pick(&s, &tcp_from("203.0.113.9", 7)), at(111));
    assert_eq!(pick(&s, &tcp_from("2001:db8::7", 7)), at(184));
    let sp = mh_service("mh-port");
    assert_eq!(pick(&sp, &tcp_from("192.0.2.1", 5555)), at(189));
}

#[test]
fn mh_quiesce_keeps_the_table_and_fallback_probes() {
    let s = mh_service("");
    let fb = mh_service("mh-fallback");
    let at = |slot: usize| MH_251.as_bytes()[slot];
    let primary = at(227); // 192.0.2.1's slot
    let victim = mh_letter_addr(primary);
    for svc in [&s, &fb] {
        let before = svc.snapshot().scheduler().lookup_table().unwrap().to_vec();
        svc.edit(DestConfig::new(ip(victim), 80).weight(0)).unwrap();
        // Built from last_weight: quiescing does not reshuffle.
        assert_eq!(svc.snapshot().scheduler().lookup_table().unwrap(), &before[..]);
    }
    assert_eq!(pick(&s, &tcp_from("192.0.2.1", 7)), "-");
    // Probe slots from ipvs_kat.py: 44, 63, 194, 2, 145; the first holding another letter wins.
    let expect = [44usize, 63, 194, 2, 145].into_iter().map(at).find(|&l| l != primary).unwrap();
    assert_eq!(pick(&fb, &tcp_from("192.0.2.1", 7)), mh_letter_addr(expect));
}

#[test]
fn mh_destination_added_with_weight_zero_gets_no_slots() {
    let s = service("mh", mh_cfg(""), &[(D, 80, 0), (C, 80, 1), (B, 80, 2), (A, 80, 1)]);
    let snap = s.snapshot();
    let t = snap.scheduler().lookup_table().unwrap();
    assert!(t.iter().all(|&i| i != 0));
    // The other three fill the table exactly as before (list positions shifted by one).
    let got: String = t.iter().map(|&i| [b'-', b'A', b'B', b'C'][i as usize] as char).collect();
    assert_eq!(got, MH_251);
}

#[test]
fn mh_offset_and_skip_at_default_size() {
    // ipvs_kat.py: 10.0.0.1:80 at M = 4093 has offset 3167 and skip 700, so a sole destination
    // with weight 1 ... fills every slot; check the hash itself.
    use lb_sched::internals::mh::hashkey;
    use lb_sched::mh::{HASH1, HASH2};
    assert_eq!(hashkey(&ip(A), 80, HASH1, 0) % 4093, 3167);
    assert_eq!(hashkey(&ip(A), 80, HASH2, 0) % 4092 + 1, 700);
}

#[test]
fn mh_rejects_sizes_outside_the_prime_list_and_too_many_destinations() {
    let cfg = SchedConfig { mh_table_size: 4099, ..SchedConfig::default() };
    assert!(matches!(Service::new("mh", cfg), Err(SchedError::BadTableSize { .. })));
    let s = Service::new("mh", mh_cfg("")).unwrap();
    for i in 0..251u32 {
        s.add(DestConfig::new(std::net::IpAddr::V4((0x0a00_0000 + i).into()), 80)).unwrap();
    }
    assert!(matches!(
        s.add(DestConfig::new(ip("10.9.9.9"), 80)),
        Err(SchedError::TooManyDestinations { count: 252, table: 251, .. })
    ));
    assert_eq!(s.destinations().len(), 251);
}

#[test]
fn mh_weights_shifted_by_table_bits() {
    // M = 251: TAB_BITS = 8 / 2 = 4. Weights 100 and 1: g = 1, fls(100) = 7, rshift = 3:
    // turns 100 >> 3 = 12 and 1 >> 3 = 0 -> 1 (last_weight != 0).
    let turns = lb_sched::internals::mh::turns(
        4,
        &service("rr", SchedConfig::default(), &[(A, 80, 100), (B, 80, 1)]).destinations(),
    );
    assert_eq!(turns, vec![12, 1]);
}

// ---------------------------------------------------------------- maglev (lbkit's stable hashes)

#[test]
fn maglev_hashes_are_stable() {
    use lb_sched::internals::maglev::{flow_hash, identity_hashes};
    // Values from ipvs_kat.py's independent implementation of the documented functions.
    assert_eq!(identity_hashes(&ip("10.0.0.1"), 80), (0x491a_abd1_45ed_c3e9, 0xb00f_d9b9_8367_96fd));
    assert_eq!(identity_hashes(&ip("2001:db8::1"), 443), (0x3c91_8ac9_411a_c206, 0x431e_48b9_e73b_d145));
    assert_eq!(flow_hash(&tcp_from("192.0.2.1", 40000)), 0x60f5_c679_f103_a743);
    let f6 = lb_sched::Flow::v6(
        lb_sched::Protocol::Udp,
        "2001:db8::1".parse().unwrap(),
        53,
        "2001:db8::2".parse().unwrap(),
        53,
    );
    assert_eq!(flow_hash(&f6), 0x8977_c9c4_c2d8_4d10);
}

#[test]
fn maglev_rejects_non_prime_sizes() {
    for size in [65536u32, 1, 0] {
        let cfg = SchedConfig { maglev_table_size: size, ..SchedConfig::default() };
        assert!(matches!(Service::new("maglev", cfg), Err(SchedError::BadTableSize { .. })), "{size}");
    }
    let cfg = SchedConfig { maglev_table_size: 7, ..SchedConfig::default() };
    assert!(Service::new("maglev", cfg).is_ok());
}

// ---------------------------------------------------------------- registry

#[test]
fn registry_has_every_name_and_rejects_unknown() {
    let names: Vec<_> = registry::names().collect();
    assert_eq!(
        names,
        [
            "rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "twos", "sh", "dh", "mh", "maglev", "ring", "hrw",
            "swrr", "p2c", "random"
        ]
    );
    for n in &names {
        let s = Service::new(n, SchedConfig::default()).unwrap();
        assert_eq!(&*s.scheduler_name(), *n);
        // An empty service never picks and never panics.
        assert_eq!(pick(&s, &tcp_from("192.0.2.1", 1)), "-");
    }
    let err = Service::new("lblc", SchedConfig::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\"lblc\"") && msg.contains("wlc") && msg.contains("maglev"), "{msg}");
}

#[test]
fn duplicate_and_missing_destinations_are_errors() {
    let s = service("wlc", SchedConfig::default(), &[(A, 80, 1)]);
    assert!(matches!(s.add(DestConfig::new(ip(A), 80)), Err(SchedError::DestExists(_))));
    assert!(s.add(DestConfig::new(ip(A), 81)).is_ok());
    assert!(matches!(s.remove(ip(B), 80), Err(SchedError::NoSuchDest(_))));
    assert!(matches!(s.edit(DestConfig::new(ip(B), 80)), Err(SchedError::NoSuchDest(_))));
    let removed = s.remove(ip(A), 80).unwrap();
    assert!(!removed.is_available());
}
