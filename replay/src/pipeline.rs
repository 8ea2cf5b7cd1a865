//! The sans-IO pipeline: one frame in, one verdict out.
//!
//! ```text
//! parse ─► service lookup (VIP, port, protocol) ─► request or reply?
//!   request: conntrack input (hit: state transition; miss: may it open a connection? schedule,
//!            insert) ─► rewrite for the connection's method (NAT dnat / DR / TUN)
//!   reply:   DR/TUN: the director never sees it (replies_skipped); NAT: conntrack output with
//!            the real server's tuple, then SNAT back to the virtual service
//!   ICMP error about a connection: NAT rewrites its quoted header; DR/TUN forward it
//! ```
//!
//! The pipeline owns no clock, socket or thread: the caller gives `now` (a capture's timestamp
//! or a monotonic clock) and a frame buffer with headroom, and gets an [`Outcome`]. Every frame
//! ends in exactly one outcome; every drop has a reason. ICMP errors the director builds (time
//! exceeded, fragmentation needed / packet too big) and IPv4 fragments go to the caller's sink.
//!
//! The shared part ([`Pipeline`]: services, connection table, next hops) is `Sync`; each worker
//! thread processes through its own [`Worker`], whose counters are merged at the end.

use std::collections::HashMap;

use ahash::AHashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use lb_conntrack::{ConnInfo, ConnTable, InVerdict, NotScheduled, OutVerdict, ServiceParams};
use lb_rewrite::{
    build_time_exceeded, build_too_big, dnat, dr, nat_icmp_in, nat_icmp_out, parse, snat, tun, Encap, FrameBuf,
    MacAddr, NextHop, Packet, ReplySource, RewriteError, Tunnel, Verdict,
};
use lb_sched::{DestConfig, DestId, Destination, Flow, ForwardMethod, Protocol, SchedConfig, Service, Timestamp};
use parking_lot::Mutex;

use crate::config::{Backend, Neighbours, ServiceSpec, Vip};

/// Everything the pipeline is built from.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Virtual services.
    pub services: Vec<ServiceSpec>,
    /// The forwarding method of backends that do not name one (`--mode`).
    pub mode: Option<ForwardMethod>,
    /// Connection-table configuration (IPVS's knobs).
    pub conntrack: lb_conntrack::Config,
    /// IP MTU of the egress link.
    pub mtu: u16,
    /// TUN outer source addresses (one per family at most).
    pub tun_src: Vec<IpAddr>,
    /// Static next hops (`--neigh`).
    pub neigh: Neighbours,
    /// The director's MAC; `None`: the MAC the capture's frames were sent to.
    pub director_mac: Option<MacAddr>,
    /// Backends that `--at add=` events will add (their MACs are resolved up front).
    pub future_backends: Vec<Backend>,
}

/// A configuration the pipeline cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Something is missing or inconsistent; the message says what.
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(msg: String) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(msg))
}

/// A live virtual service.
#[derive(Debug)]
pub struct RtService {
    /// What it takes.
    pub vip: Vip,
    /// Its destinations and scheduler.
    pub svc: Service,
    /// Conntrack parameters (persistence, one-packet, catch-all).
    pub params: ServiceParams,
    /// Whether any backend is forwarded by NAT (replies pass the director).
    any_nat: AtomicBool,
}

/// The shared part of the pipeline.
#[derive(Debug)]
pub struct Pipeline {
    services: Vec<RtService>,
    by_vip: AHashMap<(u8, IpAddr, u16), usize>,
    any: [Option<usize>; 2],
    /// The connection table.
    pub table: ConnTable,
    macs: AHashMap<IpAddr, MacAddr>,
    gue: AHashMap<IpAddr, u16>,
    mtu: u16,
    tun_src: [Option<IpAddr>; 2],
    director_mac: Option<MacAddr>,
    mode: Option<ForwardMethod>,
    removed: Mutex<Vec<(usize, Arc<Destination>)>>,
}

/// What happened to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Rewritten in place: send the buffer's frame.
    Forwarded,
    /// Forwarded as IPv4 fragments, already handed to the sink.
    Fragmented(u16),
    /// A reply of a DR/TUN connection: the director never sees those.
    ReplySkipped,
    /// Dropped, for this reason (an ICMP reply may have gone to the sink).
    Dropped(&'static str),
}

/// Per-destination counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestCounters {
    /// Connections scheduled to it.
    pub connections: u64,
    /// Packets forwarded toward it (requests).
    pub packets_in: u64,
    /// Bytes of those frames.
    pub bytes_in: u64,
    /// Replies of its connections forwarded toward clients (NAT).
    pub packets_out: u64,
    /// Bytes of those frames.
    pub bytes_out: u64,
}

/// One worker's counters.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Frames read.
    pub read: u64,
    /// Packets forwarded (whole or as fragments).
    pub forwarded: u64,
    /// Of those, packets forwarded as fragments.
    pub fragmented: u64,
    /// Fragment frames emitted.
    pub fragments: u64,
    /// DR/TUN replies not emitted.
    pub replies_skipped: u64,
    /// ICMP errors built and emitted by the director.
    pub icmp_sent: u64,
    /// Drops by reason.
    pub dropped: HashMap<&'static str, u64>,
    /// Frames the director built (ICMP errors, fragments) that the output could not carry, by
    /// reason.
    pub output_refused: HashMap<&'static str, u64>,
    /// Per service, per destination id.
    pub dests: Vec<Vec<DestCounters>>,
}

impl Counters {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &Counters) {
        self.read += o.read;
        self.forwarded += o.forwarded;
        self.fragmented += o.fragmented;
        self.fragments += o.fragments;
        self.replies_skipped += o.replies_skipped;
        self.icmp_sent += o.icmp_sent;
        for (k, v) in &o.dropped {
            *self.dropped.entry(k).or_default() += v;
        }
        for (k, v) in &o.output_refused {
            *self.output_refused.entry(k).or_default() += v;
        }
        if self.dests.len() < o.dests.len() {
            self.dests.resize(o.dests.len(), Vec::new());
        }
        for (mine, theirs) in self.dests.iter_mut().zip(&o.dests) {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), DestCounters::default());
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                a.connections += b.connections;
                a.packets_in += b.packets_in;
                a.bytes_in += b.bytes_in;
                a.packets_out += b.packets_out;
                a.bytes_out += b.bytes_out;
            }
        }
    }

    /// Total drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    #[inline]
    fn dest(&mut self, svc: usize, id: DestId) -> &mut DestCounters {
        if self.dests.len() <= svc {
            self.dests.resize(svc + 1, Vec::new());
        }
        let v = &mut self.dests[svc];
        let i = id.0 as usize;
        if v.len() <= i {
            v.resize(i + 1, DestCounters::default());
        }
        &mut v[i]
    }
}

/// An operator action at a point of the replay (`--at SECS:ACTION`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `drain=ADDR`: weight 0 (ipvsadm -e -w 0).
    Drain(IpAddr),
    /// `weight=ADDR:W`: an edit.
    Weight(IpAddr, u32),
    /// `remove=ADDR`: ipvsadm -d.
    Remove(IpAddr),
    /// `add=BACKEND-SPEC`: ipvsadm -a on every service of a usable family.
    Add(Backend),
}

#[inline]
fn fam(a: &IpAddr) -> usize {
    usize::from(a.is_ipv6())
}

fn proto_key(p: Option<Protocol>) -> u8 {
    p.map_or(0, |p| p.number())
}

impl Pipeline {
    /// Builds the services, resolves every backend's next hop (`mac=`, then `neigh`, then
    /// `resolve`, e.g. the kernel's neighbour table), and creates the connection table.
    pub fn new(cfg: &PipelineConfig, resolve: &dyn Fn(IpAddr) -> Option<MacAddr>) -> Result<Pipeline, ConfigError> {
        if cfg.services.is_empty() {
            return invalid("no virtual service: give --vip and --backend, or --rules".into());
        }
        let mut tun_src = [None, None];
        for a in &cfg.tun_src {
            tun_src[fam(a)] = Some(*a);
        }
        let mut p = Pipeline {
            services: Vec::new(),
            by_vip: AHashMap::new(),
            any: [None, None],
            table: ConnTable::new(cfg.conntrack.clone()),
            macs: AHashMap::new(),
            gue: AHashMap::new(),
            mtu: cfg.mtu,
            tun_src,
            director_mac: cfg.director_mac,
            mode: cfg.mode,
            removed: Mutex::new(Vec::new()),
        };
        let all_backends = cfg.services.iter().flat_map(|s| &s.backends).chain(&cfg.future_backends);
        for b in all_backends {
            let mac = b.mac.or_else(|| cfg.neigh.get(&b.addr).copied()).or_else(|| resolve(b.addr));
            match mac {
                Some(m) => {
                    p.macs.insert(b.addr, m);
                }
                None => {
                    return invalid(format!(
                        "backend {}: no next-hop MAC (give mac= in --backend, or --neigh {}=MAC)",
                        b.addr, b.addr
                    ))
                }
            }
            if let Some(port) = b.gue_port {
                p.gue.insert(b.addr, port);
            }
        }
        for spec in &cfg.services {
            let sched_cfg = SchedConfig { flags: spec.flags, ..SchedConfig::default() };
            let svc = Service::new(&spec.sched, sched_cfg).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            let idx = p.services.len();
            let catch_all = matches!(spec.vip, Vip::Any { .. });
            let rt = RtService {
                vip: spec.vip,
                svc,
                params: ServiceParams { persistence: spec.persistence, one_packet: spec.one_packet, catch_all },
                any_nat: AtomicBool::new(false),
            };
            p.services.push(rt);
            for b in &spec.backends {
                if p.usable(&spec.vip, b)? {
                    p.add_backend(idx, b)?;
                }
            }
            match spec.vip {
                Vip::Addr { proto, addr } => {
                    let k = (proto_key(proto), addr.ip(), addr.port());
                    if p.by_vip.insert(k, idx).is_some() {
                        return invalid(format!("service {} is defined twice", spec.vip));
                    }
                }
                Vip::Any { v6 } => p.any[usize::from(v6)] = Some(idx),
            }
        }
        Ok(p)
    }

    /// Whether backend `b` serves `vip` (its family, or any family for a tunnel), checking that a
    /// tunnel across families has an outer source.
    fn usable(&self, vip: &Vip, b: &Backend) -> Result<bool, ConfigError> {
        let fwd = self.fwd_of(b)?;
        let v6 = match vip {
            Vip::Addr { addr, .. } => addr.is_ipv6(),
            Vip::Any { v6 } => *v6,
        };
        if b.addr.is_ipv6() == v6 {
            return Ok(true);
        }
        if fwd != ForwardMethod::Tunnel {
            return match vip {
                Vip::Addr { .. } => invalid(format!(
                    "backend {} is not of the family of service {vip} (only TUN may cross families)",
                    b.addr
                )),
                Vip::Any { .. } => Ok(false),
            };
        }
        if self.tun_src[fam(&b.addr)].is_none() {
            return invalid(format!(
                "backend {} tunnels {} traffic across families: give --tun-src with an {} address",
                b.addr,
                if v6 { "IPv6" } else { "IPv4" },
                if b.addr.is_ipv6() { "IPv6" } else { "IPv4" }
            ));
        }
        Ok(true)
    }

    fn fwd_of(&self, b: &Backend) -> Result<ForwardMethod, ConfigError> {
        match b.fwd.or(self.mode) {
            Some(ForwardMethod::Local) => invalid(format!("backend {}: local delivery is not supported", b.addr)),
            Some(f) => Ok(f),
            None => invalid(format!("backend {}: no forwarding method (give --mode nat|dr|tun)", b.addr)),
        }
    }

    /// The destination configuration of backend `b` in service `vip`: its port defaults to the
    /// virtual port (0, the packet's, for a catch-all service), its method to `--mode`.
    fn dest_config(&self, vip: &Vip, b: &Backend) -> Result<DestConfig, ConfigError> {
        let port = b.port.unwrap_or(match vip {
            Vip::Addr { addr, .. } => addr.port(),
            Vip::Any { .. } => 0,
        });
        Ok(DestConfig {
            addr: b.addr,
            port,
            weight: b.weight,
            u_threshold: b.u_threshold,
            l_threshold: b.l_threshold,
            fwd: self.fwd_of(b)?,
        })
    }

    fn add_backend(&self, idx: usize, b: &Backend) -> Result<Arc<Destination>, ConfigError> {
        let rt = &self.services[idx];
        let d = self.dest_config(&rt.vip, b)?;
        if d.fwd == ForwardMethod::Masq {
            rt.any_nat.store(true, Relaxed);
        }
        rt.svc.add(d).map_err(|e| ConfigError::Invalid(format!("service {}: {e}", rt.vip)))
    }

    /// The live services.
    pub fn services(&self) -> &[RtService] {
        &self.services
    }

    /// Destinations removed by events, with their service index (for the report).
    pub fn removed(&self) -> Vec<(usize, Arc<Destination>)> {
        self.removed.lock().clone()
    }

    /// Applies an operator action; returns what it did, for the report.
    pub fn apply(&self, action: &Action) -> Result<String, String> {
        let mut done = Vec::new();
        for (i, rt) in self.services.iter().enumerate() {
            let find = |a: IpAddr| rt.svc.destinations().into_iter().filter(move |d| d.addr() == a);
            match action {
                Action::Drain(a) | Action::Weight(a, _) => {
                    let w = if let Action::Weight(_, w) = action { *w } else { 0 };
                    for d in find(*a) {
                        rt.svc.edit(DestConfig { weight: w, ..d.config() }).map_err(|e| e.to_string())?;
                        done.push(format!("{} weight {} -> {w} in {}", d.addr(), d.last_weight(), rt.vip));
                    }
                }
                Action::Remove(a) => {
                    for d in find(*a) {
                        let r = rt.svc.remove(d.addr(), d.port()).map_err(|e| e.to_string())?;
                        self.removed.lock().push((i, r));
                        done.push(format!("{} removed from {}", d.addr(), rt.vip));
                    }
                }
                Action::Add(b) => {
                    if !self.usable(&rt.vip, b).map_err(|e| e.to_string())? {
                        continue;
                    }
                    self.add_backend(i, b).map_err(|e| e.to_string())?;
                    done.push(format!("{} added to {} (weight {})", b.addr, rt.vip, b.weight));
                }
            }
        }
        if done.is_empty() {
            return Err(format!("{action:?} matched no backend of any service"));
        }
        Ok(done.join("; "))
    }

    /// Expires idle connections (call it as time passes; the worker does every 1024 frames).
    pub fn expire(&self, now: Timestamp) {
        self.table.expire(now);
    }

    #[inline]
    fn lookup_vip(&self, proto: Protocol, addr: IpAddr, port: u16) -> Option<usize> {
        if self.by_vip.is_empty() {
            return None;
        }
        let p = proto.number();
        for k in [(p, addr, port), (0, addr, port), (p, addr, 0), (0, addr, 0)] {
            if let Some(&i) = self.by_vip.get(&k) {
                return Some(i);
            }
        }
        None
    }
}

/// A worker: processes frames through a shared [`Pipeline`], counting.
#[derive(Debug)]
pub struct Worker<'p> {
    p: &'p Pipeline,
    /// This worker's counters.
    pub counters: Counters,
    reply: Box<[u8]>,
    since_expire: u32,
    /// Whether [`Worker::process`] runs the connection table's expiry itself (every 1024
    /// frames, at the frame's time). A driver with several workers turns it off and expires at
    /// the time all workers have reached, so no worker's clock expires another's connections
    /// early.
    pub auto_expire: bool,
}

enum Class {
    Request(usize),
    Reply(usize),
}

/// The outer IPv4 identification of a tunnelled packet: a hash of the inner packet's first
/// header bytes, so the bytes a replay emits do not depend on how flows were spread over workers.
fn tunnel_ident(frame: &[u8], pkt: &Packet) -> u16 {
    let end = pkt.ip_end().min(pkt.l3() + 48).min(frame.len());
    let mut h: u32 = 0x811c_9dc5;
    for b in frame.get(pkt.l3()..end).unwrap_or_default() {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as u16
}

fn mac_at(frame: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    if let Some(s) = frame.get(at..at + 6) {
        m.copy_from_slice(s);
    }
    MacAddr(m)
}

impl<'p> Worker<'p> {
    /// A worker on `p`.
    pub fn new(p: &'p Pipeline) -> Self {
        Worker {
            p,
            counters: Counters::default(),
            reply: vec![0u8; 2048].into_boxed_slice(),
            since_expire: 0,
            auto_expire: true,
        }
    }

    #[inline]
    fn drop(&mut self, why: &'static str) -> Outcome {
        *self.counters.dropped.entry(why).or_default() += 1;
        Outcome::Dropped(why)
    }

    /// Processes one frame at time `now`. On [`Outcome::Forwarded`] the caller sends
    /// `buf.frame()`; fragments and ICMP replies go to `sink` during the call.
    pub fn process(&mut self, now: Timestamp, buf: &mut FrameBuf<'_>, sink: &mut dyn FnMut(&[u8])) -> Outcome {
        self.counters.read += 1;
        self.since_expire += 1;
        if self.auto_expire && self.since_expire >= 1024 {
            self.since_expire = 0;
            self.p.table.expire(now);
        }
        let pkt = match parse(buf.frame()) {
            Ok(p) => p,
            Err(e) => return self.drop(e.name()),
        };
        if pkt.is_icmp_error() {
            return self.icmp_error(now, buf, &pkt, sink);
        }
        let flow = pkt.flow();
        if !flow.proto.has_ports() {
            return self.drop("icmp_not_error");
        }
        match self.classify(now, &flow) {
            Some(Class::Request(si)) => self.request(now, si, buf, &pkt, sink),
            Some(Class::Reply(si)) => self.reply(now, si, buf, &pkt, sink),
            None => {
                let fam_has_any = self.p.any[usize::from(flow.is_ipv6())].is_some();
                let other_any = self.p.any[usize::from(!flow.is_ipv6())].is_some();
                self.drop(if !fam_has_any && other_any { "no_backend_for_family" } else { "no_service" })
            }
        }
    }

    fn classify(&self, now: Timestamp, flow: &Flow) -> Option<Class> {
        let p = self.p;
        if let Some(i) = p.lookup_vip(flow.proto, flow.dst, flow.dst_port) {
            return Some(Class::Request(i));
        }
        if let Some(i) = p.lookup_vip(flow.proto, flow.src, flow.src_port) {
            return Some(Class::Reply(i));
        }
        let i = p.any[usize::from(flow.is_ipv6())]?;
        // A catch-all service tells replies from requests by the connection they belong to.
        if p.table.lookup_in(now, &flow.reversed()).is_some() {
            Some(Class::Reply(i))
        } else {
            Some(Class::Request(i))
        }
    }

    fn director_mac(&self, frame: &[u8], request: bool) -> MacAddr {
        // The director is where the client's frames were sent (their destination MAC), and
        // where the capture's replies came from (their source MAC).
        self.p.director_mac.unwrap_or_else(|| mac_at(frame, if request { 0 } else { 6 }))
    }

    fn hop_to(&self, frame: &[u8], daddr: IpAddr) -> Option<NextHop> {
        let dst_mac = *self.p.macs.get(&daddr)?;
        Some(NextHop { src_mac: self.director_mac(frame, true), dst_mac, mtu: self.p.mtu })
    }

    /// Rewrites a request (or an ICMP error from the client side) toward the connection's
    /// real server.
    fn forward(
        &mut self,
        si: usize,
        c: &ConnInfo,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        icmp: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        let Some(hop) = self.hop_to(buf.frame(), c.daddr) else {
            return self.drop("no_next_hop");
        };
        let rs = SocketAddr::new(c.daddr, c.dport);
        let mut frags = 0u64;
        let mut fsink = |f: &[u8]| {
            frags += 1;
            sink(f)
        };
        let r = match c.fwd {
            ForwardMethod::Masq if icmp => nat_icmp_in(buf, pkt, &hop, rs, &mut fsink),
            ForwardMethod::Masq => dnat(buf, pkt, &hop, rs, &mut fsink),
            ForwardMethod::DirectRoute => dr(buf, pkt, &hop, &mut fsink),
            ForwardMethod::Tunnel => {
                let src = self.p.tun_src[fam(&c.daddr)].unwrap_or(c.vaddr);
                let encap = self.p.gue.get(&c.daddr).map_or(Encap::Ipip, |&port| Encap::Gue { port });
                let t = Tunnel { src, dst: c.daddr, encap, ident: tunnel_ident(buf.frame(), pkt) };
                tun(buf, pkt, &hop, &t, &mut fsink)
            }
            ForwardMethod::Local => return self.drop("local_node"),
        };
        let out = self.finish(r, buf, pkt, frags, sink);
        let d = self.counters.dest(si, c.dest);
        d.connections += u64::from(c.created);
        if matches!(out, Outcome::Forwarded | Outcome::Fragmented(_)) {
            d.packets_in += 1;
            d.bytes_in += if let Outcome::Forwarded = out { buf.len() as u64 } else { 0 };
        }
        out
    }

    /// Turns a rewriter's result into an outcome, building the ICMP reply the kernel would.
    fn finish(
        &mut self,
        r: Result<Verdict, RewriteError>,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        frags: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        match r {
            Ok(Verdict::Forward) => {
                self.counters.forwarded += 1;
                Outcome::Forwarded
            }
            Ok(Verdict::Fragmented { count }) => {
                self.counters.forwarded += 1;
                self.counters.fragmented += 1;
                self.counters.fragments += frags;
                Outcome::Fragmented(count)
            }
            Ok(v @ (Verdict::TimeExceeded | Verdict::TooBig { .. })) => {
                let from = ReplySource {
                    addr: pkt.flow().dst,
                    mac: self.director_mac(buf.frame(), true),
                    ident: tunnel_ident(buf.frame(), pkt),
                };
                let (built, why) = match v {
                    Verdict::TooBig { mtu } => {
                        (build_too_big(buf.frame(), pkt, mtu, &from, &mut self.reply), "too_big")
                    }
                    _ => (build_time_exceeded(buf.frame(), pkt, &from, &mut self.reply), "ttl_exceeded"),
                };
                // No ICMP error about an ICMP error.
                if let (Ok(n), false) = (built, pkt.is_icmp_error()) {
                    sink(&self.reply[..n]);
                    self.counters.icmp_sent += 1;
                }
                self.drop(why)
            }
            Err(e) => self.drop(e.name()),
        }
    }

    fn request(
        &mut self,
        now: Timestamp,
        si: usize,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        let rt = &self.p.services[si];
        let v = self.p.table.input(now, &pkt.flow(), pkt.tcp_flags().0, &rt.svc, &rt.params);
        match v {
            InVerdict::Forward(c) | InVerdict::OnePacket(c) => self.forward(si, &c, buf, pkt, false, sink),
            InVerdict::NotScheduled(NotScheduled::Rst) => self.drop("rst_without_connection"),
            InVerdict::NotScheduled(NotScheduled::NotSyn) => self.drop("not_syn_without_connection"),
            InVerdict::NotScheduled(NotScheduled::Unsupported) => self.drop("unsupported_flow"),
            InVerdict::NoDestination => self.drop("no_destination"),
            InVerdict::DestUnavailable(_) => self.drop("destination_removed"),
            InVerdict::Refused => self.drop("conntrack_full"),
        }
    }

    fn reply(
        &mut self,
        now: Timestamp,
        si: usize,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        let flow = pkt.flow();
        let rt = &self.p.services[si];
        if !rt.any_nat.load(Relaxed) {
            self.counters.replies_skipped += 1;
            return Outcome::ReplySkipped;
        }
        let Some(c) = self.p.table.lookup_in(now, &flow.reversed()) else {
            return self.drop("reply_without_connection");
        };
        if c.fwd != ForwardMethod::Masq {
            self.counters.replies_skipped += 1;
            return Outcome::ReplySkipped;
        }
        // The reply as its real server sent it (from the real server's address and port) goes
        // through the OUTPUT side of its connection's state machine. The capture says which
        // connection it is (the virtual address the client saw), so it is taken by that key:
        // the real server's tuple alone may be shared by two connections of one client port.
        let c = match self.p.table.output_for_client(now, &flow.reversed(), pkt.tcp_flags().0) {
            OutVerdict::Forward(c) => c,
            OutVerdict::NoConnection => return self.drop("reply_without_connection"),
        };
        // Toward the client: the frame's own destination MAC is the client's next hop.
        let hop = NextHop {
            src_mac: self.director_mac(buf.frame(), false),
            dst_mac: mac_at(buf.frame(), 0),
            mtu: self.p.mtu,
        };
        let mut frags = 0u64;
        let mut fsink = |f: &[u8]| {
            frags += 1;
            sink(f)
        };
        let r = snat(buf, pkt, &hop, SocketAddr::new(c.vaddr, c.vport), &mut fsink);
        let out = self.finish(r, buf, pkt, frags, sink);
        if matches!(out, Outcome::Forwarded | Outcome::Fragmented(_)) {
            let len = if let Outcome::Forwarded = out { buf.len() as u64 } else { 0 };
            let d = self.counters.dest(si, c.dest);
            d.packets_out += 1;
            d.bytes_out += len;
        }
        out
    }

    fn icmp_error(
        &mut self,
        now: Timestamp,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        let Some(q) = pkt.quote(buf.frame()).map(|q| *q.flow()) else {
            return self.drop("icmp_without_connection");
        };
        let service_of = |c: &ConnInfo, p: &Pipeline| {
            p.lookup_vip(c.proto, c.vaddr, c.vport).or(p.any[usize::from(c.vaddr.is_ipv6())])
        };
        // About a reply the client received (quoted: virtual service -> client): from the client
        // side, toward the real server.
        if let Some(c) = self.p.table.lookup_in(now, &q.reversed()) {
            let Some(si) = service_of(&c, self.p) else {
                return self.drop("icmp_without_connection");
            };
            return self.forward(si, &c, buf, pkt, true, sink);
        }
        // About a request (quoted: client -> virtual service), travelling to the client: the
        // reply direction.
        if let Some(c) = self.p.table.lookup_in(now, &q) {
            if c.fwd != ForwardMethod::Masq {
                self.counters.replies_skipped += 1;
                return Outcome::ReplySkipped;
            }
            let hop = NextHop {
                src_mac: self.director_mac(buf.frame(), false),
                dst_mac: mac_at(buf.frame(), 0),
                mtu: self.p.mtu,
            };
            let mut frags = 0u64;
            let mut fsink = |f: &[u8]| {
                frags += 1;
                sink(f)
            };
            let r = nat_icmp_out(buf, pkt, &hop, SocketAddr::new(c.vaddr, c.vport), &mut fsink);
            return self.finish(r, buf, pkt, frags, sink);
        }
        self.drop("icmp_without_connection")
    }
}
