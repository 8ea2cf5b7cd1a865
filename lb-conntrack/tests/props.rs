//! Property tests: after any sequence of packets, expiries and destination changes, each
//! destination's counters equal what the table holds, and nothing outlives its timeout.

mod common;

use std::time::Duration;

use common::*;
use lb_conntrack::{Config, ConnTable, Persistence, ServiceParams, ShardLock, State};
use lb_sched::{DestConfig, ForwardMethod, Service, TcpFlags, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[derive(Debug, Clone)]
enum Op {
    In { client: u8, port: u8, udp: bool, flags: u8 },
    Out { client: u8, port: u8, flags: u8 },
    Advance(u16),
    Expire,
    Quiesce(u8),
    Remove(u8),
    Add(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let fl = prop_oneof![
        Just(TcpFlags::SYN),
        Just(TcpFlags::ACK),
        Just(TcpFlags::FIN | TcpFlags::ACK),
        Just(TcpFlags::RST),
        Just(TcpFlags::SYN | TcpFlags::ACK),
        Just(0u8)
    ];
    prop_oneof![
        6 => (0u8..6, 0u8..4, any::<bool>(), fl.clone()).prop_map(|(client, port, udp, flags)| Op::In { client, port, udp, flags }),
        3 => (0u8..6, 0u8..4, fl).prop_map(|(client, port, flags)| Op::Out { client, port, flags }),
        2 => (0u16..400).prop_map(Op::Advance),
        1 => Just(Op::Expire),
        1 => (0u8..4).prop_map(Op::Quiesce),
        1 => (0u8..4).prop_map(Op::Remove),
        1 => (0u8..4).prop_map(Op::Add),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn counters_equal_contents_and_nothing_outlives_its_timeout(
        ops in prop::collection::vec(op(), 1..120),
        masq in any::<bool>(),
        knobs in (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..4, any::<bool>()),
        persistent in any::<bool>(),
        cap in prop_oneof![Just(4usize), Just(1000usize)],
        partition in any::<bool>(),
    ) {
        let fwdm = if masq { ForwardMethod::Masq } else { ForwardMethod::DirectRoute };
        let svc = service("wlc", 3, fwdm);
        let (sloppy, secure, nodest, reuse, quiescent_tmpl) = knobs;
        let cfg = Config {
            max_connections: cap,
            sloppy_tcp: sloppy,
            secure_tcp: secure,
            expire_nodest_conn: nodest,
            conn_reuse_mode: reuse,
            expire_quiescent_template: quiescent_tmpl,
            hash_seed: Some(1),
            ..Config::default()
        };
        let params = ServiceParams {
            persistence: persistent.then(|| Persistence { timeout: Duration::from_secs(100), v4_prefix: 31, v6_prefix: 128 }),
            ..ServiceParams::default()
        };
        // The same properties for a partition (one worker's table) as for the shared table.
        if partition {
            let parent = ConnTable::new(cfg);
            run(&parent.partition(), ops, &svc, &params, cap, fwdm)?;
            prop_assert_eq!(parent.len(), 0);
        } else {
            run(&ConnTable::new(cfg), ops, &svc, &params, cap, fwdm)?;
        }
    }
}

fn run<L: ShardLock>(
    tb: &ConnTable<L>,
    ops: Vec<Op>,
    svc: &Service,
    params: &ServiceParams,
    cap: usize,
    fwdm: ForwardMethod,
) -> Result<(), TestCaseError> {
    let mut all_dests = svc.destinations();
    let mut now = 1_000_000_000u64;
    let max_timeout = Duration::from_secs(900).as_nanos() as u64;
    for op in ops {
        match op {
            Op::In { client, port, udp: u, flags } => {
                let c = format!("192.0.2.{client}");
                let f = if u { udp(&c, 1000 + u16::from(port)) } else { tcp(&c, 1000 + u16::from(port)) };
                let _ = tb.input(Timestamp::from_nanos(now), &f, flags, svc, params);
            }
            Op::Out { client, port, flags } => {
                let f = tcp(&format!("192.0.2.{client}"), 1000 + u16::from(port));
                if let Some(c) = tb.lookup_in(Timestamp::from_nanos(now), &f) {
                    let _ = tb.output(Timestamp::from_nanos(now), &reply(&c), flags);
                }
            }
            Op::Advance(s) => now += u64::from(s) * 1_000_000_000,
            Op::Expire => {
                tb.expire(Timestamp::from_nanos(now));
                // No connection idle past its state's timeout survives an expiry pass.
                let mut late = Vec::new();
                tb.for_each(|c| {
                    if c.last_seen + c.timeout <= Timestamp::from_nanos(now) {
                        late.push(*c);
                    }
                });
                prop_assert!(late.is_empty(), "outlived their timeout: {:?}", late);
            }
            Op::Quiesce(i) => {
                if let Some(d) = svc.destinations().get(i as usize) {
                    let _ = svc.edit(DestConfig::new(d.addr(), d.port()).weight(0).fwd(fwdm));
                }
            }
            Op::Remove(i) => {
                if let Some(d) = svc.destinations().get(i as usize) {
                    let _ = svc.remove(d.addr(), d.port());
                }
            }
            Op::Add(i) => {
                if let Ok(d) = svc.add(DestConfig::new(ip(&format!("10.0.1.{i}")), 80).fwd(fwdm)) {
                    // A removed destination comes back from the trash as itself: once here.
                    if !all_dests.iter().any(|x| std::sync::Arc::ptr_eq(x, &d)) {
                        all_dests.push(d);
                    }
                }
            }
        }
        prop_assert!(tb.len() <= cap);
        assert_counters_match(tb, &all_dests);
        // Templates are counted in persist counters.
        let s = tb.stats();
        let persist: u64 = all_dests.iter().map(|d| u64::from(d.persistent_conns())).sum();
        prop_assert_eq!(persist, s.templates);
        prop_assert_eq!(s.connections + s.templates, tb.len() as u64);
    }
    // Far in the future, after one pass, everything is gone (templates included) and every
    // counter is back to zero.
    tb.expire(Timestamp::from_nanos(now + 3 * max_timeout));
    tb.expire(Timestamp::from_nanos(now + 4 * max_timeout));
    prop_assert_eq!(tb.len(), 0);
    for d in &all_dests {
        prop_assert_eq!((d.active_conns(), d.inactive_conns(), d.persistent_conns()), (0, 0, 0));
    }
    prop_assert_eq!(tb.stats().states[State::None as usize], 0);
    Ok(())
}
