//! `conntrack_ops`: an arbitrary sequence of operations on a `ConnTable` and its service:
//! client packets (any TCP flags, TCP / UDP / ICMP, IPv4 / IPv6, two VIPs, alone or in a batch),
//! replies (by the real server's tuple or by the client's), lookups, time steps (small and
//! large), expiry passes, and destination add / remove / quiesce / reweight, under any of the
//! tracker's knobs (capacity, shards, sloppy_tcp, secure_tcp, conn_reuse_mode, expire_nodest_conn,
//! expire_quiescent_template, persistence, one-packet, catch-all, per-state timeouts), with any
//! scheduler and forwarding method.
//!
//! Asserts: no panic; after every step, each destination's active / inactive counters equal what
//! the table holds (`for_each`, `State::is_active`), its persistence counters sum to the
//! templates held, the per-state counts match the contents, no connection is in state NONE and
//! the table holds at most its capacity; after every expiry pass no connection is left past its
//! deadline (`last_seen + timeout > now` for every one).
#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use lb_conntrack::{Config, ConnInfo, ConnTable, Persistence, ServiceParams, ShardLock, State, Timeouts};
use lb_sched::{
    registry, DestConfig, DestId, Destination, Flow, ForwardMethod, Protocol, SchedConfig, Service, Timestamp,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Setup {
    sched: u8,
    fwd: u8,
    capacity: u8,
    /// Lock shards per family: 1, 2, 4 or 8 (bits 0-1); bit 2: the operations go to a partition
    /// of the table (one thread's, no lock) instead of the shared table.
    shards: u8,
    sloppy_tcp: bool,
    secure_tcp: bool,
    conn_reuse_mode: u8,
    expire_nodest_conn: bool,
    expire_quiescent_template: bool,
    persistence: Option<(u16, u8, u8)>,
    one_packet: bool,
    catch_all: bool,
    /// Per-state timeouts in seconds (IPVS's defaults when absent).
    timeouts: Option<[u16; 12]>,
    start: u64,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Proto {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Pkt {
    client: u8,
    port: u8,
    proto: Proto,
    v6: bool,
    vip: bool,
    flags: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A client packet.
    In(Pkt),
    /// Client packets through `input_batch`.
    Batch(Vec<Pkt>),
    /// A reply to the connection of this client packet (or to no connection).
    Out {
        pkt: Pkt,
        by_client: bool,
    },
    /// `lookup_in` and `lookup_out`.
    Lookup(Pkt),
    /// Time passes, in tens of milliseconds.
    Step(u16),
    /// Time passes, in seconds.
    Leap(u32),
    /// An expiry pass.
    Expire,
    Add {
        host: u8,
        v6: bool,
        fwd: u8,
    },
    Remove(u8),
    Edit {
        index: u8,
        weight: u8,
        upper: u8,
        lower: u8,
    },
}

fn fwd_method(b: u8) -> ForwardMethod {
    [ForwardMethod::Masq, ForwardMethod::DirectRoute, ForwardMethod::Tunnel][usize::from(b % 3)]
}

fn host(v6: bool, net: u8, h: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, u16::from(net), 0, 0, 0, 0, u16::from(h)))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, net, 0, h))
    }
}

fn flow(p: &Pkt) -> Flow {
    let proto = match p.proto {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
        Proto::Icmp if p.v6 => Protocol::Icmpv6,
        Proto::Icmp => Protocol::Icmp,
    };
    let ports = proto.has_ports();
    Flow {
        proto,
        src: host(p.v6, 200, p.client % 8),
        src_port: if ports { 1000 + u16::from(p.port % 4) } else { 0 },
        dst: host(p.v6, 100, 1 + u8::from(p.vip)),
        dst_port: if ports { 80 } else { 0 },
    }
}

/// The reply the real server of `c` sends.
fn reply(c: &ConnInfo) -> Flow {
    Flow { proto: c.proto, src: c.daddr, src_port: c.dport, dst: c.caddr, dst_port: c.cport }
}

/// Every invariant that holds between operations.
fn assert_consistent<L: ShardLock>(table: &ConnTable<L>, dests: &[Arc<Destination>], capacity: usize) {
    let mut by_dest: HashMap<DestId, (u32, u32)> = HashMap::new();
    let mut n = 0u64;
    table.for_each(|c| {
        assert_ne!(c.state, State::None, "a connection left in NONE: {c:?}");
        let e = by_dest.entry(c.dest).or_default();
        if c.state.is_active() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        n += 1;
    });
    for d in dests {
        let held = by_dest.get(&d.id()).copied().unwrap_or_default();
        assert_eq!((d.active_conns(), d.inactive_conns()), held, "counters of {d:?} vs the table");
    }
    let s = table.stats();
    assert_eq!(s.states.iter().sum::<u64>(), n, "per-state counts vs contents");
    assert_eq!(s.connections, n);
    let persist: u64 = dests.iter().map(|d| u64::from(d.persistent_conns())).sum();
    assert_eq!(persist, s.templates, "persistence counters vs templates");
    assert_eq!(s.connections + s.templates, table.len() as u64, "len vs contents");
    assert!(table.len() <= capacity, "{} held, capacity {capacity}", table.len());
}

fuzz_target!(|input: (Setup, Vec<Op>)| {
    let (setup, ops) = input;
    let names: Vec<&str> = registry::names().collect();
    let sched = names[usize::from(setup.sched) % names.len()];
    // Small mh / maglev tables: the scheduler only picks destinations here, and a 65537-slot
    // table rebuilt on every destination change would take most of the time.
    let sched_cfg = SchedConfig {
        mh_table_size: 251,
        maglev_table_size: 251,
        random: Arc::new(lb_sched::SplitMix64::new(7)),
        ..SchedConfig::default()
    };
    let svc = Service::new(sched, sched_cfg).expect("default scheduler configuration");
    let mut dests = Vec::new();
    for h in 1..=3 {
        dests.push(svc.add(DestConfig::new(host(false, 0, h), 80).fwd(fwd_method(setup.fwd))).unwrap());
    }
    let mut timeouts = Timeouts::default();
    if let Some(t) = setup.timeouts {
        for (s, secs) in State::ALL.into_iter().zip(t) {
            timeouts.set(s, Duration::from_secs(u64::from(secs)));
        }
    }
    let capacity = usize::from(setup.capacity);
    let shared = ConnTable::new(Config {
        max_connections: capacity,
        sloppy_tcp: setup.sloppy_tcp,
        secure_tcp: setup.secure_tcp,
        conn_reuse_mode: setup.conn_reuse_mode,
        expire_nodest_conn: setup.expire_nodest_conn,
        expire_quiescent_template: setup.expire_quiescent_template,
        timeouts,
        shards: 1 << (setup.shards % 4),
        hash_seed: Some(1),
    });
    let params = ServiceParams {
        persistence: setup.persistence.map(|(secs, v4_prefix, v6_prefix)| Persistence {
            timeout: Duration::from_secs(u64::from(secs)),
            v4_prefix,
            v6_prefix,
        }),
        one_packet: setup.one_packet,
        catch_all: setup.catch_all,
    };
    let now = Timestamp::from_nanos(setup.start);
    if setup.shards & 4 != 0 {
        let part = shared.partition();
        run(&part, &svc, &params, &mut dests, capacity, now, ops);
        assert_eq!(shared.len(), part.len(), "the table counts its partition's entries");
    } else {
        run(&shared, &svc, &params, &mut dests, capacity, now, ops);
    }
});

#[allow(clippy::too_many_arguments)]
fn run<L: ShardLock>(
    table: &ConnTable<L>,
    svc: &Service,
    params: &ServiceParams,
    dests: &mut Vec<Arc<Destination>>,
    capacity: usize,
    mut now: Timestamp,
    ops: Vec<Op>,
) {
    for op in ops.into_iter().take(256) {
        match op {
            Op::In(p) => {
                let _ = table.input(now, &flow(&p), p.flags, svc, params);
            }
            Op::Batch(pkts) => {
                let batch: Vec<(Flow, u8)> = pkts.iter().take(80).map(|p| (flow(p), p.flags)).collect();
                let mut out = vec![lb_conntrack::InVerdict::Refused; batch.len()];
                table.input_batch(now, &batch, svc, params, &mut out);
            }
            Op::Out { pkt, by_client } => {
                let f = flow(&pkt);
                match table.lookup_in(now, &f) {
                    Some(_) if by_client => {
                        let _ = table.output_for_client(now, &f, pkt.flags);
                    }
                    Some(c) => {
                        let _ = table.output(now, &reply(&c), pkt.flags);
                    }
                    // A reply no connection expects, from the first real server.
                    None => {
                        let r = Flow { src: host(pkt.v6, 0, 1), src_port: 80, ..f.reversed() };
                        let _ = table.output(now, &r, pkt.flags);
                    }
                }
            }
            Op::Lookup(p) => {
                let f = flow(&p);
                if let Some(c) = table.lookup_in(now, &f) {
                    assert!(c.last_seen + c.timeout > now, "lookup_in returned a connection past its deadline");
                    let _ = table.lookup_out(now, &reply(&c));
                }
            }
            Op::Step(t) => now = now.saturating_add(Duration::from_millis(10 * u64::from(t))),
            Op::Leap(s) => now = now.saturating_add(Duration::from_secs(u64::from(s))),
            Op::Expire => {
                table.expire(now);
                table.for_each(|c| {
                    assert!(c.last_seen + c.timeout > now, "outlived its timeout after expire({now}): {c:?}");
                });
            }
            Op::Add { host: h, v6, fwd } => {
                if let Ok(d) = svc.add(DestConfig::new(host(v6, 1, h), 80).fwd(fwd_method(fwd))) {
                    // A removed destination comes back from the trash as itself: once here.
                    if !dests.iter().any(|x| Arc::ptr_eq(x, &d)) {
                        dests.push(d);
                    }
                }
            }
            Op::Remove(i) => {
                let list = svc.destinations();
                if let Some(d) = list.get(usize::from(i) % list.len().max(1)) {
                    let _ = svc.remove(d.addr(), d.port());
                }
            }
            Op::Edit { index, weight, upper, lower } => {
                let list = svc.destinations();
                if let Some(d) = list.get(usize::from(index) % list.len().max(1)) {
                    let cfg = DestConfig::new(d.addr(), d.port())
                        .fwd(d.fwd())
                        .weight(u32::from(weight % 8))
                        .thresholds(u32::from(upper % 8), u32::from(lower % 8));
                    let _ = svc.edit(cfg);
                }
            }
        }
        assert_consistent(table, dests, capacity);
    }
}
