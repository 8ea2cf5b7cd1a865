//! Helpers shared by lb-conntrack's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::IpAddr;

use lb_conntrack::{ConnInfo, ConnTable, InVerdict, OutVerdict, ShardLock, State};
use lb_sched::{DestConfig, DestId, Flow, ForwardMethod, Protocol, SchedConfig, Service, Timestamp};

/// Parses an address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A service scheduled by `sched` with destinations 10.0.0.1.. (weight 1, port 80), `fwd`.
pub fn service(sched: &str, n: u32, fwd: ForwardMethod) -> Service {
    let s = Service::new(sched, SchedConfig::default()).unwrap();
    for i in (1..=n).rev() {
        s.add(DestConfig::new(ip(&format!("10.0.0.{i}")), 80).fwd(fwd)).unwrap();
    }
    s
}

/// A TCP flow from `client:cport` to the VIP 198.51.100.1:80.
pub fn tcp(client: &str, cport: u16) -> Flow {
    Flow { proto: Protocol::Tcp, src: ip(client), src_port: cport, dst: ip("198.51.100.1"), dst_port: 80 }
}

/// A UDP flow from `client:cport` to the VIP 198.51.100.1:53.
pub fn udp(client: &str, cport: u16) -> Flow {
    Flow { proto: Protocol::Udp, src: ip(client), src_port: cport, dst: ip("198.51.100.1"), dst_port: 53 }
}

/// The reply a real server sends for connection `c`.
pub fn reply(c: &ConnInfo) -> Flow {
    Flow { proto: c.proto, src: c.daddr, src_port: c.dport, dst: c.caddr, dst_port: c.cport }
}

/// Seconds as a timestamp.
pub fn t(secs: f64) -> Timestamp {
    Timestamp::from_nanos((secs * 1e9) as u64)
}

/// The connection of a Forward verdict (panics otherwise, naming the verdict).
pub fn fwd(v: InVerdict) -> ConnInfo {
    match v {
        InVerdict::Forward(c) => c,
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// The connection of an output Forward verdict.
pub fn out(v: OutVerdict) -> ConnInfo {
    match v {
        OutVerdict::Forward(c) => c,
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// Per destination: (active, inactive) as the table's contents say.
pub fn counts_from_table<L: ShardLock>(table: &ConnTable<L>) -> HashMap<DestId, (u32, u32)> {
    let mut m: HashMap<DestId, (u32, u32)> = HashMap::new();
    table.for_each(|c| {
        let e = m.entry(c.dest).or_default();
        if c.state.is_active() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    });
    m
}

/// Asserts that every destination's counters equal the table's contents.
pub fn assert_counters_match<L: ShardLock>(table: &ConnTable<L>, dests: &[std::sync::Arc<lb_sched::Destination>]) {
    let m = counts_from_table(table);
    for d in dests {
        let (a, i) = m.get(&d.id()).copied().unwrap_or_default();
        assert_eq!((d.active_conns(), d.inactive_conns()), (a, i), "destination {} counters vs table", d.addr());
    }
    let stats = table.stats();
    let by_state: u64 = stats.states.iter().sum();
    let mut n = 0u64;
    table.for_each(|_| n += 1);
    assert_eq!(by_state, n, "per-state counts vs contents");
    assert_eq!(stats.states[State::None as usize], 0, "no connection stays in NONE");
}
