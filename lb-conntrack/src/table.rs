//! The connection table: [`ConnTable`], its construction, and the per-packet paths (input,
//! output and the state transition). Storage, keys, templates, capacity, expiry and read-only
//! views live in their own modules.

use core::fmt;
use core::time::Duration;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use lb_sched::{fold_mul, proto, Flow, ForwardMethod, Protocol, Service, TcpFlags, Timestamp};

use crate::config::{Config, ServiceParams};
use crate::entry::{
    conn_info, conn_info_at, Entry, F_INACTIVE, F_NOOUTPUT, NIL, NOT_QUEUED, NO_LINK, SHARD_BITS_IN_LINK,
};
use crate::key::{addr_of, key_of, sub_hash, Addr, FamilyKey, Key, K1, K2, KIND_IN, KIND_OUT};
use crate::lock::{Locked, Owned, ShardLock};
use crate::shard::{Family, Shard};
use crate::tcp::{self, Dir, State, ALL_STATES};
use crate::verdict::{ConnInfo, InVerdict, NotScheduled, OutVerdict};

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
/// shard, then from up to [`EVICTION_PROBES`](crate::EVICTION_PROBES) other shards that are not locked at that moment;
/// if none is found it is refused ([`InVerdict::Refused`]). Established and closing connections
/// are never evicted: a SYN flood can only displace other embryonic connections. Every
/// eviction and refusal is counted.
///
/// ## Partitions: per-worker storage
/// A `ConnTable` (`ConnTable<Locked>`) is `Sync`: any thread may process any packet, and each
/// takes its shard's lock. A [`Partition`] (`ConnTable<Owned>`, made by
/// [`ConnTable::partition`]) is the same table owned by one thread: `Send`, not `Sync`, and no
/// packet takes a lock. A data plane gives each worker a partition and steers every packet of a
/// connection (both directions, and the ICMP errors about it) to the worker that owns it, as DPVS
/// does with its per-core tables; a persistent service's client must stay on one worker too, so
/// its template and its connections meet. What the partitions of one table share: the bound
/// (`max_connections` counts every partition's entries: one atomic count, touched when an entry
/// is created or removed, never on a hit), the hash seed, the configuration, and the
/// destinations' active / inactive counts (atomics in [`lb_sched::Destination`], so lc / wlc
/// see the load of every partition). Each partition expires its own connections, on its own
/// clock; a full table makes room by evicting an embryonic connection of the partition that
/// needs the room (it cannot reach another's), else refuses, so the SYN-flood policy holds in
/// each. Statistics are per partition: sum them ([`Stats::merge`](crate::Stats::merge)).
pub struct ConnTable<L: ShardLock = Locked> {
    pub(crate) v4: Family<u32, L>,
    pub(crate) v6: Family<u128, L>,
    pub(crate) cfg: Config,
    pub(crate) timeouts_ms: [u32; ALL_STATES],
    /// `timeouts_ms` as `Duration`s (what a verdict carries).
    pub(crate) timeouts: [Duration; ALL_STATES],
    /// The state table (normal or secure_tcp), completed for every event and state.
    pub(crate) states: &'static tcp::FullTable,
    /// Entries held by this table and every partition that shares its bound.
    pub(crate) total: Arc<AtomicUsize>,
    pub(crate) seed: [u64; 2],
    pub(crate) refused: AtomicU64,
    pub(crate) not_scheduled: AtomicU64,
    pub(crate) no_destination: AtomicU64,
    pub(crate) dest_unavailable: AtomicU64,
    pub(crate) one_packet: AtomicU64,
}

/// A connection table one worker owns: no lock on any packet (see [`ConnTable`], "Partitions").
pub type Partition = ConnTable<Owned>;

impl<L: ShardLock> fmt::Debug for ConnTable<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable").field("len", &self.len()).field("config", &self.cfg).finish()
    }
}

/// A duration in milliseconds, saturated to `u32` (the entries' timeout field).
#[inline]
pub(crate) fn millis(d: Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

impl ConnTable {
    /// A table with this configuration.
    pub fn new(cfg: Config) -> Self {
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
        ConnTable::build(cfg, seed, Arc::new(AtomicUsize::new(0)))
    }

    /// A new, empty partition of this table, for one worker to own: the same configuration and
    /// hash seed, and the same bound (`max_connections` counts the entries of this table and of
    /// all its partitions together). See [`ConnTable`], "Partitions".
    pub fn partition(&self) -> Partition {
        ConnTable::build(self.cfg.clone(), self.seed, Arc::clone(&self.total))
    }
}

impl<L: ShardLock> ConnTable<L> {
    fn build(cfg: Config, seed: [u64; 2], total: Arc<AtomicUsize>) -> Self {
        let shards = if cfg.shards == 0 {
            (cfg.max_connections / 32_768).next_power_of_two().clamp(8, 64)
        } else {
            cfg.shards.next_power_of_two().min(1 << SHARD_BITS_IN_LINK)
        };
        let mut timeouts_ms = [0; ALL_STATES];
        for (t, d) in timeouts_ms.iter_mut().zip(cfg.timeouts.0) {
            *t = millis(d);
        }
        let timeouts = timeouts_ms.map(|ms| Duration::from_millis(u64::from(ms)));
        ConnTable {
            v4: Family::new(shards),
            v6: Family::new(shards),
            states: if cfg.secure_tcp { &tcp::SECURE_FULL } else { &tcp::NORMAL_FULL },
            timeouts_ms,
            timeouts,
            cfg,
            total,
            seed,
            refused: AtomicU64::new(0),
            not_scheduled: AtomicU64::new(0),
            no_destination: AtomicU64::new(0),
            dest_unavailable: AtomicU64::new(0),
            one_packet: AtomicU64::new(0),
        }
    }

    /// The table's hash of a client (protocol, address, port): it picks the shard, and every
    /// index hash of the client's entries starts from it.
    #[inline]
    pub(crate) fn client_hash<A: Addr>(&self, proto: u8, caddr: A, cport: u16) -> u64 {
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
            Some(FamilyKey::V4(k)) => self.input_fam(&self.v4, now.as_nanos(), k, flow, tcp_flags, svc, params),
            Some(FamilyKey::V6(k)) => self.input_fam(&self.v6, now.as_nanos(), k, flow, tcp_flags, svc, params),
            None => {
                self.not_scheduled.fetch_add(1, Relaxed);
                InVerdict::NotScheduled(NotScheduled::Unsupported)
            }
        }
    }

    /// Handles a batch of client packets for one service, writing one verdict per packet into
    /// `out` (which must be at least as long as `pkts`; verdicts past `pkts.len()` are left as
    /// they are). Verdicts, counters and the table's contents are exactly those of calling
    /// [`ConnTable::input`] for each packet in turn. Each chunk of 32 packets is
    /// [warmed](ConnTable::warm) before its packets are handled.
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
            let mut flows = [chunk[0].0; B];
            for (f, (flow, _)) in flows.iter_mut().zip(chunk) {
                *f = *flow;
            }
            let _ = self.warm(&flows[..chunk.len()]);
            for ((flow, f), o) in chunk.iter().zip(outs.iter_mut()) {
                *o = self.input(now, flow, *f, svc, params);
            }
        }
    }

    /// Loads into the cache what the packets of `flows` (each as its client sends it: client →
    /// virtual service) will read first: the home bucket of each connection's index entry, and
    /// the entry it names. A burst of packets is warmed first and then handled, so their cache
    /// misses overlap instead of coming one after another (what VPP and DPDK do with prefetch
    /// instructions, which safe Rust cannot issue: these are plain loads, independent of each
    /// other). One lock per run of consecutive flows in one shard; changes nothing. Returns a
    /// value folded from what was read: keep it (the loads are its inputs).
    pub fn warm(&self, flows: &[Flow]) -> u64 {
        const B: usize = 64;
        let mut acc = 0u64;
        for chunk in flows.chunks(B) {
            // (shard, in-index hash, IPv6) of each flow; `usize::MAX`: not keyed.
            let mut hs = [(usize::MAX, 0u64, false); B];
            for (h, flow) in hs.iter_mut().zip(chunk) {
                *h = match key_of(flow) {
                    Some(FamilyKey::V4(k)) => {
                        let hc = self.client_hash(k.proto, k.caddr, k.cport);
                        (self.v4.index_of(hc), sub_hash(hc, k.vaddr, k.vport, KIND_IN), false)
                    }
                    Some(FamilyKey::V6(k)) => {
                        let hc = self.client_hash(k.proto, k.caddr, k.cport);
                        (self.v6.index_of(hc), sub_hash(hc, k.vaddr, k.vport, KIND_IN), true)
                    }
                    None => (usize::MAX, 0, false),
                };
            }
            let hs = &hs[..chunk.len()];
            let mut i = 0;
            while i < hs.len() {
                let (si, _, v6) = hs[i];
                if si == usize::MAX {
                    i += 1;
                    continue;
                }
                // The run of flows in the same shard, under one lock.
                let run = hs[i..].iter().take_while(|h| h.0 == si && h.2 == v6);
                if v6 {
                    let sh = self.v6.hold(si);
                    for h in run {
                        acc = acc.wrapping_add(sh.warm(h.1));
                        i += 1;
                    }
                } else {
                    let sh = self.v4.hold(si);
                    for h in run {
                        acc = acc.wrapping_add(sh.warm(h.1));
                        i += 1;
                    }
                }
            }
        }
        acc
    }

    /// A client packet of family `A`: the hit path (an existing, live connection whose
    /// destination is available), inlined; everything else in [`ConnTable::input_new`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn input_fam<A: Addr>(
        &self,
        fam: &Family<A, L>,
        now: u64,
        k: Key<A>,
        flow: &Flow,
        f: u8,
        svc: &Service,
        params: &ServiceParams,
    ) -> InVerdict {
        let syn = k.proto == proto::TCP && f & TcpFlags::SYN != 0;
        let hc = self.client_hash(k.proto, k.caddr, k.cport);
        let hin = sub_hash(hc, k.vaddr, k.vport, KIND_IN);
        let si = fam.index_of(hc);
        let mut rescheduled = false;
        let mut dropped_link = NO_LINK;
        {
            let mut sh = fam.hold(si);
            match sh.find_in(hin, &k, false) {
                Some(slot) => {
                    let e = sh.entry_mut(slot);
                    if e.deadline() > now {
                        // The reuse check reads the destination's weight only for a SYN that
                        // may reuse a connection (conn_reuse_mode).
                        let reuse = syn && self.cfg.conn_reuse_mode != 0;
                        let (resched, available) = match e.dest.as_deref() {
                            Some(d) => (
                                reuse
                                    && ((self.cfg.expire_nodest_conn && d.weight() == 0)
                                        || (e.link == NO_LINK && self.new_conn_expected(e))),
                                d.is_available(),
                            ),
                            None => (reuse && e.link == NO_LINK && self.new_conn_expected(e), false),
                        };
                        if !resched && available {
                            let new = self.step(e, now, Dir::Input, f);
                            let timeout = self.timeouts[new as usize];
                            let v = if new != e.state {
                                self.state_moved(&mut sh, slot, new);
                                conn_info_at(sh.entry(slot), new, timeout, false, false)
                            } else {
                                conn_info_at(e, new, timeout, false, false)
                            };
                            sh.stats.hits += 1;
                            return InVerdict::Forward(v);
                        }
                        sh.stats.hits += 1;
                        if resched || self.cfg.expire_nodest_conn {
                            sh.stats.rescheduled += 1;
                            dropped_link = self.release(&mut sh, slot);
                            rescheduled = true;
                        } else {
                            self.dest_unavailable.fetch_add(1, Relaxed);
                            return InVerdict::DestUnavailable(conn_info(sh.entry(slot), false, false));
                        }
                    } else {
                        // Past its deadline: its timer would have fired (see `find_live`).
                        dropped_link = self.release(&mut sh, slot);
                        sh.stats.expired += 1;
                        sh.stats.misses += 1;
                    }
                }
                None => sh.stats.misses += 1,
            }
        }
        self.input_new(fam, now, k, flow, f, svc, params, (hc, hin, si), rescheduled, dropped_link)
    }

    /// The rest of [`ConnTable::input`] after the first lookup missed (or met a connection to
    /// schedule anew): IPVS's scheduling and connection creation. `hashes` are the client hash,
    /// the in-index hash and the shard index of `k`; `dropped_link` is a template link the
    /// lookup left to drop.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn input_new<A: Addr>(
        &self,
        fam: &Family<A, L>,
        now: u64,
        k: Key<A>,
        flow: &Flow,
        f: u8,
        svc: &Service,
        params: &ServiceParams,
        (hc, hin, si): (u64, u64, usize),
        rescheduled: bool,
        dropped_link: u32,
    ) -> InVerdict {
        let is_tcp = k.proto == proto::TCP;
        let syn = is_tcp && f & TcpFlags::SYN != 0;
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
            e.state = State::Udp;
            e.flags = dest.fwd() as u8;
            e.dest = Some(dest);
            return InVerdict::OnePacket(conn_info(&e, true, rescheduled));
        }

        let mut sh = fam.hold(si);
        // Another thread may have created it meanwhile: then this packet is just a hit.
        let mut stale_link = NO_LINK;
        let mut found = self.find_live(&mut sh, hin, &k, now, &mut stale_link);
        while stale_link != NO_LINK {
            // Rare: a concurrent connection that timed out too. Drop its template link with no
            // shard lock held, then look again.
            drop(sh);
            self.drop_control(fam, std::mem::replace(&mut stale_link, NO_LINK));
            sh = fam.hold(si);
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
            state,
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

    /// Handles a real server → client packet (`flow` as it travels: source = real server,
    /// destination = client): the OUTPUT side of the state machine. NAT connections are found
    /// through the reverse index (real server address and port); others through the forward
    /// index with source and destination swapped, as IPVS's "out" lookup does.
    pub fn output(&self, now: Timestamp, flow: &Flow, tcp_flags: u8) -> OutVerdict {
        match key_of(&flow.reversed()) {
            Some(FamilyKey::V4(k)) => self.output_fam(&self.v4, now.as_nanos(), k, flow, tcp_flags),
            Some(FamilyKey::V6(k)) => self.output_fam(&self.v6, now.as_nanos(), k, flow, tcp_flags),
            None => OutVerdict::NoConnection,
        }
    }

    /// Handles a real server → client packet whose connection the caller names by its client
    /// → virtual service tuple, `client_flow` (the reply's flow reversed, with the virtual
    /// address and port the client sent to): the OUTPUT side of the state machine, as
    /// [`ConnTable::output`], without its reverse lookup.
    ///
    /// For a caller that knows which connection a reply belongs to (a replay knows the virtual
    /// address the client saw). [`ConnTable::output`] has to find the connection by the real
    /// server's address and port, which several connections of one client port may share (the
    /// same real server behind two virtual addresses): IPVS then takes whichever it finds first.
    /// [`OutVerdict::NoConnection`] when no live connection has this tuple.
    pub fn output_for_client(&self, now: Timestamp, client_flow: &Flow, tcp_flags: u8) -> OutVerdict {
        #[inline]
        fn go<A: Addr, L: ShardLock>(t: &ConnTable<L>, fam: &Family<A, L>, now: u64, k: Key<A>, f: u8) -> OutVerdict {
            let hc = t.client_hash(k.proto, k.caddr, k.cport);
            let mut sh = fam.hold(fam.index_of(hc));
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
            Some(FamilyKey::V4(k)) => go(self, &self.v4, now.as_nanos(), k, tcp_flags),
            Some(FamilyKey::V6(k)) => go(self, &self.v6, now.as_nanos(), k, tcp_flags),
            None => OutVerdict::NoConnection,
        }
    }

    fn output_fam<A: Addr>(&self, fam: &Family<A, L>, now: u64, k: Key<A>, flow: &Flow, f: u8) -> OutVerdict {
        // k is the reply reversed: caddr/cport = client, vaddr/vport = the reply's source.
        let hc = self.client_hash(k.proto, k.caddr, k.cport);
        let mut sh = fam.hold(fam.index_of(hc));
        let hout = sub_hash(hc, k.vaddr, k.vport, KIND_OUT);
        let mut slot = sh.find_out(hout, k.proto, k.caddr, k.cport, flow.src, flow.src_port).or_else(|| {
            sh.find_in(sub_hash(hc, k.vaddr, k.vport, KIND_IN), &k, false)
                .filter(|&s| sh.entry(s).fwd() != ForwardMethod::Masq)
        });
        let mut dropped_link = NO_LINK;
        if let Some(s) = slot {
            if sh.entry(s).deadline() <= now {
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
        if sh.entry(slot).deadline() > now {
            return Some(slot);
        }
        *link = self.release(sh, slot);
        sh.stats.expired += 1;
        None
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
        let e = sh.entry_mut(slot);
        let new = self.step(e, now, dir, f);
        let timeout = self.timeouts[new as usize];
        if new != e.state || created {
            self.state_moved(sh, slot, new);
            conn_info_at(sh.entry(slot), new, timeout, created, rescheduled)
        } else {
            conn_info_at(e, new, timeout, created, rescheduled)
        }
    }

    /// The part of a transition that touches only the entry: `last_seen`, the half-connection
    /// flag, the timeout of the new state. Returns the new state; `e.state` still holds the old
    /// one ([`ConnTable::state_moved`] moves it).
    #[inline(always)]
    fn step<A: Addr>(&self, e: &mut Entry<A>, now: u64, dir: Dir, f: u8) -> State {
        if now > e.last_seen {
            e.last_seen = now;
        }
        let new = if e.proto == proto::TCP {
            let mut dir = dir;
            if e.flags & F_NOOUTPUT != 0 {
                if dir == Dir::Output {
                    e.flags &= !F_NOOUTPUT;
                } else {
                    dir = Dir::InputOnly;
                }
            }
            tcp::next_state_full(self.states, dir, f, e.state)
        } else {
            State::Udp
        };
        e.timeout_ms = self.timeouts_ms[new as usize];
        new
    }

    /// The rest of a transition that changes the state (or creates the connection): the
    /// destination's active / inactive counts, the state counters, the embryonic list, and the
    /// timer, queued at the new deadline (packets that keep the state only move `last_seen`; the
    /// wheel catches up lazily, see `expire`).
    #[inline(never)]
    fn state_moved<A: Addr>(&self, sh: &mut Shard<A>, slot: u32, new: State) {
        let e = sh.entry_mut(slot);
        let old = e.state;
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
            e.state = new;
            sh.stats.states[old as usize] -= 1;
            sh.stats.states[new as usize] += 1;
            if new.is_embryonic() {
                sh.embryonic.push(slot);
                if sh.embryonic.len() > sh.embryonic_limit {
                    // Drop the candidates that left the embryonic states (amortised O(1)).
                    let mut emb = std::mem::take(&mut sh.embryonic);
                    emb.retain(|&s| sh.in_use(s) && !sh.entry(s).is_template() && sh.entry(s).state().is_embryonic());
                    emb.dedup();
                    emb.shrink_to(2 * emb.len() + 64);
                    sh.embryonic_limit = 2 * emb.len() + 64;
                    sh.embryonic = emb;
                }
            }
        }
        sh.schedule(slot);
    }
}
