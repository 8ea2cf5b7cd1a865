//! What the table answers: verdicts, the connection copy they carry, and counters.

use std::net::IpAddr;

use lb_sched::{DestId, ForwardMethod, Protocol, Timestamp};

use crate::tcp::{State, ALL_STATES};

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

/// The outcome of a client → virtual service packet ([`ConnTable::input`](crate::ConnTable::input)).
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

/// The outcome of a server → client packet ([`ConnTable::output`](crate::ConnTable::output)).
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

impl Stats {
    /// Adds `other`'s counts to these (the partitions of one table, summed).
    pub fn merge(&mut self, other: &Stats) {
        let Stats {
            connections,
            templates,
            states,
            created,
            expired,
            evicted,
            refused,
            rescheduled,
            hits,
            misses,
            not_scheduled,
            no_destination,
            dest_unavailable,
            one_packet,
        } = other;
        self.connections += connections;
        self.templates += templates;
        for (a, b) in self.states.iter_mut().zip(states) {
            *a += b;
        }
        self.created += created;
        self.expired += expired;
        self.evicted += evicted;
        self.refused += refused;
        self.rescheduled += rescheduled;
        self.hits += hits;
        self.misses += misses;
        self.not_scheduled += not_scheduled;
        self.no_destination += no_destination;
        self.dest_unavailable += dest_unavailable;
        self.one_packet += one_packet;
    }
}
