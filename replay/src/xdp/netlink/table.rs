//! The tables [`NextHops`](super::NextHops) keeps: the routes and neighbours of one interface,
//! changed by netlink messages (on the background thread), and the immutable [`Snapshot`] of
//! them that packets read.
//!
//! A route counts when it is in the main table and goes out of the interface (its `RTA_OIF`, or
//! one of its multipath next hops); a blackhole, unreachable or prohibit route of the main table
//! counts whatever its interface, as "no next hop". Cloned routes (IPv6 exceptions) and other
//! types (throw, local...) do not. A neighbour counts when it is on the interface, not a proxy
//! entry, has an Ethernet address and is in a usable state ([`wire::NUD_USABLE`]).

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use lb_rewrite::MacAddr;

use super::wire::{self, Message};

/// Where a route sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Through a gateway.
    Gateway(IpAddr),
    /// Directly connected: the address is its own next hop.
    Direct,
    /// Blackhole, unreachable, prohibit: nowhere.
    Nowhere,
}

/// A route's identity: network, prefix length, metric (the kernel's key, less the TOS).
type RouteKey = (IpAddr, u8, u32);

/// The mutable tables, with their limits.
#[derive(Debug)]
pub(crate) struct Tables {
    ifindex: u32,
    max_routes: usize,
    max_neighbours: usize,
    routes: BTreeMap<RouteKey, Target>,
    neighbours: HashMap<IpAddr, MacAddr>,
    /// Entries not added because a table was full.
    pub overflow: u64,
    /// Messages that did not parse.
    pub malformed: u64,
}

/// `addr` with the bits past `len` cleared (`None` if `len` is too long for its family).
fn network(addr: IpAddr, len: u8) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) if len <= 32 => Some(IpAddr::V4((u32::from(a) & mask4(len)).into())),
        IpAddr::V6(a) if len <= 128 => Some(IpAddr::V6((u128::from(a) & mask6(len)).into())),
        _ => None,
    }
}

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
}

impl Tables {
    pub(crate) fn new(ifindex: u32, max_routes: usize, max_neighbours: usize) -> Self {
        Tables {
            ifindex,
            max_routes,
            max_neighbours,
            routes: BTreeMap::new(),
            neighbours: HashMap::new(),
            overflow: 0,
            malformed: 0,
        }
    }

    /// Applies one message (a dump's answer or a notification); whether anything changed.
    pub(crate) fn apply(&mut self, m: &Message<'_>) -> bool {
        let r = match m.kind {
            wire::RTM_NEWNEIGH | wire::RTM_DELNEIGH => self.neigh(m),
            wire::RTM_NEWROUTE | wire::RTM_DELROUTE => self.route(m),
            _ => Ok(false),
        };
        r.unwrap_or_else(|_| {
            self.malformed += 1;
            false
        })
    }

    fn neigh(&mut self, m: &Message<'_>) -> Result<bool, wire::WireError> {
        let n = wire::neigh(m.payload)?;
        let Some(dst) = n.dst else { return Ok(false) };
        if !matches!(n.family, wire::AF_INET | wire::AF_INET6)
            || n.ifindex != self.ifindex
            || n.flags & wire::NTF_PROXY != 0
        {
            return Ok(false);
        }
        let usable = n.state & wire::NUD_USABLE != 0;
        match n.lladdr {
            Some(mac) if m.kind == wire::RTM_NEWNEIGH && usable => {
                if self.neighbours.len() >= self.max_neighbours && !self.neighbours.contains_key(&dst) {
                    self.overflow += 1;
                    return Ok(false);
                }
                Ok(self.neighbours.insert(dst, mac) != Some(mac))
            }
            _ => Ok(self.neighbours.remove(&dst).is_some()),
        }
    }

    fn route(&mut self, m: &Message<'_>) -> Result<bool, wire::WireError> {
        let r = wire::route(m.payload)?;
        let any = match r.family {
            wire::AF_INET => IpAddr::V4(0.into()),
            wire::AF_INET6 => IpAddr::V6(0.into()),
            _ => return Ok(false),
        };
        if r.table != wire::RT_TABLE_MAIN || r.flags & wire::RTM_F_CLONED != 0 {
            return Ok(false);
        }
        let Some(net) = network(r.dst.unwrap_or(any), r.dst_len) else { return Ok(false) };
        let key = (net, r.dst_len, r.priority);
        let target = match r.kind {
            wire::RTN_UNICAST => {
                let mut out = None;
                if r.oif == Some(self.ifindex) {
                    out = Some(r.gateway.map_or(Target::Direct, Target::Gateway));
                } else if let Some(mp) = r.multipath {
                    for h in wire::nexthops(r.family, mp) {
                        let h = h?;
                        if h.ifindex == self.ifindex {
                            out = Some(h.gateway.map_or(Target::Direct, Target::Gateway));
                            break;
                        }
                    }
                }
                out
            }
            wire::RTN_BLACKHOLE | wire::RTN_UNREACHABLE | wire::RTN_PROHIBIT => Some(Target::Nowhere),
            _ => None,
        };
        match target {
            Some(t) if m.kind == wire::RTM_NEWROUTE => {
                if self.routes.len() >= self.max_routes && !self.routes.contains_key(&key) {
                    self.overflow += 1;
                    return Ok(false);
                }
                Ok(self.routes.insert(key, t) != Some(t))
            }
            // Deleted, or replaced by a route that no longer goes out of the interface.
            _ => Ok(self.routes.remove(&key).is_some()),
        }
    }

    /// Whether `addr` has a usable neighbour entry.
    pub(crate) fn has_neighbour(&self, addr: IpAddr) -> bool {
        self.neighbours.contains_key(&addr)
    }

    /// The routes and neighbours now, for packets to read.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (&(net, len, metric), &target) in &self.routes {
            match net {
                IpAddr::V4(n) => v4.push(Route { net: u32::from(n), mask: mask4(len), len, metric, target }),
                IpAddr::V6(n) => v6.push(Route { net: u128::from(n), mask: mask6(len), len, metric, target }),
            }
        }
        // Longest prefix first, then the lowest metric: the first match is the kernel's choice.
        v4.sort_by_key(|r| (std::cmp::Reverse(r.len), r.metric));
        v6.sort_by_key(|r| (std::cmp::Reverse(r.len), r.metric));
        let mut neighbours = HashMap::with_capacity_and_hasher(self.neighbours.len(), ahash::RandomState::new());
        neighbours.extend(self.neighbours.iter().map(|(a, m)| (*a, *m)));
        Snapshot { v4, v6, neighbours }
    }

    pub(crate) fn routes(&self) -> usize {
        self.routes.len()
    }

    pub(crate) fn neighbours(&self) -> usize {
        self.neighbours.len()
    }
}

/// One route of a snapshot.
#[derive(Debug, Clone, Copy)]
struct Route<A> {
    net: A,
    mask: A,
    len: u8,
    metric: u32,
    target: Target,
}

/// What packets read: immutable, published whole.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    v4: Vec<Route<u32>>,
    v6: Vec<Route<u128>>,
    neighbours: HashMap<IpAddr, MacAddr, ahash::RandomState>,
}

impl Snapshot {
    /// The next hop toward `addr`: the gateway of the longest matching route (lowest metric
    /// among equals), or `addr` itself on a directly connected one; `None` without a route out
    /// of the interface or on a blackhole. A linear scan: the tables are small (bounded by
    /// [`NextHops::MAX_ROUTES`](super::NextHops::MAX_ROUTES)). Allocates nothing.
    pub(crate) fn next_hop(&self, addr: IpAddr) -> Option<IpAddr> {
        let target = match addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find(|r| a & r.mask == r.net)?.target
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find(|r| a & r.mask == r.net)?.target
            }
        };
        match target {
            Target::Gateway(g) => Some(g),
            Target::Direct => Some(addr),
            Target::Nowhere => None,
        }
    }

    /// The neighbour entry of `next_hop`. Allocates nothing.
    pub(crate) fn mac(&self, next_hop: IpAddr) -> Option<MacAddr> {
        self.neighbours.get(&next_hop).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::build::*;
    use super::super::wire::*;
    use super::*;

    const IF: u32 = 3;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn apply(t: &mut Tables, kind: u16, payload: &[u8]) -> bool {
        let m = message(kind, 0, 0, payload);
        let m = messages(&m).next().unwrap().unwrap();
        t.apply(&m)
    }

    fn add_route(t: &mut Tables, dst: &str, len: u8, gw: Option<&str>, oif: u32, metric: u32) {
        let p = route_payload(RTN_UNICAST, ip(dst), len, gw.map(ip), Some(oif), metric);
        apply(t, RTM_NEWROUTE, &p);
    }

    #[test]
    fn network_and_masks() {
        assert_eq!(network(ip("10.1.2.3"), 0), Some(ip("0.0.0.0")));
        assert_eq!(network(ip("10.1.2.3"), 8), Some(ip("10.0.0.0")));
        assert_eq!(network(ip("10.1.2.3"), 23), Some(ip("10.1.2.0")));
        assert_eq!(network(ip("10.1.3.3"), 23), Some(ip("10.1.2.0")));
        assert_eq!(network(ip("10.1.2.3"), 32), Some(ip("10.1.2.3")));
        assert_eq!(network(ip("10.1.2.3"), 33), None);
        assert_eq!(network(ip("2001:db8:abcd::1"), 36), Some(ip("2001:db8:a000::")));
        assert_eq!(network(ip("2001:db8::1"), 129), None);
        assert_eq!(mask4(0), 0);
        assert_eq!(mask4(24), 0xffff_ff00);
        assert_eq!(mask6(128), u128::MAX);
    }

    #[test]
    fn longest_prefix_then_lowest_metric() {
        let mut t = Tables::new(IF, 100, 100);
        add_route(&mut t, "0.0.0.0", 0, Some("10.0.0.1"), IF, 0);
        add_route(&mut t, "10.0.0.0", 24, None, IF, 0);
        add_route(&mut t, "203.0.113.0", 24, Some("10.0.0.254"), IF, 100);
        add_route(&mut t, "203.0.113.0", 24, Some("10.0.0.253"), IF, 50);
        add_route(&mut t, "203.0.113.128", 25, Some("10.0.0.252"), IF, 200);
        add_route(&mut t, "198.51.100.0", 24, Some("10.9.0.1"), IF + 1, 0); // another interface
        add_route(&mut t, "2001:db8::", 32, Some("fe80::1"), IF, 1024);
        add_route(&mut t, "fd00::", 64, None, IF, 256);
        let s = t.snapshot();
        // By hand: the default route, the connected /24, the lower metric of two /24s, the /25.
        assert_eq!(s.next_hop(ip("192.0.2.1")), Some(ip("10.0.0.1")));
        assert_eq!(s.next_hop(ip("10.0.0.7")), Some(ip("10.0.0.7")));
        assert_eq!(s.next_hop(ip("203.0.113.9")), Some(ip("10.0.0.253")));
        assert_eq!(s.next_hop(ip("203.0.113.127")), Some(ip("10.0.0.253")));
        assert_eq!(s.next_hop(ip("203.0.113.128")), Some(ip("10.0.0.252")));
        // Routed out of another interface: the default route of ours applies.
        assert_eq!(s.next_hop(ip("198.51.100.1")), Some(ip("10.0.0.1")));
        assert_eq!(s.next_hop(ip("2001:db8:ffff::1")), Some(ip("fe80::1")));
        assert_eq!(s.next_hop(ip("fd00::9")), Some(ip("fd00::9")));
        // No IPv6 default route.
        assert_eq!(s.next_hop(ip("2001:db9::1")), None);
    }

    #[test]
    fn delete_replace_and_blackhole() {
        let mut t = Tables::new(IF, 100, 100);
        add_route(&mut t, "10.0.0.0", 24, None, IF, 0);
        add_route(&mut t, "203.0.113.0", 24, Some("10.0.0.254"), IF, 0);
        assert_eq!(t.snapshot().next_hop(ip("203.0.113.1")), Some(ip("10.0.0.254")));
        // Replaced by a route out of another interface: gone.
        add_route(&mut t, "203.0.113.0", 24, Some("10.9.0.1"), IF + 1, 0);
        assert_eq!(t.snapshot().next_hop(ip("203.0.113.1")), None);
        add_route(&mut t, "203.0.113.0", 24, Some("10.0.0.254"), IF, 0);
        // A blackhole /28 inside it.
        assert!(apply(&mut t, RTM_NEWROUTE, &route_payload(RTN_BLACKHOLE, ip("203.0.113.16"), 28, None, None, 0)));
        let s = t.snapshot();
        assert_eq!(s.next_hop(ip("203.0.113.17")), None);
        assert_eq!(s.next_hop(ip("203.0.113.33")), Some(ip("10.0.0.254")));
        // Deleted (the key: network, length, metric).
        assert!(!apply(&mut t, RTM_DELROUTE, &route_payload(RTN_UNICAST, ip("203.0.113.0"), 24, None, Some(IF), 7)));
        assert!(apply(&mut t, RTM_DELROUTE, &route_payload(RTN_UNICAST, ip("203.0.113.0"), 24, None, Some(IF), 0)));
        assert_eq!(t.snapshot().next_hop(ip("203.0.113.33")), None);
        assert_eq!(t.routes(), 2);
    }

    #[test]
    fn multipath_routes_use_the_next_hop_out_of_the_interface() {
        let mut t = Tables::new(IF, 100, 100);
        let mut p = route_payload(RTN_UNICAST, ip("198.51.100.0"), 24, None, None, 0);
        p.extend(multipath(&[(IF + 1, ip("10.9.0.1")), (IF, ip("10.0.0.9"))]));
        assert!(apply(&mut t, RTM_NEWROUTE, &p));
        assert_eq!(t.snapshot().next_hop(ip("198.51.100.5")), Some(ip("10.0.0.9")));
    }

    #[test]
    fn other_tables_and_cloned_routes_are_ignored() {
        let mut t = Tables::new(IF, 100, 100);
        let mut p = route_payload(RTN_UNICAST, ip("10.0.0.0"), 24, None, Some(IF), 0);
        p[4] = 255; // rtm_table local, and RTA_TABLE (the first attribute) too
        p[RTMSG + 4..RTMSG + 8].copy_from_slice(&255u32.to_ne_bytes());
        assert!(!apply(&mut t, RTM_NEWROUTE, &p));
        let mut p = route_payload(RTN_UNICAST, ip("fd00::"), 64, None, Some(IF), 0);
        p[8..12].copy_from_slice(&RTM_F_CLONED.to_ne_bytes());
        assert!(!apply(&mut t, RTM_NEWROUTE, &p));
        assert_eq!(t.routes(), 0);
    }

    #[test]
    fn neighbours_by_state_interface_and_limit() {
        let mut t = Tables::new(IF, 100, 2);
        let mac = [2, 0, 0, 0, 0, 9];
        for (state, usable) in [
            (NUD_REACHABLE, true),
            (NUD_STALE, true),
            (NUD_DELAY, true),
            (NUD_PROBE, true),
            (NUD_PERMANENT, true),
            (NUD_NOARP, true),
            (NUD_INCOMPLETE, false),
            (NUD_FAILED, false),
        ] {
            apply(&mut t, RTM_NEWNEIGH, &neigh_payload(IF, state, ip("10.0.0.9"), Some(mac)));
            assert_eq!(t.has_neighbour(ip("10.0.0.9")), usable, "state {state:#x}");
            assert_eq!(t.snapshot().mac(ip("10.0.0.9")), usable.then_some(MacAddr(mac)), "state {state:#x}");
        }
        // Another interface, no address, a proxy entry: not added.
        apply(&mut t, RTM_NEWNEIGH, &neigh_payload(IF + 1, NUD_REACHABLE, ip("10.0.0.8"), Some(mac)));
        apply(&mut t, RTM_NEWNEIGH, &neigh_payload(IF, NUD_REACHABLE, ip("10.0.0.7"), None));
        let mut p = neigh_payload(IF, NUD_REACHABLE, ip("10.0.0.6"), Some(mac));
        p[10] = NTF_PROXY;
        apply(&mut t, RTM_NEWNEIGH, &p);
        assert_eq!(t.neighbours(), 0);
        // The limit: two entries; a third is counted, not added; updating one is fine.
        apply(&mut t, RTM_NEWNEIGH, &neigh_payload(IF, NUD_REACHABLE, ip("10.0.0.1"), Some(mac)));
        apply(&mut t, RTM_NEWNEIGH, &neigh_payload(IF, NUD_REACHABLE, ip("fd00::1"), Some(mac)));
        assert!(!apply(&mut t, RTM_NEWNEIGH, &neigh_payload(IF, NUD_REACHABLE, ip("10.0.0.2"), Some(mac))));
        assert_eq!(t.overflow, 1);
        assert!(apply(&mut t, RTM_NEWNEIGH, &neigh_payload(IF, NUD_STALE, ip("10.0.0.1"), Some([2, 0, 0, 0, 0, 1]))));
        assert_eq!(t.snapshot().mac(ip("10.0.0.1")), Some(MacAddr([2, 0, 0, 0, 0, 1])));
        // Deleted.
        assert!(apply(&mut t, RTM_DELNEIGH, &neigh_payload(IF, 0, ip("fd00::1"), None)));
        assert_eq!(t.snapshot().mac(ip("fd00::1")), None);
    }

    #[test]
    fn malformed_messages_are_counted_and_change_nothing() {
        let mut t = Tables::new(IF, 100, 100);
        let mut p = neigh_payload(IF, NUD_REACHABLE, ip("10.0.0.9"), Some([2; 6]));
        p[0] = AF_INET6; // a 4-byte NDA_DST for IPv6
        assert!(!apply(&mut t, RTM_NEWNEIGH, &p));
        assert!(!apply(&mut t, RTM_NEWROUTE, &[1, 2, 3]));
        assert_eq!((t.malformed, t.neighbours(), t.routes()), (2, 0, 0));
    }
}
