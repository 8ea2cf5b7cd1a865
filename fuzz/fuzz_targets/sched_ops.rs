//! `sched_ops`: an arbitrary sequence of add / remove / reweight / threshold / overload /
//! connection-count changes and picks on a service scheduled by any scheduler of
//! `lb_sched::registry::names()` (with any `-b` flags, sh table bits, mh and maglev table sizes,
//! and scheduler switches mid-sequence).
//!
//! Asserts: no panic; every pick, through `Service::pick`, a `ServiceReader` and a snapshot,
//! returns `None` or an eligible destination (weight > 0, not overloaded) that is in the
//! service's current list.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arbitrary::Arbitrary;
use lb_sched::{mh, registry, DestConfig, Destination, Flow, Protocol, SchedConfig, SchedFlags, Service, SplitMix64};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Setup {
    sched: u8,
    flags: u32,
    sh_table_bits: u8,
    mh_table: u8,
    maglev_table: u8,
    seed: u64,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Add {
        host: u8,
        port: u8,
        v6: bool,
        weight: u16,
        upper: u8,
        lower: u8,
    },
    Remove(u8),
    Reweight {
        index: u8,
        weight: u16,
    },
    Thresholds {
        index: u8,
        upper: u8,
        lower: u8,
    },
    Overload {
        index: u8,
        on: bool,
    },
    /// A connection bound to / leaving / changing state on a destination, as a tracker does.
    Bind {
        index: u8,
        active: bool,
    },
    Unbind {
        index: u8,
        active: bool,
    },
    Moved {
        index: u8,
        now_active: bool,
    },
    Pick {
        client: [u8; 16],
        v6: bool,
        sport: u16,
        dport: u16,
        udp: bool,
    },
    SetScheduler(u8),
}

fn config(s: &Setup) -> SchedConfig {
    const MAGLEV: [u32; 9] = [0, 1, 2, 4, 7, 13, 251, 1021, 4093];
    let mh_sizes: Vec<u32> = mh::PRIMES.iter().copied().chain([0, 4094]).collect();
    SchedConfig {
        flags: SchedFlags(s.flags),
        sh_table_bits: s.sh_table_bits,
        mh_table_size: mh_sizes[usize::from(s.mh_table) % mh_sizes.len()],
        maglev_table_size: MAGLEV[usize::from(s.maglev_table) % MAGLEV.len()],
        random: Arc::new(SplitMix64::new(s.seed)),
    }
}

fn nth(svc: &Service, i: u8) -> Option<Arc<Destination>> {
    let list = svc.destinations();
    list.get(usize::from(i) % list.len().max(1)).cloned()
}

fn edit(svc: &Service, d: &Destination, weight: u32, upper: u32, lower: u32) {
    let cfg = DestConfig::new(d.addr(), d.port()).fwd(d.fwd()).weight(weight).thresholds(upper, lower);
    let _ = svc.edit(cfg);
}

/// A picked destination must be eligible and in the current list.
fn assert_pick_ok(svc: &Service, d: Option<&Arc<Destination>>, how: &str) {
    let Some(d) = d else { return };
    assert!(d.is_eligible(), "{how} picked an ineligible destination: {d:?} ({})", svc.scheduler_name());
    assert!(d.is_available(), "{how} picked a removed destination: {d:?}");
    assert!(svc.destinations().iter().any(|x| Arc::ptr_eq(x, d)), "{how} picked a destination not in the list");
}

fuzz_target!(|input: (Setup, Vec<Op>)| {
    let (setup, ops) = input;
    let names: Vec<&str> = registry::names().collect();
    let cfg = config(&setup);
    let Ok(svc) = Service::new(names[usize::from(setup.sched) % names.len()], cfg.clone()) else { return };
    let mut reader = svc.reader();
    for op in ops.into_iter().take(200) {
        match op {
            Op::Add { host, port, v6, weight, upper, lower } => {
                let addr = if v6 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(host)))
                } else {
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, host))
                };
                let d = DestConfig::new(addr, u16::from(port % 4))
                    .weight(u32::from(weight))
                    .thresholds(u32::from(upper), u32::from(lower));
                let _ = svc.add(d);
            }
            Op::Remove(i) => {
                if let Some(d) = nth(&svc, i) {
                    let _ = svc.remove(d.addr(), d.port());
                }
            }
            Op::Reweight { index, weight } => {
                if let Some(d) = nth(&svc, index) {
                    edit(&svc, &d, u32::from(weight), d.u_threshold(), d.l_threshold());
                }
            }
            Op::Thresholds { index, upper, lower } => {
                if let Some(d) = nth(&svc, index) {
                    edit(&svc, &d, d.weight(), u32::from(upper), u32::from(lower));
                }
            }
            Op::Overload { index, on } => nth(&svc, index).into_iter().for_each(|d| d.set_overloaded(on)),
            Op::Bind { index, active } => nth(&svc, index).into_iter().for_each(|d| d.bind_conn(active)),
            Op::Unbind { index, active } => nth(&svc, index).into_iter().for_each(|d| d.unbind_conn(active)),
            Op::Moved { index, now_active } => nth(&svc, index).into_iter().for_each(|d| d.conn_moved(now_active)),
            Op::Pick { client, v6, sport, dport, udp } => {
                let proto = if udp { Protocol::Udp } else { Protocol::Tcp };
                let flow = if v6 {
                    Flow::v6(proto, Ipv6Addr::from(client), sport, "2001:db8:100::1".parse().unwrap(), dport)
                } else {
                    let c = Ipv4Addr::new(client[0], client[1], client[2], client[3]);
                    Flow::v4(proto, c, sport, Ipv4Addr::new(198, 51, 100, 1), dport)
                };
                assert_pick_ok(&svc, svc.pick(&flow).as_ref(), "Service::pick");
                let picked = reader.pick(&flow).cloned();
                assert_pick_ok(&svc, picked.as_ref(), "ServiceReader::pick");
                let snap = svc.snapshot();
                assert_pick_ok(&svc, snap.pick(&flow), "Snapshot::pick");
            }
            Op::SetScheduler(s) => {
                let _ = svc.set_scheduler(names[usize::from(s) % names.len()], cfg.clone());
            }
        }
    }
});
