//! Live next hops over rtnetlink: [`NextHops`] follows the kernel's routes and neighbours of
//! one interface, for a director that sends rewritten frames out of it.
//!
//! See [`NextHops`] for the contract.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use lb_rewrite::MacAddr;

use super::{nic, XdpError};
use crate::pipeline::LiveNextHops;

mod sys;
mod table;
mod wire;

use sys::NlSocket;
use table::{Snapshot, Tables};

/// What the listener thread makes of one datagram from the kernel, for the fuzz target
/// `netlink_messages` (not part of the API): every message of `datagram` parsed and applied to
/// tables of interface `ifindex` (at most 64 routes and 64 neighbours), then the next hop and
/// MAC toward `probe` looked up. Never panics; `(routes, neighbours, malformed, next hop, MAC)`.
#[doc(hidden)]
pub fn fuzz_datagram(
    ifindex: u32,
    datagram: &[u8],
    probe: IpAddr,
) -> (usize, usize, u64, Option<IpAddr>, Option<MacAddr>) {
    let mut t = Tables::new(ifindex, 64, 64);
    for m in wire::messages(datagram).flatten() {
        t.apply(&m);
    }
    let s = t.snapshot();
    let hop = s.next_hop(probe);
    (t.routes(), t.neighbours(), t.malformed, hop, hop.and_then(|h| s.mac(h)))
}

/// How often the thread looks at its stop flag and its queue when nothing arrives.
const TICK: Duration = Duration::from_millis(100);
/// Slots of the packet side's "asked recently" table (a power of two).
const ASK_SLOTS: usize = 256;
/// The receive buffer of the notification socket.
const NOTIFY_BUFFER: usize = 4 << 20;
/// One datagram: the kernel's dump datagrams stay under 32 KiB.
const DATAGRAM: usize = 64 << 10;
/// How long a dump may take before it is given up (and retried at the next `ENOBUFS`).
const DUMP_DEADLINE: Duration = Duration::from_secs(5);

/// Why an address has no next hop MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// No route out of the interface (or a blackhole / unreachable route).
    #[error("{addr} cannot be resolved: no route toward it out of the interface")]
    NoRoute {
        /// The address.
        addr: IpAddr,
    },
    /// A route, but no usable neighbour entry for its next hop (yet: resolution was asked for).
    #[error("{addr} cannot be resolved: no neighbour entry for its next hop {next_hop} (resolving)")]
    NoNeighbour {
        /// The address.
        addr: IpAddr,
        /// Its next hop (the address itself when directly connected).
        next_hop: IpAddr,
    },
}

/// What a [`NextHops`] has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextHopStats {
    /// Dumps of both tables (the first, and one after each `ENOBUFS`).
    pub dumps: u64,
    /// Notification messages applied.
    pub notifications: u64,
    /// Resolutions started (datagrams sent toward an unresolved next hop).
    pub resolutions: u64,
    /// Resolution requests dropped because the queue was full.
    pub dropped_requests: u64,
    /// Routes or neighbours not added because a table was full.
    pub overflow: u64,
    /// Socket errors, and resolution datagrams the kernel refused.
    pub errors: u64,
    /// Messages that did not parse (skipped).
    pub malformed: u64,
    /// Routes in the current snapshot.
    pub routes: u64,
    /// Neighbours in the current snapshot.
    pub neighbours: u64,
}

#[derive(Debug, Default)]
struct Counters {
    dumps: AtomicU64,
    notifications: AtomicU64,
    resolutions: AtomicU64,
    dropped_requests: AtomicU64,
    overflow: AtomicU64,
    errors: AtomicU64,
    malformed: AtomicU64,
    routes: AtomicU64,
    neighbours: AtomicU64,
}

/// What the packet side and the thread share.
#[derive(Debug)]
struct Shared {
    snapshot: ArcSwap<Snapshot>,
    stop: AtomicBool,
    /// Tenths of a second since open, kept by the thread.
    tick: AtomicU32,
    /// Per slot: the tag of the address last asked for (high 32 bits) and the tick it was
    /// asked at (low 32).
    asked: Box<[AtomicU64]>,
    hasher: ahash::RandomState,
    counters: Counters,
}

/// The kernel's next hops out of one interface, followed live.
///
/// * [`NextHops::open`] dumps the main table's routes (IPv4 and IPv6) and the neighbours of the
///   interface, then a background thread follows `RTM_NEWNEIGH` / `RTM_DELNEIGH` /
///   `RTM_NEWROUTE` / `RTM_DELROUTE` notifications (and dumps again when the kernel says it
///   dropped some: `ENOBUFS`).
/// * Packets read an immutable snapshot of both tables, published whole through an
///   `ArcSwap`: `mac_toward` (of [`LiveNextHops`]) takes no lock, makes no system call and allocates
///   nothing (arc-swap's per-thread slot is set up on a thread's first load).
/// * A miss (a route, but no usable neighbour entry for its next hop) asks the thread to
///   resolve the next hop through a bounded queue (`try_send`, which never blocks or allocates;
///   a full queue drops the request). The thread sends one empty UDP datagram to the next hop's
///   discard port (9) from a socket bound to the interface, as a first packet would: the kernel
///   queues it and sends ARP / NDP; the answer arrives as an `RTM_NEWNEIGH`. One request per
///   address per second at most, both on the packet side (a small table of atomics) and on the
///   thread's. The thread looks at the queue at least every 100 ms, so a neighbour that
///   answers at once is usable some 100 ms after the first miss.
/// * Routes that count: the main table's, out of the interface (`RTA_OIF`, or one of a
///   multipath route's next hops), longest prefix first, then the lowest metric; a blackhole,
///   unreachable or prohibit route of the main table means no next hop. Neighbours that count:
///   on the interface, with an Ethernet address, in a usable state (reachable, stale, delay,
///   probe, permanent, noarp; not incomplete or failed).
/// * Dropping it stops the thread within about 100 ms (a flag, and its socket's receive
///   timeout).
///
/// Limits: [`NextHops::MAX_ROUTES`] routes and [`NextHops::MAX_NEIGHBOURS`] neighbours; entries
/// past them are not added (counted in [`NextHopStats::overflow`]). The kernel does not notify
/// the IPv4 routes it removes with an interface going down; they stay until the next dump.
/// Nexthop objects (`RTA_NH_ID`) are not followed.
pub struct NextHops {
    iface: String,
    shared: Arc<Shared>,
    requests: SyncSender<IpAddr>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NextHops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextHops").field("iface", &self.iface).field("stats", &self.stats()).finish()
    }
}

fn refused(iface: &str, what: &str, e: io::Error) -> XdpError {
    if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::EACCES) {
        XdpError::NotPermitted(format!("netlink on {iface}: {what}: {e}"))
    } else {
        XdpError::Interface(format!("netlink on {iface}: {what}: {e}"))
    }
}

impl NextHops {
    /// Routes followed at most (both families); more are not added. Each packet scans them
    /// linearly: a director's main table is a few routes.
    pub const MAX_ROUTES: usize = 1024;
    /// Neighbours followed at most; more are not added.
    pub const MAX_NEIGHBOURS: usize = 65536;
    /// Resolution requests waiting for the thread at most.
    pub const QUEUE: usize = 256;

    /// Dumps the routes and neighbours of `iface` and starts following them.
    pub fn open(iface: &str) -> Result<NextHops, XdpError> {
        let ifindex = nic(iface)?.0;
        let notify = NlSocket::open(sys::GROUPS).map_err(|e| refused(iface, "socket", e))?;
        // A larger buffer than the default makes ENOBUFS (a re-dump) rarer; not fatal.
        let _ = notify.set_recv_buffer(NOTIFY_BUFFER);
        notify.set_recv_timeout(TICK).map_err(|e| refused(iface, "SO_RCVTIMEO", e))?;
        let request = NlSocket::open(0).map_err(|e| refused(iface, "socket", e))?;
        request.set_recv_timeout(TICK).map_err(|e| refused(iface, "SO_RCVTIMEO", e))?;
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            stop: AtomicBool::new(false),
            tick: AtomicU32::new(0),
            asked: (0..ASK_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: ahash::RandomState::new(),
            counters: Counters::default(),
        });
        let (requests, asks) = std::sync::mpsc::sync_channel(Self::QUEUE);
        let mut follower = Follower {
            iface: iface.to_string(),
            ifindex,
            notify,
            request,
            seq: 0,
            tables: Tables::new(ifindex, Self::MAX_ROUTES, Self::MAX_NEIGHBOURS),
            shared: Arc::clone(&shared),
            asks,
            last_asked: std::collections::HashMap::new(),
            udp4: None,
            udp6: None,
            buf: vec![0; DATAGRAM],
            start: Instant::now(),
        };
        follower.dump().map_err(|e| refused(iface, "dump", e))?;
        follower.publish();
        let thread = std::thread::Builder::new()
            .name(format!("nexthops-{iface}"))
            .spawn(move || follower.run())
            .map_err(|e| XdpError::Interface(format!("next hops thread: {e}")))?;
        Ok(NextHops { iface: iface.to_string(), shared, requests, thread: Some(thread) })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The next hop toward `addr` (its route's gateway, or itself when directly connected) and
    /// that next hop's MAC, if both are known now. Does not ask for resolution.
    pub fn resolved(&self, addr: IpAddr) -> Option<(IpAddr, MacAddr)> {
        let snap = self.shared.snapshot.load();
        let hop = snap.next_hop(addr)?;
        Some((hop, snap.mac(hop)?))
    }

    /// The addresses of `addrs` that cannot be resolved now, and why; resolution of their next
    /// hops is asked for (as a packet's miss would), so a later call may find them. For a
    /// director to report "backend X cannot be resolved" and try again.
    pub fn unresolved(&self, addrs: &[IpAddr]) -> Vec<Unresolved> {
        let snap = self.shared.snapshot.load();
        let mut out = Vec::new();
        for &addr in addrs {
            match snap.next_hop(addr) {
                None => out.push(Unresolved::NoRoute { addr }),
                Some(next_hop) if snap.mac(next_hop).is_none() => {
                    self.ask(next_hop);
                    out.push(Unresolved::NoNeighbour { addr, next_hop });
                }
                Some(_) => {}
            }
        }
        out
    }

    /// What it has done.
    pub fn stats(&self) -> NextHopStats {
        let c = &self.shared.counters;
        NextHopStats {
            dumps: c.dumps.load(Relaxed),
            notifications: c.notifications.load(Relaxed),
            resolutions: c.resolutions.load(Relaxed),
            dropped_requests: c.dropped_requests.load(Relaxed),
            overflow: c.overflow.load(Relaxed),
            errors: c.errors.load(Relaxed),
            malformed: c.malformed.load(Relaxed),
            routes: c.routes.load(Relaxed),
            neighbours: c.neighbours.load(Relaxed),
        }
    }

    /// Asks the thread to resolve `next_hop`, unless it was asked for less than a second ago
    /// (as far as the slot it hashes to remembers). No lock, no allocation, no system call.
    fn ask(&self, next_hop: IpAddr) {
        let s = &self.shared;
        let h = s.hasher.hash_one(next_hop);
        let slot = &s.asked[(h as usize) & (ASK_SLOTS - 1)];
        let tag = h >> 32;
        let now = s.tick.load(Relaxed);
        let v = slot.load(Relaxed);
        if v >> 32 == tag && now.wrapping_sub(v as u32) < 10 {
            return;
        }
        slot.store((tag << 32) | u64::from(now), Relaxed);
        if self.requests.try_send(next_hop).is_err() {
            s.counters.dropped_requests.fetch_add(1, Relaxed);
        }
    }
}

impl LiveNextHops for NextHops {
    fn mac_toward(&self, addr: IpAddr) -> Option<MacAddr> {
        let snap = self.shared.snapshot.load();
        let hop = snap.next_hop(addr)?;
        let mac = snap.mac(hop);
        if mac.is_none() {
            self.ask(hop);
        }
        mac
    }
}

impl Drop for NextHops {
    /// Stops the thread: it sees the flag within 100 ms (its socket's receive timeout).
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The background thread's state.
struct Follower {
    iface: String,
    ifindex: u32,
    notify: NlSocket,
    request: NlSocket,
    seq: u32,
    tables: Tables,
    shared: Arc<Shared>,
    asks: Receiver<IpAddr>,
    /// When each address was last resolved for (bounded: see [`Follower::resolve`]).
    last_asked: std::collections::HashMap<IpAddr, Instant>,
    udp4: Option<UdpSocket>,
    udp6: Option<UdpSocket>,
    buf: Vec<u8>,
    start: Instant,
}

impl Follower {
    fn run(mut self) {
        while !self.shared.stop.load(Relaxed) {
            let tick = (self.start.elapsed().as_millis() / TICK.as_millis()) as u32;
            self.shared.tick.store(tick, Relaxed);
            let changed = self.follow();
            if changed {
                self.publish();
            }
            self.drain_asks();
        }
    }

    /// Reads what notifications there are (waiting up to [`TICK`] for the first), applies
    /// them; whether the tables changed.
    fn follow(&mut self) -> bool {
        let mut changed = false;
        // Up to 64 datagrams in a row before publishing and looking at the queue again.
        for i in 0..64 {
            match self.notify.recv(&mut self.buf, i > 0) {
                Ok((n, truncated)) => {
                    if truncated {
                        self.shared.counters.errors.fetch_add(1, Relaxed);
                    }
                    for m in wire::messages(&self.buf[..n]) {
                        match m {
                            Ok(m) => {
                                self.shared.counters.notifications.fetch_add(1, Relaxed);
                                changed |= self.tables.apply(&m);
                            }
                            Err(_) => {
                                self.shared.counters.malformed.fetch_add(1, Relaxed);
                            }
                        }
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Notifications were dropped: the tables may be stale. Dump again.
                    match self.dump() {
                        Ok(()) => changed = true,
                        Err(_) => {
                            self.shared.counters.errors.fetch_add(1, Relaxed);
                        }
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => break,
                Err(_) => {
                    self.shared.counters.errors.fetch_add(1, Relaxed);
                    std::thread::sleep(TICK);
                    break;
                }
            }
        }
        changed
    }

    fn publish(&mut self) {
        let c = &self.shared.counters;
        c.overflow.store(self.tables.overflow, Relaxed);
        c.malformed.fetch_add(std::mem::take(&mut self.tables.malformed), Relaxed);
        c.routes.store(self.tables.routes() as u64, Relaxed);
        c.neighbours.store(self.tables.neighbours() as u64, Relaxed);
        self.shared.snapshot.store(Arc::new(self.tables.snapshot()));
    }

    /// Replaces the tables with a dump of the kernel's (retried up to 3 times when the kernel
    /// says the dump was interrupted by a change). Notifications that arrive meanwhile are
    /// applied after it: each carries a whole entry, so applying one twice is harmless.
    fn dump(&mut self) -> io::Result<()> {
        for _ in 0..3 {
            let mut fresh = Tables::new(self.ifindex, NextHops::MAX_ROUTES, NextHops::MAX_NEIGHBOURS);
            let mut interrupted = false;
            for kind in [wire::RTM_GETROUTE, wire::RTM_GETNEIGH] {
                interrupted |= self.dump_one(kind, &mut fresh)?;
            }
            if !interrupted {
                let (malformed, overflow) = (self.tables.malformed, self.tables.overflow);
                self.tables = fresh;
                self.tables.malformed += malformed;
                self.tables.overflow += overflow;
                self.shared.counters.dumps.fetch_add(1, Relaxed);
                return Ok(());
            }
        }
        Err(io::Error::other("dump interrupted three times"))
    }

    /// One dump into `into`; whether the kernel flagged it interrupted.
    fn dump_one(&mut self, kind: u16, into: &mut Tables) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.request.send(&wire::dump_request(kind, seq, 0))?;
        let deadline = Instant::now() + DUMP_DEADLINE;
        let mut interrupted = false;
        loop {
            if Instant::now() > deadline || self.shared.stop.load(Relaxed) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "dump"));
            }
            let (n, _) = match self.request.recv(&mut self.buf, false) {
                Ok(r) => r,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                Err(e) => return Err(e),
            };
            for m in wire::messages(&self.buf[..n]) {
                let m = m.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if m.seq != seq {
                    continue; // an answer to an earlier, abandoned dump
                }
                interrupted |= m.flags & wire::NLM_F_DUMP_INTR != 0;
                match m.kind {
                    wire::NLMSG_DONE | wire::NLMSG_ERROR => {
                        let status = wire::status(&m).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        if status < 0 {
                            return Err(io::Error::from_raw_os_error(-status));
                        }
                        return Ok(interrupted);
                    }
                    wire::NLMSG_NOOP => {}
                    _ => {
                        into.apply(&m);
                    }
                }
            }
        }
    }

    /// Resolves the next hops the packet side asked for.
    fn drain_asks(&mut self) {
        loop {
            match self.asks.try_recv() {
                Ok(addr) => self.resolve(addr),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    /// Makes the kernel resolve `addr` (a directly connected next hop) as a first packet
    /// would: one empty UDP datagram to its discard port, out of the interface. At most once a
    /// second per address; at most 4096 addresses remembered (older than a second forgotten
    /// first; beyond that, requests are dropped).
    fn resolve(&mut self, addr: IpAddr) {
        if self.tables.has_neighbour(addr) {
            return;
        }
        let now = Instant::now();
        if self.last_asked.get(&addr).is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1)) {
            return;
        }
        if self.last_asked.len() >= 4096 {
            self.last_asked.retain(|_, t| now.duration_since(*t) < Duration::from_secs(1));
            if self.last_asked.len() >= 4096 {
                self.shared.counters.dropped_requests.fetch_add(1, Relaxed);
                return;
            }
        }
        self.last_asked.insert(addr, now);
        let (sock, to) = match addr {
            IpAddr::V4(a) => (&mut self.udp4, SocketAddr::new(IpAddr::V4(a), 9)),
            IpAddr::V6(a) => {
                // A link-local next hop (an IPv6 default gateway, often) needs its scope.
                let scope = if a.segments()[0] & 0xffc0 == 0xfe80 { self.ifindex } else { 0 };
                (&mut self.udp6, SocketAddr::V6(SocketAddrV6::new(a, 9, 0, scope)))
            }
        };
        if sock.is_none() {
            let any = match addr {
                IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
                IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
            };
            if let Ok(s) = UdpSocket::bind(any) {
                // Out of our interface whatever other routes say (best effort: the next hop
                // is on a route out of it anyway).
                let _ = sys::bind_to_device(s.as_fd(), &self.iface);
                let _ = s.set_nonblocking(true);
                *sock = Some(s);
            }
        }
        match sock.as_ref().map(|s| s.send_to(&[], to)) {
            Some(Ok(_)) => {
                self.shared.counters.resolutions.fetch_add(1, Relaxed);
            }
            // Unreachable for now (a FAILED entry, a down link...): counted, retried later.
            _ => {
                self.shared.counters.errors.fetch_add(1, Relaxed);
            }
        }
    }
}
