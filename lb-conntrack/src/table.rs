//! The connection table.

use core::fmt;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use lb_sched::{fold_mul, proto, DestId, Destination, Flow, ForwardMethod, Protocol, Service, TcpFlags, Timestamp};
use parking_lot::Mutex;

use crate::config::{Config, ServiceParams, EVICTION_PROBES};
use crate::index::OpenIndex;
use crate::tcp::{self, Dir, State, ALL_STATES};

// ------------------------------------------------------------------------------------------
// Addresses

/// An address family's address as the table stores it.
pub(crate) trait Addr: Copy + Eq + Default + Send + Sync + fmt::Debug + 'static {
    fn to_ip(self) -> IpAddr;
    fn from_ip(ip: IpAddr) -> Self;
    fn words(self) -> (u64, u64);
    fn masked(self, v4_prefix: u8, v6_prefix: u8) -> Self;
}

impl Addr for u32 {
    #[inline]
    fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(_) => 0,
        }
    }
    #[inline]
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
    #[inline]
    fn words(self) -> (u64, u64) {
        (0, u64::from(self))
    }
    #[inline]
    fn masked(self, p: u8, _: u8) -> Self {
        match p {
            0 => 0,
            p if p >= 32 => self,
            p => self & (u32::MAX << (32 - p)),
        }
    }
}

impl Addr for u128 {
    #[inline]
    fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(a) => u128::from(a),
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        }
    }
    #[inline]
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
    #[inline]
    fn words(self) -> (u64, u64) {
        ((self >> 64) as u64, self as u64)
    }
    #[inline]
    fn masked(self, _: u8, p: u8) -> Self {
        match p {
            0 => 0,
            p if p >= 128 => self,
            p => self & (u128::MAX << (128 - p)),
        }
    }
}

/// An "in" key: what a client → virtual service packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key<A> {
    pub(crate) proto: u8,
    pub(crate) caddr: A,
    pub(crate) cport: u16,
    pub(crate) vaddr: A,
    pub(crate) vport: u16,
}

// ------------------------------------------------------------------------------------------
// Entries

const F_FWD: u8 = 0x03;
const F_NOOUTPUT: u8 = 0x04;
const F_INACTIVE: u8 = 0x08;
const F_TEMPLATE: u8 = 0x10;

const NO_LINK: u32 = u32::MAX;
const NIL: u32 = u32::MAX;
/// `queued_tick` of an entry that is on no queue.
const NOT_QUEUED: u64 = u64::MAX;
/// `queued_tick` of an entry that waits in a shard's `near` heap (its `prev` holds the heap
/// item's generation).
const NEAR: u64 = u64::MAX - 1;
const SHARD_BITS_IN_LINK: u32 = 8;
const SLOT_MASK_IN_LINK: u32 = (1 << (32 - SHARD_BITS_IN_LINK)) - 1;

/// Template timeout once it outlives its own while still controlling connections
/// (`ip_vs_conn_expire`: 60 s).
const CONTROL_GRACE_MS: u32 = 60_000;

#[derive(Clone, Debug)]
struct Entry<A> {
    caddr: A,
    vaddr: A,
    /// Nanoseconds.
    last_seen: u64,
    /// `None` for a free slot.
    dest: Option<Arc<Destination>>,
    cport: u16,
    vport: u16,
    /// The wheel tick this entry is queued at ([`NOT_QUEUED`], [`NEAR`]). Ticks of epoch
    /// timestamps do not fit 32 bits; the field fits the entry's padding.
    queued_tick: u64,
    /// Previous and next entries of its wheel bucket's list (`NIL` at the ends).
    prev: u32,
    next: u32,
    /// Connection: its controlling template (`shard << 24 | slot`) or `NO_LINK`.
    /// Template: the number of connections it controls (`n_control`).
    link: u32,
    timeout_ms: u32,
    proto: u8,
    state: u8,
    flags: u8,
}

impl<A: Addr> Entry<A> {
    fn free() -> Self {
        Entry {
            caddr: A::default(),
            vaddr: A::default(),
            last_seen: 0,
            dest: None,
            cport: 0,
            vport: 0,
            queued_tick: NOT_QUEUED,
            prev: NIL,
            next: NIL,
            link: NO_LINK,
            timeout_ms: 0,
            proto: 0,
            state: 0,
            flags: 0,
        }
    }

    #[inline]
    fn is_template(&self) -> bool {
        self.flags & F_TEMPLATE != 0
    }
    #[inline]
    fn fwd(&self) -> ForwardMethod {
        ForwardMethod::from_bits(self.flags & F_FWD).unwrap_or_default()
    }
    #[inline]
    fn state(&self) -> State {
        State::from_index(self.state).unwrap_or(State::Close)
    }
    #[inline]
    fn deadline(&self) -> u64 {
        self.last_seen.saturating_add(u64::from(self.timeout_ms) * 1_000_000)
    }
    /// The real server port: the destination's, or the virtual port for a port-0 destination.
    #[inline]
    fn dport(&self, d: &Destination) -> u16 {
        if d.port() == 0 {
            self.vport
        } else {
            d.port()
        }
    }
}

// ------------------------------------------------------------------------------------------
// Results

/// What the tracker knows of a connection, copied out (no reference into the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// Protocol.
    pub proto: Protocol,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port (the virtual port for a port-0 destination).
    pub dport: u16,
    /// The destination's identity in its service.
    pub dest: DestId,
    /// Forwarding method.
    pub fwd: ForwardMethod,
    /// State after this packet.
    pub state: State,
    /// When the connection last saw a packet.
    pub last_seen: Timestamp,
    /// Its idle timeout in its state: it expires at `last_seen + timeout`.
    pub timeout: core::time::Duration,
    /// Whether this packet created the connection.
    pub created: bool,
    /// Whether the packet met an old connection that was expired and scheduled anew
    /// (`conn_reuse_mode`, `expire_nodest_conn`).
    pub rescheduled: bool,
}

/// Why a packet of an unknown connection was not scheduled (IPVS lets it through to the
/// director's own stack, which usually answers with an RST).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotScheduled {
    /// A TCP RST never creates a connection.
    Rst,
    /// A TCP packet without SYN creates none unless `sloppy_tcp` is on.
    NotSyn,
    /// Not TCP or UDP, or source and destination of different families.
    Unsupported,
}

/// The outcome of a client → virtual service packet ([`ConnTable::input`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InVerdict {
    /// Forward to the connection's destination.
    Forward(ConnInfo),
    /// One-packet scheduling (UDP `-o`): forward to this destination; nothing was kept.
    OnePacket(ConnInfo),
    /// The packet may not create a connection.
    NotScheduled(NotScheduled),
    /// The service has no available destination (IPVS answers ICMP port unreachable).
    NoDestination,
    /// The connection's destination was removed and `expire_nodest_conn` is off: IPVS drops the
    /// packet silently; the connection survives, so re-adding the destination resumes it.
    DestUnavailable(ConnInfo),
    /// The table is full and nothing could be evicted.
    Refused,
}

/// The outcome of a server → client packet ([`ConnTable::output`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutVerdict {
    /// The reply belongs to this connection (for NAT: SNAT it to `vaddr:vport`).
    Forward(ConnInfo),
    /// No connection has this reply's tuple.
    NoConnection,
}

/// What one expiry pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireStats {
    /// Queue entries looked at (expired, re-queued because they were refreshed, or stale).
    pub visited: u64,
    /// Connections and templates removed.
    pub expired: u64,
}

/// Counters, summed over shards when read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections in the table (templates excluded).
    pub connections: u64,
    /// Persistence templates in the table.
    pub templates: u64,
    /// Connections per state, indexed by `State as usize`.
    pub states: [u64; ALL_STATES],
    /// Connections created.
    pub created: u64,
    /// Connections and templates expired.
    pub expired: u64,
    /// Embryonic connections evicted to make room.
    pub evicted: u64,
    /// New connections refused because the table was full.
    pub refused: u64,
    /// Connections expired early and scheduled anew.
    pub rescheduled: u64,
    /// Lookups that found a connection.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// Packets of unknown connections that may not create one.
    pub not_scheduled: u64,
    /// Packets with no destination available.
    pub no_destination: u64,
    /// Packets of connections whose destination was removed.
    pub dest_unavailable: u64,
    /// Packets handled by one-packet scheduling.
    pub one_packet: u64,
}

// ------------------------------------------------------------------------------------------
// Shards

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
const TICK_SHIFT: u32 = 27; // ~134 ms
const WHEEL: usize = 8192; // a turn: ~18 minutes

#[derive(Default, Clone, Copy)]
struct ShardStats {
    states: [u64; ALL_STATES],
    templates: u64,
    created: u64,
    expired: u64,
    evicted: u64,
    rescheduled: u64,
    hits: u64,
    misses: u64,
}

struct Shard<A> {
    chunks: Vec<Box<[Entry<A>]>>,
    free: Vec<u32>,
    in_idx: OpenIndex,
    out_idx: OpenIndex,
    /// Heads of the wheel buckets' intrusive lists.
    wheel: Vec<u32>,
    /// The first tick whose bucket has not been taken apart yet: every entry due before it is
    /// either expired or in `near`.
    wheel_tick: u64,
    /// Entries due within the ticks already taken apart, by deadline: `(deadline, slot, gen)`.
    /// Stale items (entry released or moved since) are recognised by `gen` and skipped.
    near: BinaryHeap<Reverse<(u64, u32, u32)>>,
    near_gen: u32,
    embryonic: Vec<u32>,
    /// Length at which `embryonic` is next compacted (twice what survived the last compaction).
    embryonic_limit: usize,
    live: usize,
    stats: ShardStats,
}

#[inline]
fn tick_of(ns: u64) -> u64 {
    ns >> TICK_SHIFT
}

impl<A: Addr> Shard<A> {
    fn new() -> Self {
        Shard {
            chunks: Vec::new(),
            free: Vec::new(),
            in_idx: OpenIndex::new(),
            out_idx: OpenIndex::new(),
            wheel: vec![NIL; WHEEL],
            wheel_tick: 0,
            near: BinaryHeap::new(),
            near_gen: 0,
            embryonic: Vec::new(),
            embryonic_limit: 64,
            live: 0,
            stats: ShardStats::default(),
        }
    }

    #[inline]
    fn e(&self, slot: u32) -> &Entry<A> {
        &self.chunks[(slot >> CHUNK_BITS) as usize][slot as usize & (CHUNK - 1)]
    }

    #[inline]
    fn e_mut(&mut self, slot: u32) -> &mut Entry<A> {
        &mut self.chunks[(slot >> CHUNK_BITS) as usize][slot as usize & (CHUNK - 1)]
    }

    #[inline]
    fn in_use(&self, slot: u32) -> bool {
        (slot as usize) < self.chunks.len() * CHUNK && self.e(slot).dest.is_some()
    }

    fn alloc(&mut self, entry: Entry<A>) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = (self.chunks.len() * CHUNK) as u32;
                self.chunks.push(vec![Entry::free(); CHUNK].into_boxed_slice());
                // Push the rest of the chunk, highest first, so slots are used in order.
                self.free.extend((s + 1..s + CHUNK as u32).rev());
                s
            }
        };
        *self.e_mut(slot) = entry;
        self.live += 1;
        slot
    }

    #[inline]
    fn find_in(&self, h: u64, k: &Key<A>, template: bool) -> Option<u32> {
        self.in_idx.find(h, |s| {
            let e = self.e(s);
            e.cport == k.cport
                && e.caddr == k.caddr
                && e.vport == k.vport
                && e.vaddr == k.vaddr
                && e.proto == k.proto
                && e.is_template() == template
                && e.dest.is_some()
        })
    }

    #[inline]
    fn find_out(&self, h: u64, proto: u8, caddr: A, cport: u16, daddr: IpAddr, dport: u16) -> Option<u32> {
        self.out_idx.find(h, |s| {
            let e = self.e(s);
            e.cport == cport
                && e.caddr == caddr
                && e.proto == proto
                && !e.is_template()
                && e.dest.as_ref().is_some_and(|d| d.addr() == daddr && e.dport(d) == dport)
        })
    }

    /// Takes `slot` off its wheel bucket or out of the near heap (whose item goes stale).
    #[inline]
    fn unlink(&mut self, slot: u32) {
        let (qt, p, n) = {
            let e = self.e(slot);
            (e.queued_tick, e.prev, e.next)
        };
        if qt == NOT_QUEUED {
            return;
        }
        if qt != NEAR {
            if p == NIL {
                self.wheel[qt as usize % WHEEL] = n;
            } else {
                self.e_mut(p).next = n;
            }
            if n != NIL {
                self.e_mut(n).prev = p;
            }
        }
        let e = self.e_mut(slot);
        e.queued_tick = NOT_QUEUED;
        e.prev = NIL;
        e.next = NIL;
    }

    /// Puts `slot` in the near heap at its deadline.
    #[inline]
    fn push_near(&mut self, slot: u32) {
        self.unlink(slot);
        self.near_gen = self.near_gen.wrapping_add(1);
        let g = self.near_gen;
        let e = self.e_mut(slot);
        e.queued_tick = NEAR;
        e.prev = g;
        let d = e.deadline();
        self.near.push(Reverse((d, slot, g)));
    }

    /// Queues `slot` at its deadline: on the wheel bucket of the deadline's tick, or in the near
    /// heap if that tick's bucket has been taken apart already.
    #[inline]
    fn schedule(&mut self, slot: u32) {
        let t = tick_of(self.e(slot).deadline());
        if t < self.wheel_tick {
            self.push_near(slot);
            return;
        }
        let t = t.min(NEAR - 1);
        if self.e(slot).queued_tick == t {
            return;
        }
        self.unlink(slot);
        let b = t as usize % WHEEL;
        let head = self.wheel[b];
        if head != NIL {
            self.e_mut(head).prev = slot;
        }
        let e = self.e_mut(slot);
        e.queued_tick = t;
        e.prev = NIL;
        e.next = head;
        self.wheel[b] = slot;
    }
}

// ------------------------------------------------------------------------------------------
// The table

struct Family<A> {
    shards: Box<[Mutex<Shard<A>>]>,
    bits: u32,
}

impl<A: Addr> Family<A> {
    fn new(n: usize) -> Self {
        Family { shards: (0..n).map(|_| Mutex::new(Shard::new())).collect(), bits: n.trailing_zeros() }
    }

    #[inline]
    fn index_of(&self, hc: u64) -> usize {
        if self.bits == 0 {
            0
        } else {
            (hc >> (64 - self.bits)) as usize
        }
    }
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;
const KIND_IN: u64 = 1;
const KIND_TMPL: u64 = 2;
const KIND_OUT: u64 = 3;

#[inline]
fn sub_hash<A: Addr>(hc: u64, addr: A, port: u16, kind: u64) -> u64 {
    let (hi, lo) = addr.words();
    fold_mul(hc ^ lo ^ K1, hi.rotate_left(17) ^ ((u64::from(port) << 8) | kind) ^ K2)
}

#[inline]
fn link_of(shard: usize, slot: u32) -> u32 {
    ((shard as u32) << (32 - SHARD_BITS_IN_LINK)) | slot
}

#[inline(always)]
fn info<A: Addr>(e: &Entry<A>, created: bool, rescheduled: bool) -> ConnInfo {
    let (daddr, dport, dest) = match e.dest.as_deref() {
        Some(d) => (d.addr(), e.dport(d), d.id()),
        None => (A::default().to_ip(), 0, DestId(u32::MAX)),
    };
    ConnInfo {
        proto: Protocol::from_number(e.proto).unwrap_or(Protocol::Tcp),
        caddr: e.caddr.to_ip(),
        cport: e.cport,
        vaddr: e.vaddr.to_ip(),
        vport: e.vport,
        daddr,
        dport,
        dest,
        fwd: e.fwd(),
        state: e.state(),
        last_seen: Timestamp::from_nanos(e.last_seen),
        timeout: core::time::Duration::from_millis(u64::from(e.timeout_ms)),
        created,
        rescheduled,
    }
}

/// A concurrent, bounded connection table with IPVS's state machine.
///
/// ## Concurrency
/// Connections live in `shards` lock shards per address family, chosen by a hash of
/// (protocol, client address, client port) — IPVS's own connection hash — so a connection and
/// the reverse ("out") index entry its NAT replies use sit under one lock. Lookups and state
/// updates of connections in different shards run in parallel; there is no global lock. The
/// only shared write is an atomic connection count, touched when a connection is created or
/// removed.
///
/// ## Expiry
/// Each shard has a timer wheel of 8,192 ticks of 2^27 ns (134 ms; about 18 minutes a turn)
/// whose buckets are intrusive lists through the entries. A connection is queued at the tick of its
/// deadline when it is created and whenever its state (hence its timeout) changes; a packet
/// that only refreshes `last_seen` does no queue work. An expiry pass walks only the buckets
/// whose tick has come: it removes the connections that are due, moves the ones refreshed
/// since they were queued to their real deadline (once per timeout period for a connection
/// that keeps talking), and skips entries queued for a later turn of the wheel (timeouts
/// beyond 18 minutes). Entries due later within a tick that has begun wait in a small heap
/// ordered by deadline, so repeated passes within one tick look only at what is due. It never
/// scans the table. A connection is removed when `now >= last_seen + timeout`, exactly.
///
/// ## Capacity policy
/// At most `max_connections` connections and templates. A new one that does not fit first
/// evicts an embryonic connection (SYN_RECV or SYNACK: a handshake never completed) from its own
/// shard, then from up to [`EVICTION_PROBES`] other shards that are not locked at that moment;
/// if none is found it is refused ([`InVerdict::Refused`]). Established and closing connections
/// are never evicted: a SYN flood can only displace other embryonic connections. Every
/// eviction and refusal is counted.
pub struct ConnTable {
    v4: Family<u32>,
    v6: Family<u128>,
    cfg: Config,
    timeouts_ms: [u32; ALL_STATES],
    states: &'static tcp::Table,
    total: AtomicUsize,
    seed: [u64; 2],
    refused: AtomicU64,
    not_scheduled: AtomicU64,
    no_destination: AtomicU64,
    dest_unavailable: AtomicU64,
    one_packet: AtomicU64,
}

impl fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable").field("len", &self.len()).field("config", &self.cfg).finish()
    }
}

enum Key2 {
    V4(Key<u32>),
    V6(Key<u128>),
}

fn key_of(flow: &Flow) -> Option<Key2> {
    if !flow.proto.has_ports() {
        return None;
    }
    let proto = flow.proto.number();
    match (flow.src, flow.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(Key2::V4(Key {
            proto,
            caddr: u32::from(s),
            cport: flow.src_port,
            vaddr: u32::from(d),
            vport: flow.dst_port,
        })),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(Key2::V6(Key {
            proto,
            caddr: u128::from(s),
            cport: flow.src_port,
            vaddr: u128::from(d),
            vport: flow.dst_port,
        })),
        _ => None,
    }
}

fn ms(d: core::time::Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

impl ConnTable {
    /// A table with this configuration.
    pub fn new(cfg: Config) -> Self {
        let shards = if cfg.shards == 0 {
            (cfg.max_connections / 32_768).next_power_of_two().clamp(8, 64)
        } else {
            cfg.shards.next_power_of_two().min(1 << SHARD_BITS_IN_LINK)
        };
        let seed = match cfg.hash_seed {
            Some(s) => [s ^ K1, s.rotate_left(32) ^ K2],
            None => {
                use std::hash::{BuildHasher, Hasher};
                let rs = std::collections::hash_map::RandomState::new();
                let mut h = rs.build_hasher();
                h.write_u64(0x006c_626b_6974);
                let a = h.finish();
                h.write_u64(a);
                [a | 1, h.finish()]
            }
        };
        let mut timeouts_ms = [0; ALL_STATES];
        for (t, d) in timeouts_ms.iter_mut().zip(cfg.timeouts.0) {
            *t = ms(d);
        }
        ConnTable {
            v4: Family::new(shards),
            v6: Family::new(shards),
            states: if cfg.secure_tcp { &tcp::SECURE } else { &tcp::NORMAL },
            timeouts_ms,
            cfg,
            total: AtomicUsize::new(0),
            seed,
            refused: AtomicU64::new(0),
            not_scheduled: AtomicU64::new(0),
            no_destination: AtomicU64::new(0),
            dest_unavailable: AtomicU64::new(0),
            one_packet: AtomicU64::new(0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Connections and templates held.
    pub fn len(&self) -> usize {
        self.total.load(Relaxed)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lock shard that holds the connection of `flow` (a client → virtual service flow),
    /// which is also where its replies are looked up: shards are chosen by the client's address,
    /// port and protocol. `None` for a flow the table does not key (a protocol without ports, or
    /// addresses of two families).
    ///
    /// Every packet takes its shard's lock, so two threads whose flows share shards move those
    /// locks' cache lines between their cores on nearly every packet. A data plane that steers
    /// flows to workers by this (as a NIC's RSS steers them to queues), so that each worker owns
    /// a disjoint set of shards, keeps each lock in one core's cache. BENCHMARKS.md measures both.
    pub fn shard_of(&self, flow: &Flow) -> Option<usize> {
        match key_of(flow)? {
            Key2::V4(k) => Some(self.v4.index_of(self.client_hash(k.proto, k.caddr, k.cport))),
            Key2::V6(k) => Some(self.v6.index_of(self.client_hash(k.proto, k.caddr, k.cport))),
        }
    }

    /// The number of lock shards of each address family (a power of two, from
    /// [`Config::max_connections`]); [`ConnTable::shard_of`] is below it.
    pub fn shard_count(&self) -> usize {
        self.v4.shards.len()
    }

    #[inline]
    fn client_hash<A: Addr>(&self, proto: u8, caddr: A, cport: u16) -> u64 {
        let (hi, lo) = caddr.words();
        fold_mul(lo ^ self.seed[0], hi ^ ((u64::from(cport) << 8) | u64::from(proto)) ^ self.seed[1])
    }

    /// Handles a client → virtual service packet of `flow` with TCP flags `tcp_flags` (ignored
    /// for UDP), for the service `svc` with parameters `params`: IPVS's `ip_vs_in` (see the
    /// crate docs for each outcome). `now` is the packet's time.
    pub fn input(
        &self,
        now: Timestamp,
        flow: &Flow,
        tcp_flags: u8,
        svc: &Service,
        params: &ServiceParams,
    ) -> InVerdict {
        match key_of(flow) {
            Some(Key2::V4(k)) => self.input_fam(&self.v4, now.as_nanos(), k, flow, tcp_flags, svc, params),
            Some(Key2::V6(k)) => self.input_fam(&self.v6, now.as_nanos(), k, flow, tcp_flags, svc, params),
            None => {
                self.not_scheduled.fetch_add(1, Relaxed);
                InVerdict::NotScheduled(NotScheduled::Unsupported)
            }
        }
    }

    /// Handles a batch of client packets for one service, writing one verdict per packet into
    /// `out` (which must be at least as long as `pkts`). Hashes are computed for the whole batch
    /// first and the home buckets of consecutive packets of the same shard are read under one
    /// lock, so the memory accesses of a burst overlap instead of queueing one after another.
    pub fn input_batch(
        &self,
        now: Timestamp,
        pkts: &[(Flow, u8)],
        svc: &Service,
        params: &ServiceParams,
        out: &mut [InVerdict],
    ) {
        const B: usize = 32;
        for (chunk, outs) in pkts.chunks(B).zip(out.chunks_mut(B)) {
            // Warm the index buckets of the whole chunk, one lock per run of equal shards.
            let mut hs = [(usize::MAX, 0u64, false); B];
            for (h, (flow, _)) in hs.iter_mut().zip(chunk) {
                *h = match key_of(flow) {
                    Some(Key2::V4(k)) => {
                        let hc = self.client_hash(k.proto, k.caddr, k.cport);
                        (self.v4.index_of(hc), sub_hash(hc, k.vaddr, k.vport, KIND_IN), false)
                    }
                    Some(Key2::V6(k)) => {
                        let hc = self.client_hash(k.proto, k.caddr, k.cport);
                        (self.v6.index_of(hc), sub_hash(hc, k.vaddr, k.vport, KIND_IN), true)
                    }
                    None => (usize::MAX, 0, false),
                };
            }
            let mut acc = 0u64;
            let mut i = 0;
            while i < chunk.len() {
                let (si, _, v6) = hs[i];
                if si == usize::MAX {
                    i += 1;
                    continue;
                }
                let mut j = i;
                if v6 {
                    let sh = self.v6.shards[si].lock();
                    while j < chunk.len() && hs[j].0 == si && hs[j].2 {
                        acc = acc.wrapping_add(sh.in_idx.touch(hs[j].1));
                        j += 1;
                    }
                } else {
                    let sh = self.v4.shards[si].lock();
                    while j < chunk.len() && hs[j].0 == si && !hs[j].2 {
                        acc = acc.wrapping_add(sh.in_idx.touch(hs[j].1));
                        j += 1;
                    }
                }
                i = j.max(i + 1);
            }
            std::hint::black_box(acc);
            for ((flow, f), o) in chunk.iter().zip(outs.iter_mut()) {
                *o = self.input(now, flow, *f, svc, params);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn input_fam<A: Addr>(
        &self,
        fam: &Family<A>,
        now: u64,
        k: Key<A>,
        flow: &Flow,
        f: u8,
        svc: &Service,
        params: &ServiceParams,
    ) -> InVerdict {
        let is_tcp = k.proto == proto::TCP;
        let syn = is_tcp && f & TcpFlags::SYN != 0;
        let hc = self.client_hash(k.proto, k.caddr, k.cport);
        let hin = sub_hash(hc, k.vaddr, k.vport, KIND_IN);
        let si = fam.index_of(hc);
        let mut rescheduled = false;
        let mut dropped_link = NO_LINK;
        {
            let mut sh = fam.shards[si].lock();
            let found = self.find_live(&mut sh, hin, &k, now, &mut dropped_link);
            if let Some(slot) = found {
                sh.stats.hits += 1;
                let (resched, available) = {
                    let e = sh.e(slot);
                    let (weight0, available) =
                        e.dest.as_deref().map_or((false, false), |d| (d.weight() == 0, d.is_available()));
                    let resched = self.cfg.conn_reuse_mode != 0
                        && syn
                        && ((self.cfg.expire_nodest_conn && weight0)
                            || (e.link == NO_LINK && self.new_conn_expected(e)));
                    (resched, available)
                };
                if resched || (!available && self.cfg.expire_nodest_conn) {
                    sh.stats.rescheduled += 1;
                    dropped_link = self.release(&mut sh, slot);
                    rescheduled = true;
                } else if !available {
                    self.dest_unavailable.fetch_add(1, Relaxed);
                    return InVerdict::DestUnavailable(info(sh.e(slot), false, false));
                } else {
                    return InVerdict::Forward(self.transition(&mut sh, slot, now, Dir::Input, f, false, false));
                }
            } else {
                sh.stats.misses += 1;
            }
        }
        self.drop_control(fam, dropped_link);

        // An unknown connection: may this packet create one? (tcp_conn_schedule)
        if is_tcp && (f & TcpFlags::RST != 0 || (!syn && !self.cfg.sloppy_tcp)) {
            self.not_scheduled.fetch_add(1, Relaxed);
            let why = if f & TcpFlags::RST != 0 { NotScheduled::Rst } else { NotScheduled::NotSyn };
            return InVerdict::NotScheduled(why);
        }

        // Choose the destination: from a persistence template, or from the scheduler.
        let (dest, tmpl) = match params.persistence {
            Some(p) => match self.persistent_dest(fam, now, &k, flow, svc, params, p) {
                Ok(x) => x,
                Err(v) => return v,
            },
            None => match svc.pick(flow) {
                Some(d) => (d, NO_LINK),
                None => {
                    self.no_destination.fetch_add(1, Relaxed);
                    return InVerdict::NoDestination;
                }
            },
        };

        if params.one_packet && k.proto == Protocol::Udp.number() {
            self.drop_control(fam, tmpl);
            self.one_packet.fetch_add(1, Relaxed);
            let mut e = Entry::free();
            e.caddr = k.caddr;
            e.vaddr = k.vaddr;
            e.cport = k.cport;
            e.vport = k.vport;
            e.proto = k.proto;
            e.state = State::Udp as u8;
            e.flags = dest.fwd() as u8;
            e.dest = Some(dest);
            return InVerdict::OnePacket(info(&e, true, rescheduled));
        }

        let mut sh = fam.shards[si].lock();
        // Another thread may have created it meanwhile: then this packet is just a hit.
        let mut stale_link = NO_LINK;
        let mut found = self.find_live(&mut sh, hin, &k, now, &mut stale_link);
        while stale_link != NO_LINK {
            // Rare: a concurrent connection that timed out too. Drop its template link with no
            // shard lock held, then look again.
            drop(sh);
            self.drop_control(fam, std::mem::replace(&mut stale_link, NO_LINK));
            sh = fam.shards[si].lock();
            found = self.find_live(&mut sh, hin, &k, now, &mut stale_link);
        }
        if let Some(slot) = found {
            let v = self.transition(&mut sh, slot, now, Dir::Input, f, false, rescheduled);
            drop(sh);
            self.drop_control(fam, tmpl);
            return InVerdict::Forward(v);
        }
        let evicted_link = match self.reserve(fam, &mut sh, si) {
            Some(l) => l,
            None => {
                drop(sh);
                self.drop_control(fam, tmpl);
                self.refused.fetch_add(1, Relaxed);
                return InVerdict::Refused;
            }
        };
        let fwd = dest.fwd();
        let mut flags = fwd as u8 | F_INACTIVE;
        if fwd.is_half_connection() {
            flags |= F_NOOUTPUT;
        }
        let (state, timeout_ms) = if is_tcp {
            // ip_vs_conn_new: NONE with a 3 s timeout, then the packet's transition.
            (State::None, 3000)
        } else {
            (State::Udp, self.timeouts_ms[State::Udp as usize])
        };
        let out_hash = (fwd == ForwardMethod::Masq).then(|| {
            let dport = if dest.port() == 0 { k.vport } else { dest.port() };
            sub_hash(hc, addr_of::<A>(dest.addr()), dport, KIND_OUT)
        });
        dest.bind_conn(false);
        let slot = sh.alloc(Entry {
            caddr: k.caddr,
            vaddr: k.vaddr,
            last_seen: now,
            dest: Some(dest),
            cport: k.cport,
            vport: k.vport,
            queued_tick: NOT_QUEUED,
            prev: NIL,
            next: NIL,
            link: tmpl,
            timeout_ms,
            proto: k.proto,
            state: state as u8,
            flags,
        });
        sh.stats.states[state as usize] += 1;
        sh.stats.created += 1;
        sh.in_idx.insert(hin, slot);
        if let Some(h) = out_hash {
            sh.out_idx.insert(h, slot);
        }
        let v = self.transition(&mut sh, slot, now, Dir::Input, f, true, rescheduled);
        drop(sh);
        self.drop_control(fam, evicted_link);
        InVerdict::Forward(v)
    }

    /// `is_new_conn_expected` (current kernels).
    fn new_conn_expected<A: Addr>(&self, e: &Entry<A>) -> bool {
        if e.proto != proto::TCP {
            return false;
        }
        match e.state() {
            State::TimeWait | State::Close => true,
            State::FinWait => self.cfg.conn_reuse_mode & 2 != 0 && e.flags & F_NOOUTPUT != 0,
            _ => false,
        }
    }

    /// The destination of a persistent service's new connection (`ip_vs_sched_persist`), and
    /// the link to the template that will control it.
    #[allow(clippy::too_many_arguments)]
    fn persistent_dest<A: Addr>(
        &self,
        fam: &Family<A>,
        now: u64,
        k: &Key<A>,
        flow: &Flow,
        svc: &Service,
        params: &ServiceParams,
        p: crate::config::Persistence,
    ) -> Result<(Arc<Destination>, u32), InVerdict> {
        let tk = if params.catch_all {
            Key { proto: 0, caddr: k.caddr.masked(p.v4_prefix, p.v6_prefix), cport: 0, vaddr: A::default(), vport: 0 }
        } else {
            Key {
                proto: k.proto,
                caddr: k.caddr.masked(p.v4_prefix, p.v6_prefix),
                cport: 0,
                vaddr: k.vaddr,
                vport: k.vport,
            }
        };
        let hct = self.client_hash(tk.proto, tk.caddr, 0);
        let ht = sub_hash(hct, tk.vaddr, tk.vport, KIND_TMPL);
        let ti = fam.index_of(hct);
        let mut sh = fam.shards[ti].lock();
        if let Some(slot) = sh.find_in(ht, &tk, true) {
            let ok = sh
                .e(slot)
                .dest
                .as_deref()
                .is_some_and(|d| d.is_available() && !(self.cfg.expire_quiescent_template && d.weight() == 0));
            if ok {
                let e = sh.e_mut(slot);
                e.link = e.link.saturating_add(1);
                e.last_seen = e.last_seen.max(now);
                let d = e.dest.clone();
                if let Some(d) = d {
                    return Ok((d, link_of(ti, slot)));
                }
            } else {
                // ip_vs_check_template: neutralise it (vport 0xffff) so a new one can be made;
                // it lives on, unused, until it expires.
                sh.in_idx.remove(ht, slot);
                sh.e_mut(slot).vport = 0xffff;
                sh.in_idx.insert(sub_hash(hct, tk.vaddr, 0xffff, KIND_TMPL), slot);
            }
        }
        let Some(d) = svc.pick(flow) else {
            self.no_destination.fetch_add(1, Relaxed);
            return Err(InVerdict::NoDestination);
        };
        let Some(evicted) = self.reserve(fam, &mut sh, ti) else {
            self.refused.fetch_add(1, Relaxed);
            return Err(InVerdict::Refused);
        };
        d.bind_template();
        let slot = sh.alloc(Entry {
            caddr: tk.caddr,
            vaddr: tk.vaddr,
            last_seen: now,
            dest: Some(Arc::clone(&d)),
            cport: 0,
            vport: tk.vport,
            queued_tick: NOT_QUEUED,
            prev: NIL,
            next: NIL,
            link: 1,
            timeout_ms: ms(p.timeout),
            proto: tk.proto,
            state: 0,
            flags: F_TEMPLATE | d.fwd() as u8,
        });
        sh.stats.templates += 1;
        sh.in_idx.insert(ht, slot);
        sh.schedule(slot);
        drop(sh);
        self.drop_control(fam, evicted);
        Ok((d, link_of(ti, slot)))
    }

    /// Handles a real server → client packet (`flow` as it travels: source = real server,
    /// destination = client): the OUTPUT side of the state machine. NAT connections are found
    /// through the reverse index (real server address and port); others through the forward
    /// index with source and destination swapped, as IPVS's "out" lookup does.
    pub fn output(&self, now: Timestamp, flow: &Flow, tcp_flags: u8) -> OutVerdict {
        match key_of(&flow.reversed()) {
            Some(Key2::V4(k)) => self.output_fam(&self.v4, now.as_nanos(), k, flow, tcp_flags),
            Some(Key2::V6(k)) => self.output_fam(&self.v6, now.as_nanos(), k, flow, tcp_flags),
            None => OutVerdict::NoConnection,
        }
    }

    /// The OUTPUT side of the state machine for the connection whose client → virtual service
    /// tuple is `client_flow`: for a caller that knows which connection a reply belongs to (a
    /// replay knows the virtual address the client saw). [`ConnTable::output`] has to find it
    /// by the real server's address, which several connections of one client port may share
    /// (the same real server behind two virtual addresses): IPVS then takes whichever it finds
    /// first.
    pub fn output_in(&self, now: Timestamp, client_flow: &Flow, tcp_flags: u8) -> OutVerdict {
        fn go<A: Addr>(t: &ConnTable, fam: &Family<A>, now: u64, k: Key<A>, f: u8) -> OutVerdict {
            let hc = t.client_hash(k.proto, k.caddr, k.cport);
            let mut sh = fam.shards[fam.index_of(hc)].lock();
            let mut link = NO_LINK;
            match t.find_live(&mut sh, sub_hash(hc, k.vaddr, k.vport, KIND_IN), &k, now, &mut link) {
                Some(slot) => {
                    sh.stats.hits += 1;
                    OutVerdict::Forward(t.transition(&mut sh, slot, now, Dir::Output, f, false, false))
                }
                None => {
                    sh.stats.misses += 1;
                    drop(sh);
                    t.drop_control(fam, link);
                    OutVerdict::NoConnection
                }
            }
        }
        match key_of(client_flow) {
            Some(Key2::V4(k)) => go(self, &self.v4, now.as_nanos(), k, tcp_flags),
            Some(Key2::V6(k)) => go(self, &self.v6, now.as_nanos(), k, tcp_flags),
            None => OutVerdict::NoConnection,
        }
    }

    fn output_fam<A: Addr>(&self, fam: &Family<A>, now: u64, k: Key<A>, flow: &Flow, f: u8) -> OutVerdict {
        // k is the reply reversed: caddr/cport = client, vaddr/vport = the reply's source.
        let hc = self.client_hash(k.proto, k.caddr, k.cport);
        let mut sh = fam.shards[fam.index_of(hc)].lock();
        let hout = sub_hash(hc, k.vaddr, k.vport, KIND_OUT);
        let mut slot = sh.find_out(hout, k.proto, k.caddr, k.cport, flow.src, flow.src_port).or_else(|| {
            sh.find_in(sub_hash(hc, k.vaddr, k.vport, KIND_IN), &k, false)
                .filter(|&s| sh.e(s).fwd() != ForwardMethod::Masq)
        });
        let mut dropped_link = NO_LINK;
        if let Some(s) = slot {
            if sh.e(s).deadline() <= now {
                // Its timer would have fired already: it is gone.
                dropped_link = self.release(&mut sh, s);
                sh.stats.expired += 1;
                slot = None;
            }
        }
        match slot {
            Some(slot) => {
                sh.stats.hits += 1;
                OutVerdict::Forward(self.transition(&mut sh, slot, now, Dir::Output, f, false, false))
            }
            None => {
                sh.stats.misses += 1;
                drop(sh);
                self.drop_control(fam, dropped_link);
                OutVerdict::NoConnection
            }
        }
    }

    /// The live connection under `k`: one found past its deadline is expired first (IPVS's
    /// timer would have fired at the deadline), so what a packet meets never depends on when
    /// [`ConnTable::expire`] last ran. A template link to drop is left in `link`.
    #[inline]
    fn find_live<A: Addr>(&self, sh: &mut Shard<A>, h: u64, k: &Key<A>, now: u64, link: &mut u32) -> Option<u32> {
        let slot = sh.find_in(h, k, false)?;
        if sh.e(slot).deadline() > now {
            return Some(slot);
        }
        *link = self.release(sh, slot);
        sh.stats.expired += 1;
        None
    }

    /// The connection of a client → virtual service `flow` at time `now`, without touching it
    /// (for ICMP errors that quote a connection's packet, and for telling replies from
    /// requests). A connection past its deadline at `now` is not returned.
    pub fn lookup_in(&self, now: Timestamp, flow: &Flow) -> Option<ConnInfo> {
        fn go<A: Addr>(t: &ConnTable, fam: &Family<A>, k: Key<A>, now: u64) -> Option<ConnInfo> {
            let hc = t.client_hash(k.proto, k.caddr, k.cport);
            let sh = fam.shards[fam.index_of(hc)].lock();
            sh.find_in(sub_hash(hc, k.vaddr, k.vport, KIND_IN), &k, false)
                .filter(|&s| sh.e(s).deadline() > now)
                .map(|s| info(sh.e(s), false, false))
        }
        match key_of(flow)? {
            Key2::V4(k) => go(self, &self.v4, k, now.as_nanos()),
            Key2::V6(k) => go(self, &self.v6, k, now.as_nanos()),
        }
    }

    /// The connection a real server → client `flow` belongs to at time `now`, without
    /// touching it.
    pub fn lookup_out(&self, now: Timestamp, flow: &Flow) -> Option<ConnInfo> {
        fn go<A: Addr>(t: &ConnTable, fam: &Family<A>, k: Key<A>, flow: &Flow, now: u64) -> Option<ConnInfo> {
            let hc = t.client_hash(k.proto, k.caddr, k.cport);
            let sh = fam.shards[fam.index_of(hc)].lock();
            let hout = sub_hash(hc, k.vaddr, k.vport, KIND_OUT);
            sh.find_out(hout, k.proto, k.caddr, k.cport, flow.src, flow.src_port)
                .or_else(|| {
                    sh.find_in(sub_hash(hc, k.vaddr, k.vport, KIND_IN), &k, false)
                        .filter(|&s| sh.e(s).fwd() != ForwardMethod::Masq)
                })
                .filter(|&s| sh.e(s).deadline() > now)
                .map(|s| info(sh.e(s), false, false))
        }
        match key_of(&flow.reversed())? {
            Key2::V4(k) => go(self, &self.v4, k, flow, now.as_nanos()),
            Key2::V6(k) => go(self, &self.v6, k, flow, now.as_nanos()),
        }
    }

    /// Applies a packet's transition (`set_tcp_state` / UDP refresh) and re-arms the timer.
    /// Inlined: its result is built straight into the caller's verdict (returning it through the
    /// stack costs a store-forwarding stall on the hit path).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn transition<A: Addr>(
        &self,
        sh: &mut Shard<A>,
        slot: u32,
        now: u64,
        dir: Dir,
        f: u8,
        created: bool,
        rescheduled: bool,
    ) -> ConnInfo {
        let e = sh.e_mut(slot);
        if now > e.last_seen {
            e.last_seen = now;
        }
        let old = e.state();
        let new = if e.proto == proto::TCP {
            let mut dir = dir;
            if e.flags & F_NOOUTPUT != 0 {
                if dir == Dir::Output {
                    e.flags &= !F_NOOUTPUT;
                } else {
                    dir = Dir::InputOnly;
                }
            }
            tcp::next_state(self.states, dir, f, old)
        } else {
            State::Udp
        };
        if new != old {
            if let Some(d) = e.dest.as_deref() {
                let inactive = e.flags & F_INACTIVE != 0;
                if !inactive && !new.is_active() {
                    d.conn_moved(false);
                    e.flags |= F_INACTIVE;
                } else if inactive && new.is_active() {
                    d.conn_moved(true);
                    e.flags &= !F_INACTIVE;
                }
            }
            e.state = new as u8;
        }
        e.timeout_ms = self.timeouts_ms[new as usize];
        let v = info(e, created, rescheduled);
        if new != old {
            sh.stats.states[old as usize] -= 1;
            sh.stats.states[new as usize] += 1;
            if new.is_embryonic() {
                sh.embryonic.push(slot);
                if sh.embryonic.len() > sh.embryonic_limit {
                    // Drop the candidates that left the embryonic states (amortised O(1)).
                    let mut emb = std::mem::take(&mut sh.embryonic);
                    emb.retain(|&s| sh.in_use(s) && !sh.e(s).is_template() && sh.e(s).state().is_embryonic());
                    emb.dedup();
                    emb.shrink_to(2 * emb.len() + 64);
                    sh.embryonic_limit = 2 * emb.len() + 64;
                    sh.embryonic = emb;
                }
            }
        }
        // Packets only move `last_seen` (the wheel catches up lazily, see `expire`); a new
        // state means a new timeout: queue the connection at its new deadline.
        if new != old || created {
            sh.schedule(slot);
        }
        v
    }

    /// Removes a live entry: indexes, counters, destination binding. Returns the link of the
    /// template that controlled it (to be dropped once no shard lock is held) or `NO_LINK`.
    fn release<A: Addr>(&self, sh: &mut Shard<A>, slot: u32) -> u32 {
        sh.unlink(slot);
        let e = std::mem::replace(sh.e_mut(slot), Entry::free());
        let Some(d) = e.dest.as_deref() else {
            // Not live: put back what was there (a free slot).
            *sh.e_mut(slot) = e;
            return NO_LINK;
        };
        let hc = self.client_hash(e.proto, e.caddr, e.cport);
        let template = e.is_template();
        let kind = if template { KIND_TMPL } else { KIND_IN };
        sh.in_idx.remove(sub_hash(hc, e.vaddr, e.vport, kind), slot);
        if !template && e.fwd() == ForwardMethod::Masq {
            sh.out_idx.remove(sub_hash(hc, addr_of::<A>(d.addr()), e.dport(d), KIND_OUT), slot);
        }
        if template {
            d.unbind_template();
            sh.stats.templates -= 1;
        } else {
            d.unbind_conn(e.flags & F_INACTIVE == 0);
            sh.stats.states[e.state as usize] -= 1;
        }
        sh.free.push(slot);
        sh.live -= 1;
        self.total.fetch_sub(1, Relaxed);
        if template {
            NO_LINK
        } else {
            e.link
        }
    }

    /// One fewer connection controlled by the template at `link`.
    fn drop_control<A: Addr>(&self, fam: &Family<A>, link: u32) {
        if link == NO_LINK {
            return;
        }
        let si = (link >> (32 - SHARD_BITS_IN_LINK)) as usize;
        let slot = link & SLOT_MASK_IN_LINK;
        if let Some(m) = fam.shards.get(si) {
            let mut sh = m.lock();
            if sh.in_use(slot) && sh.e(slot).is_template() {
                let e = sh.e_mut(slot);
                e.link = e.link.saturating_sub(1);
            }
        }
    }

    /// Makes room for one more entry in shard `si` (locked as `sh`). `Some(link)` on success,
    /// with the controlling-template link of an evicted connection (or `NO_LINK`).
    fn reserve<A: Addr>(&self, fam: &Family<A>, sh: &mut Shard<A>, si: usize) -> Option<u32> {
        if self.total.fetch_add(1, Relaxed) < self.cfg.max_connections {
            return Some(NO_LINK);
        }
        self.total.fetch_sub(1, Relaxed);
        let mut evicted = self.evict_embryonic(sh);
        if evicted.is_none() {
            let n = fam.shards.len();
            for i in 1..=EVICTION_PROBES.min(n.saturating_sub(1)) {
                if let Some(mut other) = fam.shards[(si + i) % n].try_lock() {
                    evicted = self.evict_embryonic(&mut other);
                    if evicted.is_some() {
                        break;
                    }
                }
            }
        }
        let link = evicted?;
        self.total.fetch_add(1, Relaxed);
        // The evicted connection's template lives in some shard that may be `sh` itself.
        if link != NO_LINK && (link >> (32 - SHARD_BITS_IN_LINK)) as usize == si {
            let slot = link & SLOT_MASK_IN_LINK;
            if sh.in_use(slot) && sh.e(slot).is_template() {
                let e = sh.e_mut(slot);
                e.link = e.link.saturating_sub(1);
            }
            return Some(NO_LINK);
        }
        Some(link)
    }

    fn evict_embryonic<A: Addr>(&self, sh: &mut Shard<A>) -> Option<u32> {
        while let Some(slot) = sh.embryonic.pop() {
            if sh.in_use(slot) && !sh.e(slot).is_template() && sh.e(slot).state().is_embryonic() {
                sh.stats.evicted += 1;
                return Some(self.release(sh, slot));
            }
        }
        None
    }

    /// Removes every connection and template idle past its timeout at `now`: the work is
    /// proportional to the queue entries due by `now`, not to the table's size. A template that
    /// still controls connections is kept 60 s more each time (IPVS).
    pub fn expire(&self, now: Timestamp) -> ExpireStats {
        let mut st = ExpireStats::default();
        let now = now.as_nanos();
        self.expire_fam(&self.v4, now, &mut st);
        self.expire_fam(&self.v6, now, &mut st);
        st
    }

    fn expire_fam<A: Addr>(&self, fam: &Family<A>, now: u64, st: &mut ExpireStats) {
        let now_tick = tick_of(now);
        let mut links = Vec::new();
        let mut due = Vec::new();
        for m in fam.shards.iter() {
            let mut sh = m.lock();
            if now_tick >= sh.wheel_tick {
                // Take apart the buckets of every tick that has begun: what is due goes, what is
                // due later in those ticks goes to the near heap, what was refreshed since it was
                // queued moves to its real deadline, and later turns of the wheel stay.
                let start = sh.wheel_tick.max(now_tick.saturating_sub(WHEEL as u64 - 1));
                sh.wheel_tick = now_tick + 1;
                for t in start..=now_tick {
                    let mut cur = sh.wheel[t as usize % WHEEL];
                    while cur != NIL {
                        st.visited += 1;
                        let (next, qt) = {
                            let e = sh.e(cur);
                            (e.next, e.queued_tick)
                        };
                        if qt <= now_tick {
                            self.expire_one(&mut sh, cur, now, &mut links, st);
                        }
                        cur = next;
                    }
                }
            }
            // The near heap: only what is due. Taken out first, so that an entry queued again
            // within this pass (a template given its grace at the very end of time, whose new
            // deadline saturates to `now`) waits for the next pass instead of looping.
            due.clear();
            while let Some(&Reverse((d, slot, g))) = sh.near.peek() {
                if d > now {
                    break;
                }
                sh.near.pop();
                due.push((slot, g));
            }
            for &(slot, g) in &due {
                if !sh.in_use(slot) || sh.e(slot).queued_tick != NEAR || sh.e(slot).prev != g {
                    continue; // stale
                }
                st.visited += 1;
                self.expire_one(&mut sh, slot, now, &mut links, st);
            }
        }
        for l in links {
            self.drop_control(fam, l);
        }
    }

    /// Expires `slot` if it is due at `now` (a template that still controls connections gets 60
    /// more seconds); otherwise queues it at its deadline.
    fn expire_one<A: Addr>(&self, sh: &mut Shard<A>, slot: u32, now: u64, links: &mut Vec<u32>, st: &mut ExpireStats) {
        let (deadline, template, controls) = {
            let e = sh.e(slot);
            (e.deadline(), e.is_template(), e.link)
        };
        if deadline > now {
            sh.schedule(slot);
        } else if template && controls > 0 {
            let e = sh.e_mut(slot);
            e.timeout_ms = CONTROL_GRACE_MS;
            e.last_seen = now;
            sh.schedule(slot);
        } else {
            links.push(self.release(sh, slot));
            sh.stats.expired += 1;
            st.expired += 1;
        }
    }

    /// Removes everything (counters released).
    pub fn clear(&self) {
        fn go<A: Addr>(t: &ConnTable, fam: &Family<A>) {
            let mut links = Vec::new();
            for m in fam.shards.iter() {
                let mut sh = m.lock();
                let n = (sh.chunks.len() * CHUNK) as u32;
                for slot in 0..n {
                    if sh.in_use(slot) {
                        links.push(t.release(&mut sh, slot));
                    }
                }
            }
            // Templates are gone too: nothing left to decrement.
            drop(links);
        }
        go(self, &self.v4);
        go(self, &self.v6);
    }

    /// Calls `f` with every connection (templates excluded), shard by shard.
    pub fn for_each(&self, mut f: impl FnMut(&ConnInfo)) {
        fn go<A: Addr>(fam: &Family<A>, f: &mut dyn FnMut(&ConnInfo)) {
            for m in fam.shards.iter() {
                let sh = m.lock();
                for chunk in &sh.chunks {
                    for e in chunk.iter().filter(|e| e.dest.is_some() && !e.is_template()) {
                        f(&info(e, false, false));
                    }
                }
            }
        }
        go(&self.v4, &mut f);
        go(&self.v6, &mut f);
    }

    /// The counters, summed over shards.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            refused: self.refused.load(Relaxed),
            not_scheduled: self.not_scheduled.load(Relaxed),
            no_destination: self.no_destination.load(Relaxed),
            dest_unavailable: self.dest_unavailable.load(Relaxed),
            one_packet: self.one_packet.load(Relaxed),
            ..Stats::default()
        };
        fn go<A: Addr>(fam: &Family<A>, s: &mut Stats) {
            for m in fam.shards.iter() {
                let sh = m.lock();
                let t = &sh.stats;
                for (a, b) in s.states.iter_mut().zip(t.states) {
                    *a += b;
                }
                s.templates += t.templates;
                s.created += t.created;
                s.expired += t.expired;
                s.evicted += t.evicted;
                s.rescheduled += t.rescheduled;
                s.hits += t.hits;
                s.misses += t.misses;
            }
        }
        go(&self.v4, &mut s);
        go(&self.v6, &mut s);
        s.connections = s.states.iter().sum();
        s
    }

    /// Bytes the table holds (entry slabs, indexes, timer queues), for memory accounting.
    pub fn memory_bytes(&self) -> usize {
        fn go<A: Addr>(fam: &Family<A>) -> usize {
            fam.shards
                .iter()
                .map(|m| {
                    let sh = m.lock();
                    sh.chunks.len() * CHUNK * std::mem::size_of::<Entry<A>>()
                        + sh.chunks.capacity() * std::mem::size_of::<usize>() * 2
                        + sh.free.capacity() * 4
                        + sh.in_idx.bytes()
                        + sh.out_idx.bytes()
                        + sh.wheel.capacity() * 4
                        + sh.embryonic.capacity() * 4
                })
                .sum()
        }
        go(&self.v4) + go(&self.v6)
    }

    /// The size of one IPv4 and one IPv6 entry.
    pub fn entry_sizes() -> (usize, usize) {
        (std::mem::size_of::<Entry<u32>>(), std::mem::size_of::<Entry<u128>>())
    }
}

/// A destination address in the table's family (a mismatched family maps to zero, which no
/// connection key carries).
#[inline]
fn addr_of<A: Addr>(ip: IpAddr) -> A {
    A::from_ip(ip)
}
