//! Expiry cost, the SYN-flood policy and concurrent use.

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use lb_conntrack::{Config, ConnTable, InVerdict, ServiceParams, State};
use lb_sched::{Flow, ForwardMethod, Protocol, TcpFlags, Timestamp};

const P: ServiceParams = ServiceParams { persistence: None, one_packet: false, catch_all: false };

fn client(i: u32, port: u16) -> Flow {
    Flow::v4(Protocol::Tcp, Ipv4Addr::from(0xc000_0000 + i), port, Ipv4Addr::new(198, 51, 100, 1), 80)
}

#[test]
fn an_expiry_pass_visits_what_is_due_not_the_table() {
    let svc = service("wlc", 4, ForwardMethod::DirectRoute);
    let tb = ConnTable::new(Config { hash_seed: Some(3), ..Config::default() });
    // 20,000 established connections (900 s) and 100 half-open ones (SYN_RECV, 60 s).
    for i in 0..20_000 {
        fwd(tb.input(t(1.0), &client(i, 1000), TcpFlags::SYN, &svc, &P));
        fwd(tb.input(t(1.0), &client(i, 1000), TcpFlags::ACK, &svc, &P));
    }
    for i in 0..100 {
        fwd(tb.input(t(1.0), &client(100_000 + i, 2000), TcpFlags::SYN, &svc, &P));
    }
    // Nothing due: an expiry pass at 30 s visits nothing at all.
    assert_eq!(tb.expire(t(30.0)).visited, 0);
    // At 61 s exactly the 100 half-open connections are due.
    let st = tb.expire(t(61.0));
    assert_eq!(st.expired, 100);
    assert_eq!(st.visited, 100, "visited entries beyond the due ones");
    assert_eq!(tb.len(), 20_000);
    // 10 of the established ones close (FIN_WAIT in DR, 120 s) and are due at 200 s.
    for i in 0..10 {
        fwd(tb.input(t(80.0), &client(i, 1000), TcpFlags::FIN | TcpFlags::ACK, &svc, &P));
    }
    let st = tb.expire(t(200.0));
    assert_eq!((st.expired, st.visited), (10, 10));
    // A connection that keeps talking is visited once at its old deadline and moved on.
    fwd(tb.input(t(500.0), &client(10, 1000), TcpFlags::ACK, &svc, &P));
    let st = tb.expire(t(901.0));
    assert_eq!(st.expired, 20_000 - 10 - 1);
    assert_eq!(st.visited, 20_000 - 10);
    assert_eq!(tb.len(), 1);
    assert_counters_match(&tb, &svc.destinations());
}

#[test]
fn a_syn_flood_of_ten_times_the_capacity_evicts_no_established_connection() {
    let svc = service("wlc", 4, ForwardMethod::DirectRoute);
    let cap = 10_000;
    let tb = ConnTable::new(Config { max_connections: cap, hash_seed: Some(9), ..Config::default() });
    let established = 4_000u32;
    for i in 0..established {
        fwd(tb.input(t(1.0), &client(i, 1000), TcpFlags::SYN, &svc, &P));
        fwd(tb.input(t(1.0), &client(i, 1000), TcpFlags::ACK, &svc, &P));
    }
    // 100,000 SYNs from pseudo-random sources and ports.
    let mut x = 0x1234_5678_9abc_def0u64;
    let (mut refused, mut forwarded) = (0u64, 0u64);
    for _ in 0..10 * cap {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f =
            Flow::v4(Protocol::Tcp, Ipv4Addr::from((x >> 32) as u32 | 1), x as u16, Ipv4Addr::new(198, 51, 100, 1), 80);
        match tb.input(t(2.0), &f, TcpFlags::SYN, &svc, &P) {
            InVerdict::Forward(_) => forwarded += 1,
            InVerdict::Refused => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(tb.len() <= cap);
    let s = tb.stats();
    assert_eq!(s.states[State::Established as usize], u64::from(established), "an established connection was evicted");
    for i in 0..established {
        assert_eq!(tb.lookup_in(t(2.0), &client(i, 1000)).map(|c| c.state), Some(State::Established));
    }
    // The flood only displaced its own kind, and everything refused or evicted was counted.
    assert_eq!(forwarded + refused, 10 * cap as u64);
    assert_eq!(s.refused, refused);
    assert!(s.evicted > 0);
    assert_eq!(s.created, u64::from(established) + forwarded);
    assert_eq!(s.created - s.evicted, tb.len() as u64);
    assert_counters_match(&tb, &svc.destinations());
}

#[test]
fn threads_update_and_insert_while_one_expires() {
    let svc = Arc::new(service("wlc", 8, ForwardMethod::Masq));
    let tb = Arc::new(ConnTable::new(Config { hash_seed: Some(5), ..Config::default() }));
    let clock = Arc::new(AtomicU64::new(1_000_000_000));
    let stop = Arc::new(AtomicBool::new(false));
    let per_thread = 40_000u32;
    let workers: Vec<_> = (0..2u32)
        .map(|w| {
            let (svc, tb, clock) = (svc.clone(), tb.clone(), clock.clone());
            std::thread::spawn(move || {
                let mut created = 0u64;
                let deadline = Instant::now() + Duration::from_secs(60);
                for i in 0..per_thread {
                    if Instant::now() > deadline {
                        break;
                    }
                    let now = Timestamp::from_nanos(clock.fetch_add(1000, SeqCst));
                    // Each thread its own clients; connections of 500 clients at a time.
                    let f = client(w * 1_000_000 + i % 5000, 1000 + (i / 5000) as u16);
                    if let InVerdict::Forward(c) = tb.input(now, &f, TcpFlags::SYN, &svc, &P) {
                        created += u64::from(c.created);
                        let _ = tb.output(now, &reply(&c), TcpFlags::SYN | TcpFlags::ACK);
                        let _ = tb.input(now, &f, TcpFlags::ACK, &svc, &P);
                        if i % 3 == 0 {
                            let _ = tb.input(now, &f, TcpFlags::FIN | TcpFlags::ACK, &svc, &P);
                        }
                    }
                }
                created
            })
        })
        .collect();
    let expirer = {
        let (tb, clock, stop) = (tb.clone(), clock.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut expired, mut passes) = (0u64, 0u64);
            while !stop.load(SeqCst) && passes < 1_000_000 {
                // Jump the clock now and then so some connections really expire meanwhile.
                if passes % 50 == 0 {
                    clock.fetch_add(30_000_000_000, SeqCst);
                }
                expired += tb.expire(Timestamp::from_nanos(clock.load(SeqCst))).expired;
                passes += 1;
            }
            (expired, passes)
        })
    };
    let created: u64 = workers.into_iter().map(|h| h.join().unwrap()).sum();
    stop.store(true, SeqCst);
    let (expired, passes) = expirer.join().unwrap();
    assert!(passes > 10, "the expirer ran {passes} passes");
    assert!(expired > 0, "nothing expired while the workers ran");
    // Nothing lost: what was created is either still here or was expired.
    let s = tb.stats();
    assert_eq!(s.created, created);
    assert_eq!(s.created, s.expired + tb.len() as u64 + s.evicted);
    assert_counters_match(&tb, &svc.destinations());
    // And at the end of time, every counter goes back to zero.
    tb.expire(Timestamp::from_nanos(clock.load(SeqCst) + 10_000 * 1_000_000_000));
    assert!(tb.is_empty());
    assert!(svc.destinations().iter().all(|d| d.active_conns() == 0 && d.inactive_conns() == 0));
}
