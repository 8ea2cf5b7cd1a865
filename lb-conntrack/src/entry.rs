//! The entry: one connection or persistence template, as a shard's slab stores it, and what a
//! caller gets copied out of it ([`ConnInfo`]).

use std::sync::Arc;

use lb_sched::{DestId, Destination, ForwardMethod, Protocol, Timestamp};

use crate::key::Addr;
use crate::tcp::State;
use crate::verdict::ConnInfo;

/// `Entry::flags`: the forwarding method's bits, a half connection (no OUTPUT seen), counted
/// inactive at its destination, a persistence template.
pub(crate) const F_FWD: u8 = 0x03;
pub(crate) const F_NOOUTPUT: u8 = 0x04;
pub(crate) const F_INACTIVE: u8 = 0x08;
pub(crate) const F_TEMPLATE: u8 = 0x10;

/// `Entry::link` of a connection no template controls.
pub(crate) const NO_LINK: u32 = u32::MAX;
/// The end of a wheel bucket's list.
pub(crate) const NIL: u32 = u32::MAX;
/// `queued_tick` of an entry that is on no queue.
pub(crate) const NOT_QUEUED: u64 = u64::MAX;
/// `queued_tick` of an entry that waits in a shard's `near` heap (its `prev` holds the heap
/// item's generation).
pub(crate) const NEAR: u64 = u64::MAX - 1;
/// A link is `shard << 24 | slot`: the bits of the shard index, and the slot's mask.
pub(crate) const SHARD_BITS_IN_LINK: u32 = 8;
pub(crate) const SLOT_MASK_IN_LINK: u32 = (1 << (32 - SHARD_BITS_IN_LINK)) - 1;

/// A connection or persistence template, or a free slot (`dest` is `None`).
#[derive(Clone, Debug)]
pub(crate) struct Entry<A> {
    pub(crate) caddr: A,
    pub(crate) vaddr: A,
    /// Nanoseconds.
    pub(crate) last_seen: u64,
    /// `None` for a free slot.
    pub(crate) dest: Option<Arc<Destination>>,
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    /// The wheel tick this entry is queued at ([`NOT_QUEUED`], [`NEAR`]). Ticks of epoch
    /// timestamps do not fit 32 bits; the field fits the entry's padding.
    pub(crate) queued_tick: u64,
    /// Previous and next entries of its wheel bucket's list (`NIL` at the ends).
    pub(crate) prev: u32,
    pub(crate) next: u32,
    /// Connection: its controlling template (`shard << 24 | slot`) or `NO_LINK`.
    /// Template: the number of connections it controls (`n_control`).
    pub(crate) link: u32,
    pub(crate) timeout_ms: u32,
    pub(crate) proto: u8,
    pub(crate) state: State,
    pub(crate) flags: u8,
}

impl<A: Addr> Entry<A> {
    pub(crate) fn free() -> Self {
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
            state: State::None,
            flags: 0,
        }
    }

    #[inline]
    pub(crate) fn is_template(&self) -> bool {
        self.flags & F_TEMPLATE != 0
    }
    #[inline]
    pub(crate) fn fwd(&self) -> ForwardMethod {
        ForwardMethod::from_bits(self.flags & F_FWD).unwrap_or_default()
    }
    #[inline]
    pub(crate) fn state(&self) -> State {
        self.state
    }
    #[inline]
    pub(crate) fn deadline(&self) -> u64 {
        self.last_seen.saturating_add(u64::from(self.timeout_ms) * 1_000_000)
    }
    /// The real server port: the destination's, or the virtual port for a port-0 destination.
    #[inline]
    pub(crate) fn dport(&self, d: &Destination) -> u16 {
        if d.port() == 0 {
            self.vport
        } else {
            d.port()
        }
    }
}

/// The link to slot `slot` of shard `shard` (a connection's controlling template).
#[inline]
pub(crate) fn link_of(shard: usize, slot: u32) -> u32 {
    ((shard as u32) << (32 - SHARD_BITS_IN_LINK)) | slot
}

/// A copy of what `e` holds, for a verdict.
#[inline(always)]
pub(crate) fn conn_info<A: Addr>(e: &Entry<A>, created: bool, rescheduled: bool) -> ConnInfo {
    conn_info_at(e, e.state, core::time::Duration::from_millis(u64::from(e.timeout_ms)), created, rescheduled)
}

/// [`conn_info`] for a caller that knows `e`'s state and its timeout as a `Duration` (equal to
/// `e.state` and `e.timeout_ms`): the packet path, which takes the timeout from the table's
/// per-state `Duration`s instead of dividing milliseconds again.
#[inline(always)]
pub(crate) fn conn_info_at<A: Addr>(
    e: &Entry<A>,
    state: State,
    timeout: core::time::Duration,
    created: bool,
    rescheduled: bool,
) -> ConnInfo {
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
        state,
        last_seen: Timestamp::from_nanos(e.last_seen),
        timeout,
        created,
        rescheduled,
    }
}
