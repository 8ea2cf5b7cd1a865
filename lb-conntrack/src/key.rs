//! Keys: the address families the table stores (`Addr`), the "in" key a client packet carries,
//! the conversion from a [`Flow`], and the hashes the indexes are keyed by.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lb_sched::{fold_mul, Flow};

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

/// A [`Key`] of either address family.
pub(crate) enum FamilyKey {
    /// IPv4.
    V4(Key<u32>),
    /// IPv6.
    V6(Key<u128>),
}

/// The "in" key of a client → virtual service `flow`; `None` for a protocol without ports or
/// addresses of two families.
#[inline]
pub(crate) fn key_of(flow: &Flow) -> Option<FamilyKey> {
    if !flow.proto.has_ports() {
        return None;
    }
    let proto = flow.proto.number();
    match (flow.src, flow.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(FamilyKey::V4(Key {
            proto,
            caddr: u32::from(s),
            cport: flow.src_port,
            vaddr: u32::from(d),
            vport: flow.dst_port,
        })),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(FamilyKey::V6(Key {
            proto,
            caddr: u128::from(s),
            cport: flow.src_port,
            vaddr: u128::from(d),
            vport: flow.dst_port,
        })),
        _ => None,
    }
}

/// A destination address in the table's family (a mismatched family maps to zero, which no
/// connection key carries).
#[inline]
pub(crate) fn addr_of<A: Addr>(ip: IpAddr) -> A {
    A::from_ip(ip)
}

/// Constants of the table's hashes (also mixed into its seed).
pub(crate) const K1: u64 = 0x9E37_79B9_7F4A_7C15;
pub(crate) const K2: u64 = 0xD6E8_FEB8_6659_FD93;
/// Which index a [`sub_hash`] is for: the "in" index of connections, of templates, the "out"
/// index of NAT replies.
pub(crate) const KIND_IN: u64 = 1;
pub(crate) const KIND_TMPL: u64 = 2;
pub(crate) const KIND_OUT: u64 = 3;

/// The index hash of an entry from its client hash `hc`, the other end's address and port, and
/// which index it is for (`KIND_IN`, `KIND_TMPL`, `KIND_OUT`).
#[inline]
pub(crate) fn sub_hash<A: Addr>(hc: u64, addr: A, port: u16, kind: u64) -> u64 {
    let (hi, lo) = addr.words();
    fold_mul(hc ^ lo ^ K1, hi.rotate_left(17) ^ ((u64::from(port) << 8) | kind) ^ K2)
}
