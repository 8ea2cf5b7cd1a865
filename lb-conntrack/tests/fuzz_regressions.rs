//! Inputs the fuzz targets (`fuzz/`) found to break a promise of lb-conntrack, kept as tests.

use std::sync::mpsc;
use std::time::Duration;

use lb_conntrack::{Config, ConnTable, InVerdict, Persistence, ServiceParams, State};
use lb_sched::{DestConfig, Flow, Protocol, SchedConfig, Service, TcpFlags, Timestamp};

fn service() -> Service {
    let s = Service::new("rr", SchedConfig::default()).unwrap();
    s.add(DestConfig::new("10.0.0.1".parse().unwrap(), 80)).unwrap();
    s
}

fn flow() -> Flow {
    Flow::v4(Protocol::Tcp, "192.0.2.7".parse().unwrap(), 40000, "198.51.100.1".parse().unwrap(), 80)
}

/// `conntrack_ops`, 2026-11-29: with timestamps counted from the Unix epoch (what replay takes
/// from captures), an expiry pass does not remove a connection whose deadline has passed: it
/// is removed up to a wheel turn (~18 minutes) late, and meanwhile its destination's counters
/// still count it. The tick of such a time (`ns >> 27`, about 1.27e10 in 2023) does not fit the
/// entry's `u32` queued tick, so every entry is queued at the clamped tick `NEAR - 1`, i.e. in
/// one wheel bucket that a pass only visits once per turn.
#[test]
fn expiry_is_on_time_with_epoch_timestamps() {
    let svc = service();
    let table = ConnTable::new(Config { hash_seed: Some(1), ..Config::default() });
    let t0 = Timestamp::from_secs(1_700_000_000);
    let InVerdict::Forward(c) = table.input(t0, &flow(), TcpFlags::SYN, &svc, &ServiceParams::default()) else {
        panic!("the SYN is scheduled")
    };
    assert_eq!((c.state, c.timeout), (State::SynRecv, Duration::from_secs(60)));
    table.expire(t0 + Duration::from_secs(30));
    assert_eq!(table.len(), 1, "not due yet");
    table.expire(t0 + Duration::from_secs(61));
    let mut left = Vec::new();
    table.for_each(|c| left.push(*c));
    assert!(left.is_empty(), "past their deadline after expire: {left:?}");
    assert_eq!(svc.destinations()[0].active_conns(), 0);
}

/// `conntrack_ops`, 2026-11-29: `expire(now)` never returns when `now` is within 60 s of
/// `Timestamp::MAX` (e.g. `expire(Timestamp::MAX)` to flush a table) and a persistence template
/// still controls a connection: the template gets its 60 s of grace, `now + 60 s` saturates to
/// `now`, so it is due again at once and goes back into the near heap, forever (the
/// connections' releases, which would drop its control count, only happen after the loop).
#[test]
fn expire_at_the_end_of_time_returns_and_empties_the_table() {
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let svc = service();
        let table = ConnTable::new(Config { hash_seed: Some(1), ..Config::default() });
        let params = ServiceParams { persistence: Some(Persistence::default()), ..ServiceParams::default() };
        let t0 = Timestamp::from_secs(1_000);
        assert!(matches!(table.input(t0, &flow(), TcpFlags::SYN, &svc, &params), InVerdict::Forward(_)));
        table.expire(Timestamp::MAX);
        table.expire(Timestamp::MAX);
        done.send(table.len()).unwrap();
    });
    // The thread is left spinning if it does not answer; the test process ends anyway.
    match wait.recv_timeout(Duration::from_secs(20)) {
        Ok(len) => assert_eq!(len, 0, "everything expires at the end of time"),
        Err(_) => panic!("expire(Timestamp::MAX) did not return within 20 s"),
    }
}
