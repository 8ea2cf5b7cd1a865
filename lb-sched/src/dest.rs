//! Destinations (IPVS "real servers") and their connection accounting.

use core::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};

/// The flag bits a destination carries (IPVS `IP_VS_DEST_F_*`).
pub mod flags {
    /// `IP_VS_DEST_F_AVAILABLE`: the destination is in its service's list. Cleared on removal.
    pub const AVAILABLE: u32 = 0x0001;
    /// `IP_VS_DEST_F_OVERLOAD`: the upper connection threshold was reached; no scheduler picks it.
    pub const OVERLOAD: u32 = 0x0002;
}

/// How connections to a destination are forwarded (ipvsadm `-m`, `-g`, `-i`; IPVS
/// `IP_VS_CONN_F_FWD_MASK` values). lb-sched only stores it; the connection tracker copies it
/// into each connection and the rewriter acts on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ForwardMethod {
    /// NAT (`-m`, "masquerading"): requests DNATed to the real server, replies SNATed back.
    Masq = 0,
    /// Local node: the director itself serves.
    Local = 1,
    /// IP tunnelling (`-i`): the packet encapsulated to the real server.
    Tunnel = 2,
    /// Direct routing (`-g`, "gatewaying", ipvsadm's default): only the MAC changes.
    #[default]
    DirectRoute = 3,
}

impl ForwardMethod {
    /// From the IPVS flag value (low 3 bits); BYPASS and unknown values are `None`.
    pub const fn from_bits(b: u8) -> Option<Self> {
        match b & 7 {
            0 => Some(ForwardMethod::Masq),
            1 => Some(ForwardMethod::Local),
            2 => Some(ForwardMethod::Tunnel),
            3 => Some(ForwardMethod::DirectRoute),
            _ => None,
        }
    }

    /// ipvsadm's name of the method ("Masq", "Local", "Tunnel", "Route").
    pub const fn as_str(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Local => "Local",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::DirectRoute => "Route",
        }
    }

    /// Whether the director sees only the client → server half (every method but NAT): IPVS
    /// sets `IP_VS_CONN_F_NOOUTPUT` on such connections.
    pub const fn is_half_connection(self) -> bool {
        !matches!(self, ForwardMethod::Masq)
    }
}

/// A destination's identity within its service: assigned when it is added, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestId(pub u32);

impl fmt::Display for DestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What an operator sets on a destination (`ipvsadm -a/-e -r ADDR:PORT -w W -x U -y L`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestConfig {
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port (0 keeps the packet's destination port, as for fwmark services).
    pub port: u16,
    /// Weight; 0 quiesces the destination: its connections go on, it gets no new ones.
    pub weight: u32,
    /// Upper connection threshold (`-x`); 0 = none. Reaching it sets OVERLOAD.
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`); 0 = none. Below it OVERLOAD is cleared.
    pub l_threshold: u32,
    /// Forwarding method (`-g` by default, as ipvsadm).
    pub fwd: ForwardMethod,
}

impl DestConfig {
    /// A destination with weight 1 (ipvsadm's default) and no thresholds.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        DestConfig { addr, port, weight: 1, u_threshold: 0, l_threshold: 0, fwd: ForwardMethod::DirectRoute }
    }

    /// The same with another forwarding method.
    pub fn fwd(mut self, fwd: ForwardMethod) -> Self {
        self.fwd = fwd;
        self
    }

    /// The same with another weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The same with upper and lower connection thresholds.
    pub fn thresholds(mut self, upper: u32, lower: u32) -> Self {
        self.u_threshold = upper;
        self.l_threshold = lower;
        self
    }
}

/// A real server of a service, shared (`Arc`) by the service's snapshots and by the connections
/// bound to it.
///
/// Address and port are fixed for its lifetime. Weight, thresholds, flags and the connection
/// counters are atomics, read live by the schedulers exactly as IPVS reads them, and written by
/// [`crate::Service`] (edits) and by a connection tracker (bind / unbind / state changes).
pub struct Destination {
    id: DestId,
    addr: IpAddr,
    port: u16,
    weight: AtomicU32,
    last_weight: AtomicU32,
    u_threshold: AtomicU32,
    l_threshold: AtomicU32,
    flags: AtomicU32,
    fwd: AtomicU8,
    active: AtomicU32,
    inactive: AtomicU32,
    persist: AtomicU32,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("port", &self.port)
            .field("weight", &self.weight())
            .field("flags", &self.flags())
            .field("active", &self.active_conns())
            .field("inactive", &self.inactive_conns())
            .field("persist", &self.persistent_conns())
            .finish()
    }
}

impl Destination {
    /// A new, AVAILABLE destination. Its `last_weight` is its weight, even when that is 0
    /// (IPVS: a destination *added* with weight 0 gets no Maglev slots).
    pub fn new(id: DestId, cfg: &DestConfig) -> Self {
        Destination {
            id,
            addr: cfg.addr,
            port: cfg.port,
            weight: AtomicU32::new(cfg.weight),
            last_weight: AtomicU32::new(cfg.weight),
            u_threshold: AtomicU32::new(cfg.u_threshold),
            l_threshold: AtomicU32::new(cfg.l_threshold),
            flags: AtomicU32::new(flags::AVAILABLE),
            fwd: AtomicU8::new(cfg.fwd as u8),
            active: AtomicU32::new(0),
            inactive: AtomicU32::new(0),
            persist: AtomicU32::new(0),
        }
    }

    /// Identity within the service.
    #[inline]
    pub fn id(&self) -> DestId {
        self.id
    }
    /// Real server address.
    #[inline]
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    /// Real server port.
    #[inline]
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Current weight (0 = quiesced).
    #[inline]
    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }
    /// The most recent non-zero weight (0 if it was added with weight 0). Only `mh` reads it.
    #[inline]
    pub fn last_weight(&self) -> u32 {
        self.last_weight.load(Relaxed)
    }
    /// Upper connection threshold (0 = none).
    #[inline]
    pub fn u_threshold(&self) -> u32 {
        self.u_threshold.load(Relaxed)
    }
    /// Lower connection threshold (0 = none).
    #[inline]
    pub fn l_threshold(&self) -> u32 {
        self.l_threshold.load(Relaxed)
    }
    /// Forwarding method for new connections.
    #[inline]
    pub fn fwd(&self) -> ForwardMethod {
        ForwardMethod::from_bits(self.fwd.load(Relaxed)).unwrap_or_default()
    }
    /// The flag bits ([`flags`]).
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }
    /// Whether OVERLOAD is set.
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.flags() & flags::OVERLOAD != 0
    }
    /// Whether the destination is still in its service (AVAILABLE).
    #[inline]
    pub fn is_available(&self) -> bool {
        self.flags() & flags::AVAILABLE != 0
    }
    /// Active connections (current kernels: ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK).
    #[inline]
    pub fn active_conns(&self) -> u32 {
        self.active.load(Relaxed)
    }
    /// Inactive connections (every other state, and every UDP connection).
    #[inline]
    pub fn inactive_conns(&self) -> u32 {
        self.inactive.load(Relaxed)
    }
    /// Persistence templates bound to this destination.
    #[inline]
    pub fn persistent_conns(&self) -> u32 {
        self.persist.load(Relaxed)
    }
    /// `activeconns + inactconns` (IPVS `ip_vs_dest_totalconns`).
    #[inline]
    pub fn total_conns(&self) -> u64 {
        u64::from(self.active_conns()) + u64::from(self.inactive_conns())
    }
    /// IPVS's connection overhead: `activeconns * 256 + inactconns` (`ip_vs_dest_conn_overhead`).
    #[inline]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active_conns()) << 8) + u64::from(self.inactive_conns())
    }
    /// Whether a scheduler may pick it: weight > 0 and not OVERLOAD.
    #[inline]
    pub fn is_eligible(&self) -> bool {
        self.weight() > 0 && !self.is_overloaded()
    }

    // ---- edits (called by Service under its writer lock) ----

    /// Applies an edit as `__ip_vs_update_dest` does. `added` is true for the first call.
    pub(crate) fn apply(&self, cfg: &DestConfig, added: bool) {
        // OVERLOAD is cleared when the upper threshold is removed or raised.
        let old_u = self.u_threshold();
        if cfg.u_threshold == 0 || cfg.u_threshold > old_u {
            self.flags.fetch_and(!flags::OVERLOAD, Relaxed);
        }
        self.u_threshold.store(cfg.u_threshold, Relaxed);
        self.l_threshold.store(cfg.l_threshold, Relaxed);
        if added || cfg.weight != 0 {
            self.last_weight.store(cfg.weight, Relaxed);
        }
        self.weight.store(cfg.weight, Relaxed);
        self.fwd.store(cfg.fwd as u8, Relaxed);
        self.flags.fetch_or(flags::AVAILABLE, Relaxed);
    }

    /// The operator-set fields, to undo an edit a scheduler refused.
    pub(crate) fn save(&self) -> [u32; 6] {
        [self.weight(), self.last_weight(), self.u_threshold(), self.l_threshold(), self.flags(), self.fwd() as u32]
    }

    /// Undoes an edit (see [`Destination::save`]).
    pub(crate) fn restore(&self, s: [u32; 6]) {
        self.fwd.store(s[5] as u8, Relaxed);
        self.weight.store(s[0], Relaxed);
        self.last_weight.store(s[1], Relaxed);
        self.u_threshold.store(s[2], Relaxed);
        self.l_threshold.store(s[3], Relaxed);
        self.flags.store(s[4], Relaxed);
    }

    /// Its operator-set configuration now (what `ipvsadm -e` would start from).
    pub fn config(&self) -> DestConfig {
        DestConfig {
            addr: self.addr,
            port: self.port,
            weight: self.weight(),
            u_threshold: self.u_threshold(),
            l_threshold: self.l_threshold(),
            fwd: self.fwd(),
        }
    }

    /// Clears AVAILABLE: the destination was removed from its service.
    pub(crate) fn mark_removed(&self) {
        self.flags.fetch_and(!flags::AVAILABLE, Relaxed);
    }

    // ---- connection accounting (called by a connection tracker) ----

    /// A new connection is bound to this destination (`ip_vs_bind_dest`). IPVS counts every new
    /// connection as inactive until its state machine makes it active; pass `active = true` only
    /// for a connection created directly in an active state. Sets OVERLOAD when the upper
    /// threshold is reached.
    pub fn bind_conn(&self, active: bool) {
        if active {
            self.active.fetch_add(1, Relaxed);
        } else {
            self.inactive.fetch_add(1, Relaxed);
        }
        self.check_overload_on_bind();
    }

    /// A persistence template is bound to this destination.
    pub fn bind_template(&self) {
        self.persist.fetch_add(1, Relaxed);
        self.check_overload_on_bind();
    }

    /// A connection counted as active (`was_active`) or inactive left this destination
    /// (`ip_vs_unbind_dest`). Clears OVERLOAD by IPVS's rules.
    pub fn unbind_conn(&self, was_active: bool) {
        let ctr = if was_active { &self.active } else { &self.inactive };
        // Saturating: a tracker bug must not wrap the counter to 4 billion.
        let _ = ctr.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        self.check_overload_on_unbind();
    }

    /// A persistence template left this destination.
    pub fn unbind_template(&self) {
        let _ = self.persist.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        self.check_overload_on_unbind();
    }

    /// A connection's state moved between the active and inactive sets (`set_tcp_state`).
    pub fn conn_moved(&self, now_active: bool) {
        let (from, to) = if now_active { (&self.inactive, &self.active) } else { (&self.active, &self.inactive) };
        let _ = from.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        to.fetch_add(1, Relaxed);
    }

    fn check_overload_on_bind(&self) {
        let u = self.u_threshold();
        if u != 0 && self.total_conns() >= u64::from(u) {
            self.flags.fetch_or(flags::OVERLOAD, Relaxed);
        }
    }

    fn check_overload_on_unbind(&self) {
        let (l, u) = (self.l_threshold(), self.u_threshold());
        let total = self.total_conns();
        let clear = if l != 0 {
            total < u64::from(l)
        } else if u != 0 {
            total * 4 < u64::from(u) * 3
        } else {
            true
        };
        if clear {
            self.flags.fetch_and(!flags::OVERLOAD, Relaxed);
        }
    }

    /// Sets or clears OVERLOAD directly, for an operator or a health checker that wants to take
    /// a destination out of scheduling without touching its weight.
    pub fn set_overloaded(&self, on: bool) {
        if on {
            self.flags.fetch_or(flags::OVERLOAD, Relaxed);
        } else {
            self.flags.fetch_and(!flags::OVERLOAD, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(u: u32, l: u32) -> Destination {
        Destination::new(DestId(1), &DestConfig::new("10.0.0.1".parse().unwrap(), 80).thresholds(u, l))
    }

    #[test]
    fn overhead_is_active_times_256_plus_inactive() {
        let d = dest(0, 0);
        for _ in 0..3 {
            d.bind_conn(false);
        }
        d.conn_moved(true);
        d.conn_moved(true);
        // 2 active, 1 inactive.
        assert_eq!((d.active_conns(), d.inactive_conns()), (2, 1));
        assert_eq!(d.overhead(), 2 * 256 + 1);
    }

    #[test]
    fn overload_set_at_upper_threshold_cleared_below_lower() {
        let d = dest(4, 2);
        for i in 1..=4u32 {
            d.bind_conn(false);
            assert_eq!(d.is_overloaded(), i >= 4, "after {i} binds");
        }
        d.unbind_conn(false); // 3 left: not < 2
        assert!(d.is_overloaded());
        d.unbind_conn(false); // 2 left: not < 2
        assert!(d.is_overloaded());
        d.unbind_conn(false); // 1 left: < 2, cleared
        assert!(!d.is_overloaded());
    }

    #[test]
    fn overload_cleared_below_three_quarters_without_lower_threshold() {
        let d = dest(8, 0);
        for _ in 0..8 {
            d.bind_conn(false);
        }
        assert!(d.is_overloaded());
        // Cleared when total*4 < 8*3 = 24, i.e. total <= 5.
        d.unbind_conn(false); // 7
        d.unbind_conn(false); // 6: 24 < 24 false
        assert!(d.is_overloaded());
        d.unbind_conn(false); // 5: 20 < 24
        assert!(!d.is_overloaded());
    }

    #[test]
    fn templates_do_not_count_towards_threshold() {
        let d = dest(2, 0);
        d.bind_template();
        d.bind_template();
        assert!(!d.is_overloaded());
        assert_eq!(d.persistent_conns(), 2);
    }

    #[test]
    fn edit_raising_or_removing_upper_threshold_clears_overload() {
        let d = dest(1, 0);
        d.bind_conn(false);
        assert!(d.is_overloaded());
        let mut cfg = DestConfig::new(d.addr(), 80).thresholds(1, 0);
        d.apply(&cfg, false); // same threshold: stays
        assert!(d.is_overloaded());
        cfg.u_threshold = 5;
        d.apply(&cfg, false);
        assert!(!d.is_overloaded());
    }

    #[test]
    fn last_weight_tracks_last_non_zero() {
        let a = dest(0, 0);
        a.apply(&DestConfig::new(a.addr(), 80).weight(5), false);
        a.apply(&DestConfig::new(a.addr(), 80).weight(0), false);
        assert_eq!((a.weight(), a.last_weight()), (0, 5));
        let b = Destination::new(DestId(2), &DestConfig::new(a.addr(), 81).weight(0));
        assert_eq!(b.last_weight(), 0);
    }

    #[test]
    fn counters_never_wrap() {
        let d = dest(0, 0);
        d.unbind_conn(true);
        d.conn_moved(false);
        assert_eq!(d.active_conns(), 0);
        assert_eq!(d.inactive_conns(), 1);
    }
}
