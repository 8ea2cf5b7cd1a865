//! The shared part of the pipeline: the service set (built from a [`PipelineConfig`], looked up
//! per packet, changed by operator [`Action`]s), the connection table and the next hops.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use ahash::AHashMap;
use lb_conntrack::{ConnTable, ServiceParams};
use lb_rewrite::MacAddr;
use lb_sched::registry::Registry;
use lb_sched::{DestConfig, Destination, ForwardMethod, Protocol, SchedConfig, SchedError, Service, Timestamp};
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
    /// The director's own addresses on the real servers' side (one per family at most): the
    /// source of the ICMP errors it sends to a real server about a reply (too big for the MTU,
    /// TTL exceeded). Without one, the virtual service's address.
    pub director_ips: Vec<IpAddr>,
    /// Static next hops (`--neigh`).
    pub neigh: Neighbours,
    /// The director's MAC; `None`: the MAC the capture's frames were sent to.
    pub director_mac: Option<MacAddr>,
    /// Backends that `--at add=` events will add (their MACs are resolved up front).
    pub future_backends: Vec<Backend>,
    /// Next hops followed live (a director on a network): asked for the MAC toward a real
    /// server without a static one and toward every client, per packet; and a NAT reply is
    /// taken as its real server sends it (from the real server's address, found by IPVS's
    /// OUTPUT lookup). `None`: the static next hops above, a client's next hop read from the
    /// frame, and NAT replies as a capture on the client's side shows them (from the virtual
    /// address).
    pub live_next_hops: Option<Arc<dyn LiveNextHops>>,
}

/// Next hops a data plane follows live: the kernel's route toward an address, then that next
/// hop's neighbour entry. The director's implementation follows netlink; a test's can be a map.
pub trait LiveNextHops: Send + Sync + std::fmt::Debug {
    /// The MAC of the next hop toward `addr` (its route's gateway, or `addr` itself on a
    /// directly connected network), if known now. Called per packet: it must not allocate or
    /// take a global lock. On a miss it may start resolving the address (the frame is dropped
    /// as [`DropReason::NoNextHop`](super::DropReason::NoNextHop); TCP retransmits).
    fn mac_toward(&self, addr: IpAddr) -> Option<MacAddr>;
}

impl PipelineConfig {
    /// `services`, with `mode` for backends that do not name one, and everything else as the
    /// `replay` command line defaults it: IPVS's connection-table defaults, an MTU of 1500, no
    /// TUN source or director address (the virtual address is used), no static next hops, the
    /// director's MAC taken from the frames, no backends added later.
    pub fn new(services: Vec<ServiceSpec>, mode: Option<ForwardMethod>) -> Self {
        PipelineConfig {
            services,
            mode,
            conntrack: lb_conntrack::Config::default(),
            mtu: 1500,
            tun_src: Vec::new(),
            director_ips: Vec::new(),
            neigh: Neighbours::default(),
            director_mac: None,
            future_backends: Vec::new(),
            live_next_hops: None,
        }
    }
}

/// A configuration the pipeline cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No service was given.
    #[error("no virtual service: give --vip and --backend, or --rules")]
    NoService,
    /// A backend's next-hop MAC is known from nowhere.
    #[error("backend {0}: no next-hop MAC (give mac= in --backend, or --neigh {0}=MAC)")]
    NoNextHop(IpAddr),
    /// Two services with the same (protocol, address, port).
    #[error("service {0} is defined twice")]
    DuplicateService(Vip),
    /// A backend of another family than its service, not tunnelled.
    #[error("backend {backend} is not of the family of service {vip} (only TUN may cross families)")]
    FamilyMismatch {
        /// The backend.
        backend: IpAddr,
        /// Its service.
        vip: Vip,
    },
    /// A tunnel across families without an outer source address of the backend's family.
    #[error(
        "backend {backend} tunnels {} traffic across families: give --tun-src with an {} address",
        family_name(*.service_v6),
        family_name(.backend.is_ipv6())
    )]
    NoTunnelSource {
        /// The backend.
        backend: IpAddr,
        /// Whether its service is IPv6.
        service_v6: bool,
    },
    /// A backend forwarded by local delivery.
    #[error("backend {0}: local delivery is not supported")]
    LocalDelivery(IpAddr),
    /// A backend without a forwarding method, and no `--mode`.
    #[error("backend {0}: no forwarding method (give --mode nat|dr|tun)")]
    NoForwardMethod(IpAddr),
    /// The scheduler could not be built.
    #[error(transparent)]
    Scheduler(SchedError),
    /// A destination could not be added to its service.
    #[error("service {vip}: {error}")]
    Destination {
        /// The service.
        vip: Vip,
        /// Why.
        error: SchedError,
    },
}

fn family_name(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
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

/// Why an [`Action`] could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The service refused the change.
    #[error(transparent)]
    Sched(#[from] SchedError),
    /// The backend to add cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No backend of any service has that address.
    #[error("{0:?} matched no backend of any service")]
    NoMatch(Action),
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
    pub(crate) any_nat: AtomicBool,
    /// Removed by [`Pipeline::remove_service`]: no packet finds it any more; its index stays.
    pub(crate) removed: bool,
}

impl RtService {
    /// Whether the service was removed ([`Pipeline::remove_service`]).
    pub fn is_removed(&self) -> bool {
        self.removed
    }
}

/// Up to this many services by address, [`Pipeline::lookup_vip`] scans them instead of hashing.
const SCAN_VIPS: usize = 8;
/// Up to this many real servers, [`Pipeline::mac_of`] scans them instead of hashing.
const SCAN_MACS: usize = 16;

/// The shared part of the pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pub(crate) services: Vec<RtService>,
    pub(super) by_vip: AHashMap<(u8, IpAddr, u16), usize>,
    /// The same keys as `by_vip`, searched in order when there are few of them (a scan of a
    /// handful of entries costs less than hashing an address).
    pub(super) vips: Vec<((u8, IpAddr, u16), usize)>,
    /// The catch-all service of each family (IPv4, IPv6), if any.
    pub(crate) any: [Option<usize>; 2],
    /// The connection table: shared by the workers made with [`super::Worker::new`]; the
    /// parent of the partitions of those made with [`super::Worker::owning`] (its `len` counts
    /// theirs too).
    pub table: ConnTable,
    pub(super) macs: AHashMap<IpAddr, MacAddr>,
    /// The same pairs as `macs`, searched in order when there are few of them.
    pub(super) mac_list: Vec<(IpAddr, MacAddr)>,
    pub(crate) gue: AHashMap<IpAddr, u16>,
    pub(crate) mtu: u16,
    pub(crate) tun_src: [Option<IpAddr>; 2],
    pub(crate) director_ips: [Option<IpAddr>; 2],
    pub(crate) director_mac: Option<MacAddr>,
    mode: Option<ForwardMethod>,
    pub(super) removed: Mutex<Vec<(usize, Arc<Destination>)>>,
    pub(crate) live: Option<Arc<dyn LiveNextHops>>,
}

/// The index of an address's family: 0 for IPv4, 1 for IPv6.
#[inline]
pub(crate) fn fam(a: &IpAddr) -> usize {
    usize::from(a.is_ipv6())
}

fn proto_key(p: Option<Protocol>) -> u8 {
    p.map_or(0, |p| p.number())
}

impl Pipeline {
    /// Builds the services with the built-in schedulers, resolves every backend's next hop
    /// (`mac=`, then `neigh`, then `resolve`, e.g. the kernel's neighbour table), and creates the
    /// connection table.
    pub fn new(cfg: &PipelineConfig, resolve: &dyn Fn(IpAddr) -> Option<MacAddr>) -> Result<Pipeline, ConfigError> {
        Self::with_registry(cfg, Registry::builtin(), resolve)
    }

    /// [`Pipeline::new`] with the schedulers of `registry`: the services' scheduler names are
    /// looked up there, so a data plane runs its own scheduler through the whole pipeline.
    pub fn with_registry(
        cfg: &PipelineConfig,
        registry: &Registry,
        resolve: &dyn Fn(IpAddr) -> Option<MacAddr>,
    ) -> Result<Pipeline, ConfigError> {
        if cfg.services.is_empty() {
            return Err(ConfigError::NoService);
        }
        let mut tun_src = [None, None];
        for a in &cfg.tun_src {
            tun_src[fam(a)] = Some(*a);
        }
        let mut director_ips = [None, None];
        for a in &cfg.director_ips {
            director_ips[fam(a)] = Some(*a);
        }
        let mut p = Pipeline {
            services: Vec::new(),
            by_vip: AHashMap::new(),
            vips: Vec::new(),
            any: [None, None],
            table: ConnTable::new(cfg.conntrack.clone()),
            macs: AHashMap::new(),
            mac_list: Vec::new(),
            gue: AHashMap::new(),
            mtu: cfg.mtu,
            tun_src,
            director_ips,
            director_mac: cfg.director_mac,
            mode: cfg.mode,
            removed: Mutex::new(Vec::new()),
            live: cfg.live_next_hops.clone(),
        };
        let all_backends = cfg.services.iter().flat_map(|s| &s.backends).chain(&cfg.future_backends);
        for b in all_backends {
            let mac = b.mac.or_else(|| cfg.neigh.get(&b.addr).copied()).or_else(|| resolve(b.addr));
            match mac {
                Some(m) => {
                    p.macs.insert(b.addr, m);
                }
                // Followed live, per packet.
                None if p.live.is_some() => {}
                None => return Err(ConfigError::NoNextHop(b.addr)),
            }
            if let Some(port) = b.gue_port {
                p.gue.insert(b.addr, port);
            }
        }
        for spec in &cfg.services {
            p.push_service(spec, registry)?;
        }
        p.mac_list = p.macs.iter().map(|(a, m)| (*a, *m)).collect();
        Ok(p)
    }

    /// Builds service `spec` (its scheduler from `registry`, its backends) at the next index
    /// and makes it findable by its address; the index.
    pub(super) fn push_service(&mut self, spec: &ServiceSpec, registry: &Registry) -> Result<usize, ConfigError> {
        let taken = match spec.vip {
            Vip::Addr { proto, addr } => self.by_vip.contains_key(&(proto_key(proto), addr.ip(), addr.port())),
            Vip::Any { v6 } => self.any[usize::from(v6)].is_some(),
        };
        if taken {
            return Err(ConfigError::DuplicateService(spec.vip));
        }
        let sched_cfg = SchedConfig { flags: spec.flags, ..SchedConfig::default() };
        let svc = Service::from_registry(registry, &spec.sched, sched_cfg).map_err(ConfigError::Scheduler)?;
        let idx = self.services.len();
        let catch_all = matches!(spec.vip, Vip::Any { .. });
        let rt = RtService {
            vip: spec.vip,
            svc,
            params: ServiceParams { persistence: spec.persistence, one_packet: spec.one_packet, catch_all },
            any_nat: AtomicBool::new(false),
            removed: false,
        };
        self.services.push(rt);
        for b in &spec.backends {
            if self.usable(&spec.vip, b)? {
                self.add_backend(idx, b)?;
            }
        }
        match spec.vip {
            Vip::Addr { proto, addr } => {
                let k = (proto_key(proto), addr.ip(), addr.port());
                self.by_vip.insert(k, idx);
                self.vips.push((k, idx));
            }
            Vip::Any { v6 } => self.any[usize::from(v6)] = Some(idx),
        }
        Ok(idx)
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
                Vip::Addr { .. } => Err(ConfigError::FamilyMismatch { backend: b.addr, vip: *vip }),
                Vip::Any { .. } => Ok(false),
            };
        }
        if self.tun_src[fam(&b.addr)].is_none() {
            return Err(ConfigError::NoTunnelSource { backend: b.addr, service_v6: v6 });
        }
        Ok(true)
    }

    fn fwd_of(&self, b: &Backend) -> Result<ForwardMethod, ConfigError> {
        match b.fwd.or(self.mode) {
            Some(ForwardMethod::Local) => Err(ConfigError::LocalDelivery(b.addr)),
            Some(f) => Ok(f),
            None => Err(ConfigError::NoForwardMethod(b.addr)),
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
        rt.svc.add(d).map_err(|error| ConfigError::Destination { vip: rt.vip, error })
    }

    /// The live services.
    pub fn services(&self) -> &[RtService] {
        &self.services
    }

    /// Destinations removed by events, with their service index (for the report).
    pub fn removed(&self) -> Vec<(usize, Arc<Destination>)> {
        self.removed.lock().clone()
    }

    /// Applies an operator action to every service it concerns; returns what it did, for the
    /// report.
    pub fn apply(&self, action: &Action) -> Result<String, ApplyError> {
        let mut done = Vec::new();
        for i in 0..self.services.len() {
            done.extend(self.apply_in(i, action)?);
        }
        if done.is_empty() {
            return Err(ApplyError::NoMatch(action.clone()));
        }
        Ok(done.join("; "))
    }

    /// Applies an operator action to service `i` only (a reload of the rules changes each
    /// service by its own lines); what it did, one line per destination (none: nothing matched,
    /// or `i` is not a service).
    pub fn apply_in(&self, i: usize, action: &Action) -> Result<Vec<String>, ApplyError> {
        let mut done = Vec::new();
        let Some(rt) = self.services.get(i) else { return Ok(done) };
        let find = |a: IpAddr| rt.svc.destinations().into_iter().filter(move |d| d.addr() == a);
        match action {
            Action::Drain(a) | Action::Weight(a, _) => {
                let w = if let Action::Weight(_, w) = action { *w } else { 0 };
                for d in find(*a) {
                    rt.svc.edit(DestConfig { weight: w, ..d.config() })?;
                    done.push(format!("{} weight {} -> {w} in {}", d.addr(), d.last_weight(), rt.vip));
                }
            }
            Action::Remove(a) => {
                for d in find(*a) {
                    let r = rt.svc.remove(d.addr(), d.port())?;
                    self.removed.lock().push((i, r));
                    done.push(format!("{} removed from {}", d.addr(), rt.vip));
                }
            }
            Action::Add(b) => {
                if self.usable(&rt.vip, b)? {
                    let d = self.add_backend(i, b)?;
                    // A removed destination revived (its connections go on) is no longer removed.
                    self.removed.lock().retain(|(_, r)| !Arc::ptr_eq(r, &d));
                    done.push(format!("{} added to {} (weight {})", b.addr, rt.vip, b.weight));
                }
            }
        }
        Ok(done)
    }

    /// Expires idle connections of the shared table (call it as time passes; a worker does every
    /// 1024 frames; a worker that owns its connections expires them itself, [`super::Worker::expire`]).
    pub fn expire(&self, now: Timestamp) {
        self.table.expire(now);
    }

    /// The next-hop MAC of real server `addr`: its static one, else the live next hops'.
    #[inline]
    pub(crate) fn mac_of(&self, addr: IpAddr) -> Option<MacAddr> {
        let fixed = if self.mac_list.len() <= SCAN_MACS {
            self.mac_list.iter().find(|(a, _)| *a == addr).map(|(_, m)| *m)
        } else {
            self.macs.get(&addr).copied()
        };
        match (&self.live, fixed) {
            (Some(live), None) => live.mac_toward(addr),
            _ => fixed,
        }
    }

    /// The service whose virtual address is (`proto`, `addr`, `port`): an exact match first,
    /// then any protocol, then any port (fwmark-like port 0), then both.
    #[inline]
    pub(crate) fn lookup_vip(&self, proto: Protocol, addr: IpAddr, port: u16) -> Option<usize> {
        if self.by_vip.is_empty() {
            return None;
        }
        let p = proto.number();
        if self.vips.len() <= SCAN_VIPS {
            // The best of the four forms, by their order above.
            let mut best: Option<(u8, usize)> = None;
            for &((kp, ka, kport), i) in &self.vips {
                if ka != addr {
                    continue;
                }
                let rank = match (kp == p, kport == port, kp == 0, kport == 0) {
                    (true, true, _, _) => return Some(i),
                    (false, true, true, _) => 1,
                    (true, false, _, true) => 2,
                    (false, false, true, true) => 3,
                    _ => continue,
                };
                if best.is_none_or(|(r, _)| rank < r) {
                    best = Some((rank, i));
                }
            }
            return best.map(|(_, i)| i);
        }
        for k in [(p, addr, port), (0, addr, port), (p, addr, 0), (0, addr, 0)] {
            if let Some(&i) = self.by_vip.get(&k) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_backend;

    fn config(specs: Vec<ServiceSpec>) -> PipelineConfig {
        PipelineConfig::new(specs, Some(ForwardMethod::DirectRoute))
    }

    fn service(proto: Option<Protocol>, addr: &str, backend: &str) -> ServiceSpec {
        let mut s = ServiceSpec::new(Vip::Addr { proto, addr: addr.parse().unwrap() });
        s.backends.push(parse_backend(backend).unwrap());
        s
    }

    /// Every subset of the four forms a service of one address can take, with few services
    /// (scanned) and with many (hashed): the lookup picks the first present of (protocol, port),
    /// (any protocol, port), (protocol, any port), (any, any).
    #[test]
    fn scanned_and_hashed_lookups_follow_the_same_precedence() {
        let forms = [(Some(Protocol::Tcp), 80u16), (None, 80), (Some(Protocol::Tcp), 0), (None, 0)];
        for subset in 1..16u32 {
            for padding in [0usize, 12] {
                let mut specs = Vec::new();
                let mut index_of_form = [None; 4];
                for (f, &(proto, port)) in forms.iter().enumerate() {
                    if subset & (1 << f) != 0 {
                        index_of_form[f] = Some(specs.len());
                        specs.push(service(proto, &format!("198.51.100.1:{port}"), "10.0.0.1,mac=02:00:00:00:00:01"));
                    }
                }
                for i in 0..padding {
                    specs.push(service(None, &format!("203.0.113.{}:80", i + 1), "10.0.0.1,mac=02:00:00:00:00:01"));
                }
                let p = Pipeline::new(&config(specs), &|_| None).unwrap();
                assert_eq!(p.vips.len() <= SCAN_VIPS, padding == 0);
                let vip: IpAddr = "198.51.100.1".parse().unwrap();
                for (proto, port) in
                    [(Protocol::Tcp, 80), (Protocol::Udp, 80), (Protocol::Tcp, 443), (Protocol::Udp, 443)]
                {
                    let tcp = proto == Protocol::Tcp;
                    // The forms that match, in precedence order.
                    let order = [(tcp && port == 80, 0), (port == 80, 1), (tcp, 2), (true, 3)];
                    let want = order.iter().find_map(|&(m, f)| if m { index_of_form[f] } else { None });
                    assert_eq!(
                        p.lookup_vip(proto, vip, port),
                        want,
                        "forms {subset:04b}, padding {padding}, {proto:?} {port}"
                    );
                }
                assert_eq!(p.lookup_vip(Protocol::Tcp, "198.51.100.2".parse().unwrap(), 80), None);
            }
        }
    }

    /// Every real server's MAC is found, with few (scanned) and many (hashed); a backend given
    /// twice keeps the MAC given last, as the map does.
    #[test]
    fn next_hop_macs_are_found_scanned_or_hashed() {
        for n in [1u8, 16, 40] {
            let mut spec = service(None, "198.51.100.1:80", "10.0.0.250,mac=02:00:00:00:00:fa");
            for i in 0..n {
                spec.backends.push(parse_backend(&format!("10.0.1.{i},mac=02:00:00:00:01:{i:02x}")).unwrap());
            }
            let mut other = service(None, "198.51.100.2:80", "10.0.0.250,mac=02:00:00:00:00:fb");
            other.backends.push(parse_backend("10.0.2.1,mac=02:00:00:00:02:01").unwrap());
            let p = Pipeline::new(&config(vec![spec, other]), &|_| None).unwrap();
            for i in 0..n {
                let a: IpAddr = format!("10.0.1.{i}").parse().unwrap();
                assert_eq!(p.mac_of(a), Some(MacAddr([2, 0, 0, 0, 1, i])), "{n} backends, {a}");
            }
            assert_eq!(p.mac_of("10.0.0.250".parse().unwrap()), Some(MacAddr([2, 0, 0, 0, 0, 0xfb])));
            assert_eq!(p.mac_of("10.0.2.1".parse().unwrap()), Some(MacAddr([2, 0, 0, 0, 2, 1])));
            assert_eq!(p.mac_of("10.9.9.9".parse().unwrap()), None);
        }
    }

    #[test]
    fn a_lookup_prefers_the_exact_protocol_then_the_exact_port() {
        let vip: IpAddr = "198.51.100.1".parse().unwrap();
        let p = Pipeline::new(
            &config(vec![
                service(Some(Protocol::Tcp), "198.51.100.1:80", "10.0.0.1,mac=02:00:00:00:00:01"),
                service(None, "198.51.100.1:80", "10.0.0.2,mac=02:00:00:00:00:02"),
                service(None, "198.51.100.1:0", "10.0.0.3,mac=02:00:00:00:00:03"),
            ]),
            &|_| None,
        )
        .unwrap();
        assert_eq!(p.lookup_vip(Protocol::Tcp, vip, 80), Some(0));
        assert_eq!(p.lookup_vip(Protocol::Udp, vip, 80), Some(1));
        assert_eq!(p.lookup_vip(Protocol::Tcp, vip, 443), Some(2));
        assert_eq!(p.lookup_vip(Protocol::Tcp, "198.51.100.2".parse().unwrap(), 80), None);
    }

    #[test]
    fn configuration_errors_name_what_to_fix() {
        let build = |c: PipelineConfig| Pipeline::new(&c, &|_| None).unwrap_err().to_string();
        assert_eq!(build(config(vec![])), "no virtual service: give --vip and --backend, or --rules");
        assert_eq!(
            build(config(vec![service(None, "198.51.100.1:80", "10.0.0.1")])),
            "backend 10.0.0.1: no next-hop MAC (give mac= in --backend, or --neigh 10.0.0.1=MAC)"
        );
        let twice = service(None, "198.51.100.1:80", "10.0.0.1,mac=02:00:00:00:00:01");
        assert_eq!(build(config(vec![twice.clone(), twice])), "service 198.51.100.1:80 is defined twice");
        assert_eq!(
            build(config(vec![service(None, "198.51.100.1:80", "2001:db8::1,mac=02:00:00:00:00:01")])),
            "backend 2001:db8::1 is not of the family of service 198.51.100.1:80 (only TUN may cross families)"
        );
        assert_eq!(
            build(config(vec![service(None, "198.51.100.1:80", "2001:db8::1,fwd=tun,mac=02:00:00:00:00:01")])),
            "backend 2001:db8::1 tunnels IPv4 traffic across families: give --tun-src with an IPv6 address"
        );
        let mut no_mode = config(vec![service(None, "198.51.100.1:80", "10.0.0.1,mac=02:00:00:00:00:01")]);
        no_mode.mode = None;
        assert_eq!(build(no_mode), "backend 10.0.0.1: no forwarding method (give --mode nat|dr|tun)");
        let mut bad_sched = service(None, "198.51.100.1:80", "10.0.0.1,mac=02:00:00:00:00:01");
        bad_sched.sched = "nope".into();
        assert!(build(config(vec![bad_sched])).starts_with("unknown scheduler \"nope\""));
    }

    #[test]
    fn actions_change_the_services_or_say_they_matched_nothing() {
        let p =
            Pipeline::new(&config(vec![service(None, "198.51.100.1:80", "10.0.0.1,mac=02:00:00:00:00:01")]), &|_| None)
                .unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(p.apply(&Action::Drain(a)).unwrap(), "10.0.0.1 weight 1 -> 0 in 198.51.100.1:80");
        assert_eq!(p.services()[0].svc.destinations()[0].weight(), 0);
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            p.apply(&Action::Remove(other)).unwrap_err().to_string(),
            "Remove(10.0.0.9) matched no backend of any service"
        );
        assert_eq!(p.apply(&Action::Remove(a)).unwrap(), "10.0.0.1 removed from 198.51.100.1:80");
        assert_eq!(p.removed().len(), 1);
        assert!(p.services()[0].svc.destinations().is_empty());
    }
}
