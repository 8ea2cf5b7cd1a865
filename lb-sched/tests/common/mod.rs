//! Helpers shared by lb-sched's integration tests.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;

use lb_sched::{DestConfig, Destination, Flow, Protocol, SchedConfig, Service};

/// Parses an address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A service whose list, in IPVS order (newest first), is `dests` as given: they are added in
/// reverse, exactly as `ipvsadm -a` would have to be run to produce that order.
pub fn service(sched: &str, cfg: SchedConfig, dests: &[(&str, u16, u32)]) -> Service {
    let s = Service::new(sched, cfg).unwrap();
    for &(a, p, w) in dests.iter().rev() {
        s.add(DestConfig::new(ip(a), p).weight(w)).unwrap();
    }
    let order: Vec<String> = s.destinations().iter().map(|d| d.addr().to_string()).collect();
    let want: Vec<String> = dests.iter().map(|d| ip(d.0).to_string()).collect();
    assert_eq!(order, want, "list order must be the order given");
    s
}

/// A TCP flow from `src:sport` to a fixed VIP of the same family, port 80.
pub fn tcp_from(src: &str, sport: u16) -> Flow {
    let src = ip(src);
    let dst = match src {
        IpAddr::V4(_) => ip("198.51.100.1"),
        IpAddr::V6(_) => ip("2001:db8:ffff::1"),
    };
    Flow { proto: Protocol::Tcp, src, dst, src_port: sport, dst_port: 80 }
}

/// A TCP flow from a fixed client to `dst:80`.
pub fn tcp_to(dst: &str) -> Flow {
    let dst = ip(dst);
    let src = match dst {
        IpAddr::V4(_) => ip("192.0.2.99"),
        IpAddr::V6(_) => ip("2001:db8:eeee::99"),
    };
    Flow { proto: Protocol::Tcp, src, dst, src_port: 33333, dst_port: 80 }
}

/// The address (as text) picked for `flow`, or "-" for none.
pub fn pick(s: &Service, flow: &Flow) -> String {
    s.pick(flow).map(|d| d.addr().to_string()).unwrap_or_else(|| "-".into())
}

/// The destination with address `addr`.
pub fn dest(s: &Service, addr: &str) -> Arc<Destination> {
    s.destinations().into_iter().find(|d| d.addr() == ip(addr)).unwrap()
}

/// Sets a destination's counters to `active` active and `inactive` inactive connections.
pub fn set_conns(d: &Destination, active: u32, inactive: u32) {
    for _ in 0..active + inactive {
        d.bind_conn(false);
    }
    for _ in 0..active {
        d.conn_moved(true);
    }
    assert_eq!((d.active_conns(), d.inactive_conns()), (active, inactive));
}
