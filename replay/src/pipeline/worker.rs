//! A worker: one thread's way through the [`Pipeline`], frame by frame, in call order: process
//! (parse, classify), then request, reply or ICMP error, then the rewrite and its outcome.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;

use lb_conntrack::{ConnInfo, ConnTable, InVerdict, NotScheduled, OutVerdict, Partition, Stats};
use lb_rewrite::{
    build_time_exceeded, build_too_big, dnat, dr, nat_icmp_in, nat_icmp_out, parse, snat, tun, DiscardFragments, Encap,
    FragmentSink, FrameBuf, MacAddr, NextHop, Packet, ReplySource, RewriteError, Tunnel, Verdict,
};
use lb_sched::{Flow, ForwardMethod, Timestamp};

use super::services::fam;
use super::{Counters, DropReason, Outcome, Pipeline};

/// The connection table a worker uses.
#[derive(Debug)]
enum Conns<'p> {
    /// The pipeline's shared table: any worker may process any frame.
    Shared(&'p ConnTable),
    /// A partition this worker owns: every frame of its connections must reach it.
    Owned(Box<Partition>),
}

/// `$body` with `$t` bound to the worker's connection table, whichever kind it is (the same
/// methods on both: one branch, always predicted, where the shared table takes a lock).
macro_rules! conns {
    ($w:expr, |$t:ident| $body:expr) => {
        match &$w.conns {
            Conns::Shared($t) => $body,
            Conns::Owned($t) => $body,
        }
    };
}

/// A worker: processes frames through a shared [`Pipeline`], counting.
///
/// Its connections live either in the pipeline's shared table ([`Worker::new`]: any worker may
/// process any frame, each packet takes its shard's lock) or in a partition the worker owns
/// ([`Worker::owning`]: no lock on any packet; the caller steers every frame to the worker that
/// owns its connection, with [`Pipeline::steer`]).
#[derive(Debug)]
pub struct Worker<'p> {
    pub(super) p: &'p Pipeline,
    conns: Conns<'p>,
    /// This worker's counters.
    pub counters: Counters,
    reply: Box<[u8]>,
    since_expire: u32,
    /// Whether [`Worker::process`] runs the connection table's expiry itself (every 1024
    /// frames, at the frame's time). A driver with several workers on the shared table turns it
    /// off and expires at the time all workers have reached, so no worker's clock expires
    /// another's connections early; a worker that owns its connections expires them on its own
    /// clock.
    pub auto_expire: bool,
    /// From this many connections in the table, [`Worker::process_burst`] warms each burst's
    /// lookups before handling it (default [`super::WARM_FROM`]; 0: always, `usize::MAX`:
    /// never).
    pub warm_from: usize,
    /// Folded from what [`Worker::process_burst`] warmed, so its loads are kept.
    pub(super) warmth: u64,
}

/// Which way a packet of a service travels.
#[derive(Clone, Copy, Debug)]
pub(super) enum Class {
    /// Client → virtual service.
    Request(usize),
    /// Real server (or virtual service) → client.
    Reply(usize),
}

/// What is known of a frame's service before [`Worker::dispatch`] (a burst looks its frames up
/// ahead).
#[derive(Clone, Copy, Debug)]
pub(super) enum Hint {
    /// Nothing: look it up.
    Unknown,
    /// The service that claims it by address, and its direction.
    ByAddress(Class),
    /// No service claims it by address (a catch-all service may).
    NotByAddress,
}

/// Who an ICMP error about a packet goes to.
#[derive(Clone, Copy)]
enum Sender {
    /// The packet's source, as the frame carries it.
    AsItCame,
    /// The real server of this connection, which sent the reply (NAT).
    RealServer(ConnInfo),
}

/// The caller's sink, counting the fragments a rewrite hands it.
struct CountingSink<'s> {
    sink: &'s mut dyn FnMut(&[u8]),
    fragments: u64,
}

impl FragmentSink for CountingSink<'_> {
    #[inline]
    fn fragment(&mut self, frame: &[u8]) {
        self.fragments += 1;
        (self.sink)(frame)
    }
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

/// Whether both ends of `flow` are unicast ([`is_unicast`]).
#[inline]
fn is_unicast_flow(flow: &Flow) -> bool {
    is_unicast(flow.src) && is_unicast(flow.dst)
}

/// Whether `a` can be the source or destination of a connection a director forwards: not
/// multicast, broadcast, unspecified, loopback or otherwise reserved (RFC 1812 §5.3.7 for IPv4:
/// 0/8, 127/8, 224/4 and 240/4; RFC 4291 for IPv6: `::`, `::1`, ff00::/8).
#[inline]
fn is_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            let first = v4.octets()[0];
            first != 0 && first != 127 && first < 224
        }
        // Not ff00::/8, and not :: or ::1 (the two addresses below 2).
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            bits >> 120 != 0xff && bits > 1
        }
    }
}

fn mac_at(frame: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    if let Some(s) = frame.get(at..at + 6) {
        m.copy_from_slice(s);
    }
    MacAddr(m)
}

impl<'p> Worker<'p> {
    /// A worker on `p` whose connections live in `p`'s shared table.
    pub fn new(p: &'p Pipeline) -> Self {
        Self::with(p, Conns::Shared(&p.table))
    }

    /// A worker on `p` that owns its connections: they live in a new partition of `p`'s table
    /// ([`lb_conntrack::Partition`]) that only this worker sees, so no packet takes a lock. The
    /// caller hands it every frame [`Pipeline::steer`] gives it and no other (a frame of a
    /// connection another worker owns would not find it), and only when
    /// [`Pipeline::can_partition`] says steering keeps each connection, and each persistent
    /// client, on one worker. The partitions share the table's bound and the destinations'
    /// counts.
    pub fn owning(p: &'p Pipeline) -> Self {
        Self::with(p, Conns::Owned(Box::new(p.table.partition())))
    }

    fn with(p: &'p Pipeline, conns: Conns<'p>) -> Self {
        Worker {
            p,
            conns,
            counters: Counters::default(),
            reply: vec![0u8; 2048].into_boxed_slice(),
            since_expire: 0,
            auto_expire: true,
            warm_from: super::WARM_FROM,
            warmth: 0,
        }
    }

    /// Whether this worker owns its connections ([`Worker::owning`]).
    pub fn owns_connections(&self) -> bool {
        matches!(self.conns, Conns::Owned(_))
    }

    /// The partition this worker owns, if it does ([`Worker::owning`]): its statistics are
    /// its own (add them to the shared table's with [`Stats::merge`]).
    pub fn partition(&self) -> Option<&Partition> {
        match &self.conns {
            Conns::Owned(t) => Some(t),
            Conns::Shared(_) => None,
        }
    }

    /// The partition this worker owns, if it does, for the caller to keep: what it holds stays
    /// counted at the destinations while it lives (dropping it gives that back).
    pub fn into_partition(self) -> Option<Partition> {
        match self.conns {
            Conns::Owned(t) => Some(*t),
            Conns::Shared(_) => None,
        }
    }

    /// The statistics of the connections this worker's table holds: its partition's, or the
    /// shared table's.
    pub fn table_stats(&self) -> Stats {
        conns!(self, |t| t.stats())
    }

    /// Expires the idle connections of this worker's table at `now`: its partition, or the
    /// shared table.
    pub fn expire(&mut self, now: Timestamp) {
        conns!(self, |t| {
            t.expire(now);
        })
    }

    /// Entries in this worker's table and every table sharing its bound.
    #[inline]
    pub(super) fn table_len(&self) -> usize {
        conns!(self, |t| t.len())
    }

    /// Warms the table entries of `flows` (see [`lb_conntrack::ConnTable::warm`]).
    #[inline]
    pub(super) fn warm(&mut self, flows: &[Flow]) {
        let w = conns!(self, |t| t.warm(flows));
        self.warmth = self.warmth.wrapping_add(w);
    }

    /// Counts a drop and returns its outcome.
    #[inline]
    fn count_drop(&mut self, why: DropReason) -> Outcome {
        self.counters.dropped.add(why);
        Outcome::Dropped(why)
    }

    /// Processes one frame at time `now`. On [`Outcome::Forwarded`] the caller sends
    /// `buf.frame()`; fragments and ICMP replies go to `sink` during the call. The one-frame
    /// case of [`Worker::process_burst`]: the same steps, with nothing to warm ahead.
    pub fn process(&mut self, now: Timestamp, buf: &mut FrameBuf<'_>, sink: &mut dyn FnMut(&[u8])) -> Outcome {
        let pkt = parse(buf.frame());
        self.dispatch(now, buf, pkt, Hint::Unknown, sink)
    }

    /// Counts a frame read and runs the table's expiry when it is due.
    #[inline]
    fn tick(&mut self, now: Timestamp) {
        self.counters.read += 1;
        self.since_expire += 1;
        if self.auto_expire && self.since_expire >= 1024 {
            self.since_expire = 0;
            self.expire(now);
        }
    }

    /// One parsed (or refused) frame through the rest of the pipeline.
    #[inline]
    pub(super) fn dispatch(
        &mut self,
        now: Timestamp,
        buf: &mut FrameBuf<'_>,
        pkt: Result<Packet, lb_rewrite::ParseError>,
        hint: Hint,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        self.tick(now);
        let pkt = match pkt {
            Ok(p) => p,
            Err(e) => return self.count_drop(e.into()),
        };
        if pkt.is_icmp_error() {
            return self.icmp_error(now, buf, &pkt, sink);
        }
        let flow = pkt.flow();
        if !flow.proto.has_ports() {
            return self.count_drop(DropReason::IcmpNotError);
        }
        let class = match hint {
            Hint::Unknown => self.classify_by_address(&flow).or_else(|| self.classify_any(now, &flow)),
            Hint::ByAddress(c) => Some(c),
            Hint::NotByAddress => self.classify_any(now, &flow),
        };
        match class {
            Some(Class::Request(si)) => self.request(now, si, buf, &pkt, &flow, sink),
            Some(Class::Reply(si)) => self.reply(now, si, buf, &pkt, &flow, sink),
            None => {
                // Live, a NAT reply comes from its real server's address, which no service has.
                if self.p.live.is_some() {
                    if let Some(out) = self.reply_from_server(now, buf, &pkt, &flow, sink) {
                        return out;
                    }
                }
                let fam_has_any = self.p.any[usize::from(flow.is_ipv6())].is_some();
                let other_any = self.p.any[usize::from(!flow.is_ipv6())].is_some();
                self.count_drop(if !fam_has_any && other_any {
                    DropReason::NoBackendForFamily
                } else {
                    DropReason::NoService
                })
            }
        }
    }

    /// The service that claims `flow` by address (its destination: a request; its source: a
    /// reply), if one does.
    #[inline]
    pub(super) fn classify_by_address(&self, flow: &Flow) -> Option<Class> {
        let p = self.p;
        if let Some(i) = p.lookup_vip(flow.proto, flow.dst, flow.dst_port) {
            return Some(Class::Request(i));
        }
        p.lookup_vip(flow.proto, flow.src, flow.src_port).map(Class::Reply)
    }

    /// The catch-all service of `flow`'s family, if there is one, and the direction its
    /// connection says.
    fn classify_any(&self, now: Timestamp, flow: &Flow) -> Option<Class> {
        let p = self.p;
        let i = p.any[usize::from(flow.is_ipv6())]?;
        // A catch-all service tells replies from requests by the connection they belong to.
        if conns!(self, |t| t.lookup_in(now, &flow.reversed())).is_some() {
            Some(Class::Reply(i))
        } else {
            Some(Class::Request(i))
        }
    }

    fn request(
        &mut self,
        now: Timestamp,
        si: usize,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        flow: &Flow,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        // Only unicast traffic is scheduled (nor answered with an ICMP error: it never reaches
        // the rewrite). A reply cannot come from a non-unicast address: no connection has one.
        if !is_unicast_flow(flow) {
            return self.count_drop(DropReason::NotUnicast);
        }
        let rt = &self.p.services[si];
        let v = conns!(self, |t| t.input(now, flow, pkt.tcp_flags().0, &rt.svc, &rt.params));
        match v {
            InVerdict::Forward(c) | InVerdict::OnePacket(c) => self.forward(si, &c, buf, pkt, false, sink),
            InVerdict::NotScheduled(NotScheduled::Rst) => self.count_drop(DropReason::RstWithoutConnection),
            InVerdict::NotScheduled(NotScheduled::NotSyn) => self.count_drop(DropReason::NotSynWithoutConnection),
            InVerdict::NotScheduled(NotScheduled::Unsupported) => self.count_drop(DropReason::UnsupportedFlow),
            InVerdict::NoDestination => self.count_drop(DropReason::NoDestination),
            InVerdict::DestUnavailable(_) => self.count_drop(DropReason::DestinationRemoved),
            InVerdict::Refused => self.count_drop(DropReason::ConntrackFull),
        }
    }

    fn reply(
        &mut self,
        now: Timestamp,
        si: usize,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        flow: &Flow,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        let rt = &self.p.services[si];
        if !rt.any_nat.load(Relaxed) {
            self.counters.replies_skipped += 1;
            return Outcome::ReplySkipped;
        }
        let Some(c) = conns!(self, |t| t.lookup_in(now, &flow.reversed())) else {
            return self.count_drop(DropReason::ReplyWithoutConnection);
        };
        if c.fwd != ForwardMethod::Masq {
            self.counters.replies_skipped += 1;
            return Outcome::ReplySkipped;
        }
        // The reply as its real server sent it (from the real server's address and port) goes
        // through the OUTPUT side of its connection's state machine. The capture says which
        // connection it is (the virtual address the client saw), so it is taken by that key:
        // the real server's tuple alone may be shared by two connections of one client port.
        let c = match conns!(self, |t| t.output_for_client(now, &flow.reversed(), pkt.tcp_flags().0)) {
            OutVerdict::Forward(c) => c,
            OutVerdict::NoConnection => return self.count_drop(DropReason::ReplyWithoutConnection),
        };
        self.snat_reply(si, c, buf, pkt, sink)
    }

    /// A reply as its real server sent it (live: from the real server's address and port, to
    /// the client), if it belongs to a NAT connection: IPVS's OUTPUT lookup by the real server's
    /// tuple, then the same SNAT as [`Worker::reply`]. `None`: no NAT connection has it.
    fn reply_from_server(
        &mut self,
        now: Timestamp,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        flow: &Flow,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Option<Outcome> {
        let c = match conns!(self, |t| t.output(now, flow, pkt.tcp_flags().0)) {
            OutVerdict::Forward(c) if c.fwd == ForwardMethod::Masq => c,
            _ => return None,
        };
        let si = self.p.lookup_vip(c.proto, c.vaddr, c.vport).or(self.p.any[usize::from(c.vaddr.is_ipv6())])?;
        Some(self.snat_reply(si, c, buf, pkt, sink))
    }

    /// SNATs a NAT connection's reply toward its client, counting it for its destination.
    fn snat_reply(
        &mut self,
        si: usize,
        c: ConnInfo,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Outcome {
        let Some(hop) = self.hop_to_client(buf.frame(), pkt.flow().dst) else {
            return self.count_drop(DropReason::NoNextHop);
        };
        let vs = SocketAddr::new(c.vaddr, c.vport);
        // An ICMP error about the reply goes back to the real server that sent it.
        let out = self.rewrite(buf, pkt, sink, Sender::RealServer(c), |buf, frags| snat(buf, pkt, &hop, vs, frags));
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
        if !is_unicast_flow(&pkt.flow()) {
            return self.count_drop(DropReason::NotUnicast);
        }
        let Some(q) = pkt.quote(buf.frame()).map(|q| *q.flow()) else {
            return self.count_drop(DropReason::IcmpWithoutConnection);
        };
        let service_of = |c: &ConnInfo, p: &Pipeline| {
            p.lookup_vip(c.proto, c.vaddr, c.vport).or(p.any[usize::from(c.vaddr.is_ipv6())])
        };
        // About a reply the client received (quoted: virtual service -> client): from the client
        // side, toward the real server.
        if let Some(c) = conns!(self, |t| t.lookup_in(now, &q.reversed())) {
            let Some(si) = service_of(&c, self.p) else {
                return self.count_drop(DropReason::IcmpWithoutConnection);
            };
            return self.forward(si, &c, buf, pkt, true, sink);
        }
        // About a request (quoted: client -> virtual service), travelling to the client: the
        // reply direction.
        if let Some(c) = conns!(self, |t| t.lookup_in(now, &q)) {
            if c.fwd != ForwardMethod::Masq {
                self.counters.replies_skipped += 1;
                return Outcome::ReplySkipped;
            }
            let Some(hop) = self.hop_to_client(buf.frame(), pkt.flow().dst) else {
                return self.count_drop(DropReason::NoNextHop);
            };
            let vs = SocketAddr::new(c.vaddr, c.vport);
            return self
                .rewrite(buf, pkt, sink, Sender::AsItCame, |buf, frags| nat_icmp_out(buf, pkt, &hop, vs, frags));
        }
        self.count_drop(DropReason::IcmpWithoutConnection)
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
        // The connection is scheduled to its destination whatever becomes of this packet (a
        // next hop still being resolved, live: the client retransmits).
        self.counters.dest(si, c.dest).connections += u64::from(c.created);
        let Some(hop) = self.hop_to_server(buf.frame(), c) else {
            return self.count_drop(DropReason::NoNextHop);
        };
        let rs = SocketAddr::new(c.daddr, c.dport);
        let out = match c.fwd {
            ForwardMethod::Masq if icmp => {
                self.rewrite(buf, pkt, sink, Sender::AsItCame, |buf, frags| nat_icmp_in(buf, pkt, &hop, rs, frags))
            }
            ForwardMethod::Masq => {
                self.rewrite(buf, pkt, sink, Sender::AsItCame, |buf, frags| dnat(buf, pkt, &hop, rs, frags))
            }
            ForwardMethod::DirectRoute => {
                self.rewrite(buf, pkt, sink, Sender::AsItCame, |buf, frags| dr(buf, pkt, &hop, frags))
            }
            ForwardMethod::Tunnel => {
                let src = self.p.tun_src[fam(&c.daddr)].unwrap_or(c.vaddr);
                let encap = self.p.gue.get(&c.daddr).map_or(Encap::Ipip, |&port| Encap::Gue { port });
                let t = Tunnel { src, dst: c.daddr, encap, ident: tunnel_ident(buf.frame(), pkt) };
                self.rewrite(buf, pkt, sink, Sender::AsItCame, |buf, frags| tun(buf, pkt, &hop, &t, frags))
            }
            ForwardMethod::Local => return self.count_drop(DropReason::LocalNode),
        };
        let d = self.counters.dest(si, c.dest);
        if matches!(out, Outcome::Forwarded | Outcome::Fragmented(_)) {
            d.packets_in += 1;
            d.bytes_in += if let Outcome::Forwarded = out { buf.len() as u64 } else { 0 };
        }
        out
    }

    /// The director's MAC: given, or where the client's frames were sent (their destination
    /// MAC) and where the capture's replies came from (their source MAC).
    fn director_mac(&self, frame: &[u8], request: bool) -> MacAddr {
        self.p.director_mac.unwrap_or_else(|| mac_at(frame, if request { 0 } else { 6 }))
    }

    /// Toward a connection's real server: its resolved MAC.
    fn hop_to_server(&self, frame: &[u8], c: &ConnInfo) -> Option<NextHop> {
        let dst_mac = self.p.mac_of(c.daddr)?;
        Some(NextHop { src_mac: self.director_mac(frame, true), dst_mac, mtu: self.p.mtu })
    }

    /// Toward the client `to` (NAT replies, ICMP errors about requests): the live next hop
    /// toward it, or in a capture the frame's own destination MAC (where the reply was sent).
    #[inline]
    fn hop_to_client(&self, frame: &[u8], to: IpAddr) -> Option<NextHop> {
        let dst_mac = match &self.p.live {
            Some(live) => live.mac_toward(to)?,
            None => mac_at(frame, 0),
        };
        Some(NextHop { src_mac: self.director_mac(frame, false), dst_mac, mtu: self.p.mtu })
    }

    /// Readdresses the ICMP error built in `self.reply` (`n` bytes) about a reply as the capture
    /// shows it (from the virtual address) to the real server that sent the reply: the outer
    /// destination and the quoted source become the real server's address and port, the frame
    /// goes to its MAC (the kernel checks a NAT reply against the MTU before it is SNATed). The
    /// new length, or `None` when it cannot be sent.
    fn readdress_to_server(&mut self, n: usize, c: &ConnInfo) -> Option<usize> {
        let dst_mac = self.p.mac_of(c.daddr)?;
        let src_mac = MacAddr(self.reply.get(6..12)?.try_into().ok()?);
        let mut fb = FrameBuf::new(&mut self.reply, 0, n)?;
        let pkt = parse(fb.frame()).ok()?;
        let hop = NextHop { src_mac, dst_mac, mtu: u16::MAX };
        let rs = SocketAddr::new(c.daddr, c.dport);
        match nat_icmp_in(&mut fb, &pkt, &hop, rs, &mut DiscardFragments::default()) {
            Ok(Verdict::Forward) => Some(fb.len()),
            _ => None,
        }
    }

    /// Runs one rewrite with a sink that counts its fragments, and turns its result into an
    /// outcome.
    #[inline]
    fn rewrite(
        &mut self,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        sink: &mut dyn FnMut(&[u8]),
        sender: Sender,
        op: impl FnOnce(&mut FrameBuf<'_>, &mut dyn FragmentSink) -> Result<Verdict, RewriteError>,
    ) -> Outcome {
        let mut counting = CountingSink { sink, fragments: 0 };
        let r = op(buf, &mut counting);
        let CountingSink { sink, fragments } = counting;
        self.finish(r, buf, pkt, fragments, sink, sender)
    }

    /// Turns a rewriter's result into an outcome, building the ICMP error the kernel would and
    /// sending it to the packet's sender.
    fn finish(
        &mut self,
        r: Result<Verdict, RewriteError>,
        buf: &mut FrameBuf<'_>,
        pkt: &Packet,
        frags: u64,
        sink: &mut dyn FnMut(&[u8]),
        sender: Sender,
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
                let from = match sender {
                    Sender::AsItCame => ReplySource {
                        addr: pkt.flow().dst,
                        mac: self.director_mac(buf.frame(), true),
                        ident: tunnel_ident(buf.frame(), pkt),
                    },
                    // The director's own address on the real servers' side (the capture's
                    // reply comes from the virtual address: the default).
                    Sender::RealServer(c) => ReplySource {
                        addr: self.p.director_ips[fam(&c.vaddr)].unwrap_or(pkt.flow().src),
                        mac: self.director_mac(buf.frame(), false),
                        ident: tunnel_ident(buf.frame(), pkt),
                    },
                };
                let (built, why) = match v {
                    Verdict::TooBig { mtu } => {
                        (build_too_big(buf.frame(), pkt, mtu, &from, &mut self.reply), DropReason::TooBig)
                    }
                    _ => (build_time_exceeded(buf.frame(), pkt, &from, &mut self.reply), DropReason::TtlExceeded),
                };
                // No ICMP error about an ICMP error.
                if let (Ok(n), false) = (built, pkt.is_icmp_error()) {
                    let sent = match sender {
                        Sender::AsItCame => Some(n),
                        Sender::RealServer(c) => self.readdress_to_server(n, &c),
                    };
                    if let Some(n) = sent {
                        sink(&self.reply[..n]);
                        self.counters.icmp_sent += 1;
                    }
                }
                self.count_drop(why)
            }
            Err(e) => self.count_drop(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 0, 2, 1], [198, 51, 100, 1], 64)
            .udp(5000, 53)
            .write(&mut f, payload)
            .unwrap();
        f
    }

    #[test]
    fn the_tunnel_identification_hashes_the_first_48_bytes_of_the_inner_packet() {
        let a = udp_frame(&[0u8; 100]);
        let mut b = a.clone();
        let pa = parse(&a).unwrap();
        // A byte past the 48th of the IP packet does not change it; one within does.
        b[pa.l3() + 60] ^= 0xff;
        assert_eq!(tunnel_ident(&a, &pa), tunnel_ident(&b, &parse(&b).unwrap()));
        b[pa.l3() + 40] ^= 0xff;
        assert_ne!(tunnel_ident(&a, &pa), tunnel_ident(&b, &parse(&b).unwrap()));
    }

    #[test]
    fn unicast_is_what_a_director_forwards() {
        for a in ["10.0.0.1", "192.0.2.1", "223.255.255.254", "2001:db8::1", "fe80::1", "::ffff:10.0.0.1"] {
            assert!(is_unicast(a.parse().unwrap()), "{a}");
        }
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "ff02::fb",
            "ff05::1:3",
        ] {
            assert!(!is_unicast(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn a_mac_is_read_where_the_frame_has_one_and_is_zero_past_its_end() {
        let f = udp_frame(&[]);
        assert_eq!(mac_at(&f, 0), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(mac_at(&f, 6), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(mac_at(&f[..8], 6), MacAddr([0; 6]));
    }

    #[test]
    fn the_counting_sink_counts_and_passes_every_fragment_on() {
        let mut seen = Vec::new();
        let mut sink = |f: &[u8]| seen.push(f.len());
        let mut c = CountingSink { sink: &mut sink, fragments: 0 };
        c.fragment(&[1, 2, 3]);
        c.fragment(&[4]);
        assert_eq!(c.fragments, 2);
        assert_eq!(seen, [3, 1]);
    }
}
