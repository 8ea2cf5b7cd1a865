//! rtnetlink messages as bytes: the views [`NextHops`](super::NextHops) needs over what the
//! kernel sends (netlink headers, `ndmsg` neighbours, `rtmsg` routes, their `rtattr`
//! attributes) and the one request it builds (a dump).
//!
//! Plain safe Rust over byte slices. No function here panics on any input: every length is
//! checked before it is used, a header whose length does not fit is a typed [`WireError`], and
//! an attribute this module does not know is skipped. Multi-byte header fields are in the host's
//! byte order (netlink is a local protocol); addresses are in network order.
//!
//! Layouts: `<linux/netlink.h>` (`nlmsghdr`, `nlmsgerr`, `NLMSG_ALIGN`), `<linux/rtnetlink.h>`
//! (`rtmsg`, `rtattr`, `rtnexthop`, `rtvia`, `RTA_ALIGN`), `<linux/neighbour.h>` (`ndmsg`).

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lb_rewrite::MacAddr;

/// `sizeof(struct nlmsghdr)`.
pub(crate) const NLMSG_HDR: usize = 16;
/// `sizeof(struct ndmsg)`.
pub(crate) const NDMSG: usize = 12;
/// `sizeof(struct rtmsg)`.
pub(crate) const RTMSG: usize = 12;
/// `sizeof(struct rtattr)`.
const RTATTR_HDR: usize = 4;
/// `sizeof(struct rtnexthop)`.
const RTNH_HDR: usize = 8;

/// Message types (`<linux/netlink.h>`, `<linux/rtnetlink.h>`).
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;
pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;

/// Header flags.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;

/// Address families.
pub(crate) const AF_INET: u8 = 2;
pub(crate) const AF_INET6: u8 = 10;

/// Neighbour states (`NUD_*`).
#[cfg(test)]
pub(crate) const NUD_INCOMPLETE: u16 = 0x01;
pub(crate) const NUD_REACHABLE: u16 = 0x02;
pub(crate) const NUD_STALE: u16 = 0x04;
pub(crate) const NUD_DELAY: u16 = 0x08;
pub(crate) const NUD_PROBE: u16 = 0x10;
#[cfg(test)]
pub(crate) const NUD_FAILED: u16 = 0x20;
pub(crate) const NUD_NOARP: u16 = 0x40;
pub(crate) const NUD_PERMANENT: u16 = 0x80;
/// The states whose link-layer address may be used to send.
pub(crate) const NUD_USABLE: u16 = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;
/// `NTF_PROXY`: a proxy-ARP entry, not a neighbour.
pub(crate) const NTF_PROXY: u8 = 0x08;

/// Neighbour attributes.
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;

/// Route attributes.
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
/// `NLA_TYPE_MASK`: an attribute's type without the nested / byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Route types and flags.
pub(crate) const RT_TABLE_MAIN: u32 = 254;
pub(crate) const RTN_UNICAST: u8 = 1;
pub(crate) const RTN_BLACKHOLE: u8 = 6;
pub(crate) const RTN_UNREACHABLE: u8 = 7;
pub(crate) const RTN_PROHIBIT: u8 = 8;
pub(crate) const RTM_F_CLONED: u32 = 0x200;

/// Why bytes are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// Fewer bytes than a header, or than a header's length says.
    #[error("truncated")]
    Truncated,
    /// A length field smaller than its own header.
    #[error("bad length")]
    BadLength,
    /// An address attribute whose size does not match its family.
    #[error("bad address")]
    BadAddress,
}

/// `NLMSG_ALIGN` / `RTA_ALIGN` (both 4), saturating (a length near `usize::MAX` cannot wrap).
fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?).map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// One netlink message: its header's fields and the bytes after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The payload (`nlmsg_len` minus the header).
    pub payload: &'a [u8],
}

/// The messages of one datagram. After an error (a header whose length does not fit) the
/// boundaries of what follows are unknown: the iterator yields the error once and stops.
#[derive(Debug, Clone)]
pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

/// The messages in `buf` (one `recv`).
pub(crate) fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let parsed = (|| {
            let len = u32_at(b, 0).ok_or(WireError::Truncated)? as usize;
            let kind = u16_at(b, 4).ok_or(WireError::Truncated)?;
            let flags = u16_at(b, 6).ok_or(WireError::Truncated)?;
            let seq = u32_at(b, 8).ok_or(WireError::Truncated)?;
            if b.len() < NLMSG_HDR {
                return Err(WireError::Truncated);
            }
            if len < NLMSG_HDR {
                return Err(WireError::BadLength);
            }
            let payload = b.get(NLMSG_HDR..len).ok_or(WireError::Truncated)?;
            Ok((Message { kind, flags, seq, payload }, align4(len)))
        })();
        match parsed {
            Ok((m, next)) => {
                self.rest = b.get(next..).unwrap_or(&[]);
                Some(Ok(m))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// The attributes (`rtattr`: type, value) in `buf`. An attribute whose length does not fit
/// ends the walk with an error, yielded once.
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let parsed = (|| {
            let len = u16_at(b, 0).ok_or(WireError::Truncated)? as usize;
            let kind = u16_at(b, 2).ok_or(WireError::Truncated)? & NLA_TYPE_MASK;
            if len < RTATTR_HDR {
                return Err(WireError::BadLength);
            }
            let value = b.get(RTATTR_HDR..len).ok_or(WireError::Truncated)?;
            Ok(((kind, value), align4(len)))
        })();
        match parsed {
            Ok((a, next)) => {
                self.rest = b.get(next..).unwrap_or(&[]);
                Some(Ok(a))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// An address of `family` from an attribute's value.
fn addr(family: u8, v: &[u8]) -> Result<IpAddr, WireError> {
    match (family, v.len()) {
        (AF_INET, 4) => Ok(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
        (AF_INET6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(v);
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => Err(WireError::BadAddress),
    }
}

/// A neighbour message (`RTM_NEWNEIGH` / `RTM_DELNEIGH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Neigh {
    pub family: u8,
    pub ifindex: u32,
    pub state: u16,
    pub flags: u8,
    /// `NDA_DST`, when present (of the message's family; another size is an error).
    pub dst: Option<IpAddr>,
    /// `NDA_LLADDR` when it is a 6-byte Ethernet address (absent or another size: `None`).
    pub lladdr: Option<MacAddr>,
}

/// Parses an `ndmsg` and its attributes.
pub(crate) fn neigh(payload: &[u8]) -> Result<Neigh, WireError> {
    let head = payload.get(..NDMSG).ok_or(WireError::Truncated)?;
    let family = head[0];
    let ifindex = u32_at(head, 4).ok_or(WireError::Truncated)?;
    let state = u16_at(head, 8).ok_or(WireError::Truncated)?;
    let flags = head[10];
    let mut n = Neigh { family, ifindex, state, flags, dst: None, lladdr: None };
    for a in attrs(&payload[NDMSG..]) {
        match a? {
            (NDA_DST, v) => n.dst = Some(addr(family, v)?),
            (NDA_LLADDR, v) => {
                n.lladdr = <[u8; 6]>::try_from(v).ok().map(MacAddr);
            }
            _ => {}
        }
    }
    Ok(n)
}

/// A route message (`RTM_NEWROUTE` / `RTM_DELROUTE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route<'a> {
    pub family: u8,
    pub dst_len: u8,
    /// `RTA_TABLE` if present, else `rtm_table`.
    pub table: u32,
    /// `rtm_type` (`RTN_*`).
    pub kind: u8,
    pub flags: u32,
    /// `RTA_DST`; absent for a default route.
    pub dst: Option<IpAddr>,
    /// `RTA_GATEWAY`, or `RTA_VIA` (a gateway of another family).
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// `RTA_PRIORITY` (the metric), 0 when absent.
    pub priority: u32,
    /// `RTA_MULTIPATH`'s value: see [`nexthops`].
    pub multipath: Option<&'a [u8]>,
}

/// Parses an `rtmsg` and its attributes.
pub(crate) fn route(payload: &[u8]) -> Result<Route<'_>, WireError> {
    let head = payload.get(..RTMSG).ok_or(WireError::Truncated)?;
    let family = head[0];
    let mut r = Route {
        family,
        dst_len: head[1],
        table: u32::from(head[4]),
        kind: head[7],
        flags: u32_at(head, 8).ok_or(WireError::Truncated)?,
        dst: None,
        gateway: None,
        oif: None,
        priority: 0,
        multipath: None,
    };
    for a in attrs(&payload[RTMSG..]) {
        match a? {
            (RTA_DST, v) => r.dst = Some(addr(family, v)?),
            (RTA_GATEWAY, v) => r.gateway = Some(addr(family, v)?),
            (RTA_VIA, v) => r.gateway = Some(via(v)?),
            (RTA_OIF, v) => r.oif = Some(u32_at(v, 0).ok_or(WireError::Truncated)?),
            (RTA_PRIORITY, v) => r.priority = u32_at(v, 0).ok_or(WireError::Truncated)?,
            (RTA_TABLE, v) => r.table = u32_at(v, 0).ok_or(WireError::Truncated)?,
            (RTA_MULTIPATH, v) => r.multipath = Some(v),
            _ => {}
        }
    }
    Ok(r)
}

/// `struct rtvia`: a 16-bit family, then the address.
fn via(v: &[u8]) -> Result<IpAddr, WireError> {
    let family = u16_at(v, 0).ok_or(WireError::Truncated)?;
    let family = u8::try_from(family).map_err(|_| WireError::BadAddress)?;
    addr(family, &v[2..])
}

/// One next hop of a multipath route: its interface and gateway (of the route's family, or
/// another through `RTA_VIA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NextHop {
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
}

/// The next hops (`rtnexthop`, each followed by its own attributes) of an `RTA_MULTIPATH`
/// value, for a route of `family`. Stops at the first malformed one (yielding the error once).
pub(crate) fn nexthops(family: u8, buf: &[u8]) -> impl Iterator<Item = Result<NextHop, WireError>> + '_ {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let b = rest;
        let parsed = (|| {
            let len = u16_at(b, 0).ok_or(WireError::Truncated)? as usize;
            let ifindex = u32_at(b, 4).ok_or(WireError::Truncated)?;
            if len < RTNH_HDR {
                return Err(WireError::BadLength);
            }
            let body = b.get(RTNH_HDR..len).ok_or(WireError::Truncated)?;
            let mut nh = NextHop { ifindex, gateway: None };
            for a in attrs(body) {
                match a? {
                    (RTA_GATEWAY, v) => nh.gateway = Some(addr(family, v)?),
                    (RTA_VIA, v) => nh.gateway = Some(via(v)?),
                    _ => {}
                }
            }
            Ok((nh, align4(len)))
        })();
        match parsed {
            Ok((nh, next)) => {
                rest = b.get(next..).unwrap_or(&[]);
                Some(Ok(nh))
            }
            Err(e) => {
                rest = &[];
                Some(Err(e))
            }
        }
    })
}

/// The `error` of an `NLMSG_ERROR` (0 for an acknowledgement, else a negated errno) or of an
/// `NLMSG_DONE` (a dump's status, 0 when absent).
pub(crate) fn status(m: &Message<'_>) -> Result<i32, WireError> {
    match (m.kind, u32_at(m.payload, 0)) {
        (_, Some(e)) => Ok(e as i32),
        (NLMSG_DONE, None) => Ok(0),
        (_, None) => Err(WireError::Truncated),
    }
}

/// A dump request: `kind` (`RTM_GETROUTE` / `RTM_GETNEIGH`) for `family` (0: all), with a
/// 12-byte zeroed family header (`rtmsg` and `ndmsg` both start with the family and are 12 bytes).
pub(crate) fn dump_request(kind: u16, seq: u32, family: u8) -> [u8; NLMSG_HDR + RTMSG] {
    let mut m = [0u8; NLMSG_HDR + RTMSG];
    m[0..4].copy_from_slice(&((NLMSG_HDR + RTMSG) as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m[NLMSG_HDR] = family;
    m
}

/// Builders of well-formed messages, for tests here and in the table.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    pub(crate) fn attr(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        o.extend_from_slice(&((RTATTR_HDR + v.len()) as u16).to_ne_bytes());
        o.extend_from_slice(&kind.to_ne_bytes());
        o.extend_from_slice(v);
        o.resize(align4(o.len()), 0);
        o
    }

    pub(crate) fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        o.extend_from_slice(&((NLMSG_HDR + payload.len()) as u32).to_ne_bytes());
        o.extend_from_slice(&kind.to_ne_bytes());
        o.extend_from_slice(&flags.to_ne_bytes());
        o.extend_from_slice(&seq.to_ne_bytes());
        o.extend_from_slice(&0u32.to_ne_bytes());
        o.extend_from_slice(payload);
        o.resize(align4(o.len()), 0);
        o
    }

    fn octets(a: IpAddr) -> Vec<u8> {
        match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    fn family(a: IpAddr) -> u8 {
        if a.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        }
    }

    /// An `ndmsg` payload.
    pub(crate) fn neigh_payload(ifindex: u32, state: u16, dst: IpAddr, mac: Option<[u8; 6]>) -> Vec<u8> {
        let mut p = vec![family(dst), 0, 0, 0];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        p.extend_from_slice(&state.to_ne_bytes());
        p.extend_from_slice(&[0, 1]);
        p.extend(attr(NDA_DST, &octets(dst)));
        if let Some(m) = mac {
            p.extend(attr(NDA_LLADDR, &m));
        }
        p
    }

    /// An `rtmsg` payload of the main table.
    pub(crate) fn route_payload(
        kind: u8,
        dst: IpAddr,
        len: u8,
        gw: Option<IpAddr>,
        oif: Option<u32>,
        metric: u32,
    ) -> Vec<u8> {
        let mut p = vec![family(dst), len, 0, 0, RT_TABLE_MAIN as u8, 4, 0, kind];
        p.extend_from_slice(&0u32.to_ne_bytes());
        p.extend(attr(RTA_TABLE, &RT_TABLE_MAIN.to_ne_bytes()));
        if len > 0 {
            p.extend(attr(RTA_DST, &octets(dst)));
        }
        if let Some(g) = gw {
            p.extend(attr(RTA_GATEWAY, &octets(g)));
        }
        if let Some(o) = oif {
            p.extend(attr(RTA_OIF, &o.to_ne_bytes()));
        }
        p.extend(attr(RTA_PRIORITY, &metric.to_ne_bytes()));
        p
    }

    /// An `RTA_MULTIPATH` attribute of `(ifindex, gateway)` next hops.
    pub(crate) fn multipath(hops: &[(u32, IpAddr)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (ifindex, gw) in hops {
            let a = attr(RTA_GATEWAY, &octets(*gw));
            v.extend_from_slice(&((RTNH_HDR + a.len()) as u16).to_ne_bytes());
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&ifindex.to_ne_bytes());
            v.extend(a);
        }
        attr(RTA_MULTIPATH, &v)
    }
}

#[cfg(test)]
mod tests;
