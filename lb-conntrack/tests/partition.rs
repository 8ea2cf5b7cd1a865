//! Partitions: a table one worker owns. It answers exactly as the shared table does; the
//! partitions of one table share its bound and the destinations' counts, and each makes room
//! and expires within itself.

mod common;

use std::time::Duration;

use common::*;
use lb_conntrack::{Config, ConnTable, InVerdict, Partition, Persistence, ServiceParams, ShardLock, State};
use lb_sched::{DestConfig, ForwardMethod, TcpFlags, Timestamp};
use proptest::prelude::*;

fn send<T: Send>() {}
fn sync<T: Sync>() {}

#[test]
fn a_partition_is_send_and_the_shared_table_is_sync() {
    send::<Partition>();
    sync::<ConnTable>();
    send::<ConnTable>();
}

/// A verdict with the destination named by address (two tables' destinations are different
/// objects).
fn show(v: &InVerdict) -> String {
    match v {
        InVerdict::Forward(c) | InVerdict::OnePacket(c) | InVerdict::DestUnavailable(c) => format!(
            "{} {} {:?} {:?} created={} resched={} {}:{}",
            match v {
                InVerdict::Forward(_) => "fwd",
                InVerdict::OnePacket(_) => "one",
                _ => "unavail",
            },
            c.caddr,
            c.state,
            c.timeout,
            c.created,
            c.rescheduled,
            c.daddr,
            c.dport
        ),
        other => format!("{other:?}"),
    }
}

fn contents<L: ShardLock>(tb: &ConnTable<L>) -> Vec<String> {
    let mut v = Vec::new();
    tb.for_each(|c| v.push(format!("{}:{} {:?} {} {:?}", c.caddr, c.cport, c.state, c.daddr, c.last_seen)));
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The same packets, expiries and destination changes through a shared table and through a
    /// partition (each with its own, identical service): the same verdicts, contents, counters
    /// and destination counts, packet by packet.
    #[test]
    fn a_partition_answers_as_the_shared_table_does(
        ops in prop::collection::vec((0u8..8, 0u8..3, 0u8..6, 0u16..200, 0u8..10), 1..150),
        masq in any::<bool>(),
        persistent in any::<bool>(),
        cap in prop_oneof![Just(5usize), Just(1000usize)],
        sched in prop_oneof![Just("wlc"), Just("rr"), Just("sh")],
    ) {
        let fwdm = if masq { ForwardMethod::Masq } else { ForwardMethod::DirectRoute };
        let cfg = Config { max_connections: cap, hash_seed: Some(3), shards: 2, ..Config::default() };
        let shared = ConnTable::new(cfg.clone());
        let parent = ConnTable::new(cfg);
        let part = parent.partition();
        let (s1, s2) = (service(sched, 3, fwdm), service(sched, 3, fwdm));
        let params = ServiceParams {
            persistence: persistent.then(|| Persistence { timeout: Duration::from_secs(60), v4_prefix: 30, v6_prefix: 128 }),
            ..ServiceParams::default()
        };
        let flags = [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::FIN | TcpFlags::ACK, TcpFlags::RST, TcpFlags::SYN | TcpFlags::ACK, 0];
        let mut now = 1_000_000_000u64;
        for (client, port, fl, dt, what) in ops {
            now += u64::from(dt) * 50_000_000;
            let at = Timestamp::from_nanos(now);
            let f = tcp(&format!("192.0.2.{client}"), 1000 + u16::from(port));
            let fl = flags[usize::from(fl)];
            match what {
                0..=5 => {
                    let a = shared.input(at, &f, fl, &s1, &params);
                    let b = part.input(at, &f, fl, &s2, &params);
                    prop_assert_eq!(show(&a), show(&b));
                }
                6 | 7 => {
                    let a = shared.lookup_in(at, &f).map(|c| shared.output(at, &reply(&c), fl));
                    let b = part.lookup_in(at, &f).map(|c| part.output(at, &reply(&c), fl));
                    prop_assert_eq!(format!("{a:?}").replace(char::is_numeric, ""), format!("{b:?}").replace(char::is_numeric, ""));
                }
                8 => {
                    prop_assert_eq!(shared.expire(at), part.expire(at));
                }
                _ => {
                    // Drain a destination in both services.
                    let i = usize::from(client % 3);
                    for s in [&s1, &s2] {
                        let d = &s.destinations()[i];
                        s.edit(DestConfig::new(d.addr(), d.port()).weight(0).fwd(fwdm)).unwrap();
                    }
                }
            }
            prop_assert_eq!(contents(&shared), contents(&part));
            prop_assert_eq!(shared.stats(), part.stats());
            prop_assert_eq!(shared.len(), part.len());
            prop_assert_eq!(parent.len(), part.len(), "the parent counts its partition's entries");
            let counts = |s: &lb_sched::Service| {
                s.destinations().iter().map(|d| (d.active_conns(), d.inactive_conns(), d.persistent_conns())).collect::<Vec<_>>()
            };
            prop_assert_eq!(counts(&s1), counts(&s2));
        }
    }
}

/// `n` connections of `client` from ports 1000.., completed (SYN then ACK: ESTABLISHED).
fn establish(tb: &Partition, svc: &lb_sched::Service, client: &str, n: u16, at: f64) {
    for p in 0..n {
        let f = tcp(client, 1000 + p);
        fwd(tb.input(t(at), &f, TcpFlags::SYN, svc, &ServiceParams::default()));
        let c = fwd(tb.input(t(at), &f, TcpFlags::ACK, svc, &ServiceParams::default()));
        assert_eq!(c.state, State::Established);
    }
}

#[test]
fn partitions_share_the_bound_and_the_destinations_counts() {
    let table = ConnTable::new(Config { max_connections: 8, hash_seed: Some(5), ..Config::default() });
    let (a, b) = (table.partition(), table.partition());
    let svc = service("wlc", 2, ForwardMethod::DirectRoute);
    establish(&a, &svc, "192.0.2.1", 5, 1.0);
    establish(&b, &svc, "192.0.2.2", 3, 1.0);
    assert_eq!((a.len(), b.len(), table.len()), (8, 8, 8), "one count for the table and its partitions");
    assert_eq!((a.stats().connections, b.stats().connections), (5, 3), "statistics are each partition's own");
    // wlc spread the 8 connections over both destinations, whichever partition made them.
    let active: Vec<u32> = svc.destinations().iter().map(|d| d.active_conns()).collect();
    assert_eq!(active, [4, 4]);
    // Full of established connections everywhere: a SYN is refused in either partition.
    let syn = |tb: &Partition, c: &str| tb.input(t(2.0), &tcp(c, 9), TcpFlags::SYN, &svc, &ServiceParams::default());
    assert!(matches!(syn(&a, "192.0.2.9"), InVerdict::Refused));
    assert!(matches!(syn(&b, "192.0.2.9"), InVerdict::Refused));
    // A's connections expire on A's clock; B's stay until B expires them.
    a.expire(t(1.0 + 901.0));
    assert_eq!((a.stats().connections, b.stats().connections, table.len()), (0, 3, 3));
    assert_eq!(svc.destinations().iter().map(|d| d.active_conns()).sum::<u32>(), 3);
    assert!(matches!(syn(&b, "192.0.2.9"), InVerdict::Forward(_)), "room made in A is room for B");
}

#[test]
fn a_full_partition_evicts_its_own_embryonic_connections_never_an_established_one() {
    let table = ConnTable::new(Config { max_connections: 4, hash_seed: Some(5), ..Config::default() });
    let (a, b) = (table.partition(), table.partition());
    let svc = service("rr", 2, ForwardMethod::DirectRoute);
    establish(&a, &svc, "192.0.2.1", 2, 1.0);
    // Two embryonic connections in B (a SYN each, never completed).
    for p in 0..2 {
        let c = fwd(b.input(t(1.0), &tcp("203.0.113.5", 2000 + p), TcpFlags::SYN, &svc, &ServiceParams::default()));
        assert_eq!(c.state, State::SynRecv);
    }
    assert_eq!(table.len(), 4);
    // A new SYN in B evicts one of B's embryonic connections.
    let c = fwd(b.input(t(2.0), &tcp("203.0.113.6", 3000), TcpFlags::SYN, &svc, &ServiceParams::default()));
    assert!(c.created);
    assert_eq!((b.stats().evicted, b.stats().connections, table.len()), (1, 2, 4));
    // A has only established connections and cannot reach B's: refused, and A's two stay.
    assert!(matches!(
        a.input(t(2.0), &tcp("203.0.113.7", 3000), TcpFlags::SYN, &svc, &ServiceParams::default()),
        InVerdict::Refused
    ));
    assert_eq!((a.stats().refused, a.stats().states[State::Established as usize]), (1, 2));
}

#[test]
fn a_persistent_clients_template_and_connections_live_in_its_partition() {
    let table = ConnTable::new(Config { hash_seed: Some(5), ..Config::default() });
    let (a, b) = (table.partition(), table.partition());
    let svc = service("rr", 3, ForwardMethod::DirectRoute);
    let params = ServiceParams {
        persistence: Some(Persistence { timeout: Duration::from_secs(300), v4_prefix: 32, v6_prefix: 128 }),
        ..ServiceParams::default()
    };
    // Every connection of 192.0.2.1 goes where its template says, in A.
    let first = fwd(a.input(t(1.0), &tcp("192.0.2.1", 1000), TcpFlags::SYN, &svc, &params)).daddr;
    for p in 1..6 {
        assert_eq!(fwd(a.input(t(1.0), &tcp("192.0.2.1", 1000 + p), TcpFlags::SYN, &svc, &params)).daddr, first);
    }
    assert_eq!((a.stats().templates, b.stats().templates), (1, 0));
    // B has no template for it: rr picks the next destination (a client split over two
    // partitions would lose its persistence, which is why steering keeps it on one worker).
    assert_ne!(fwd(b.input(t(1.0), &tcp("192.0.2.1", 2000), TcpFlags::SYN, &svc, &params)).daddr, first);
    assert_eq!(svc.destinations().iter().map(|d| d.persistent_conns()).sum::<u32>(), 2);
}

#[test]
fn a_dropped_partition_gives_back_its_room_and_its_destination_counts() {
    let table = ConnTable::new(Config { max_connections: 6, hash_seed: Some(5), ..Config::default() });
    let svc = service("wlc", 2, ForwardMethod::DirectRoute);
    let params = ServiceParams {
        persistence: Some(Persistence { timeout: Duration::from_secs(300), v4_prefix: 32, v6_prefix: 128 }),
        ..ServiceParams::default()
    };
    let a = table.partition();
    establish(&a, &svc, "192.0.2.1", 3, 1.0);
    fwd(a.input(t(1.0), &tcp("192.0.2.2", 7), TcpFlags::SYN, &svc, &params)); // a template and a SYN_RECV
    assert_eq!(table.len(), 5);
    let counts = || {
        svc.destinations()
            .iter()
            .map(|d| (d.active_conns(), d.persistent_conns()))
            .fold((0, 0), |s, x| (s.0 + x.0, s.1 + x.1))
    };
    assert_eq!(counts(), (4, 1));
    drop(a);
    assert_eq!((table.len(), counts()), (0, (0, 0)));
    // The room is there again for another partition.
    let b = table.partition();
    establish(&b, &svc, "192.0.2.3", 6, 2.0);
    assert_eq!(table.len(), 6);
}
