//! The one canonical 5-tuple of lbkit.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IANA protocol numbers (the IPv4 protocol field, the IPv6 next header) that lbkit reads or
/// writes: the one definition every crate uses.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4 in IP (IPIP, RFC 2003): the outer protocol of an IPv4 tunnel.
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation (RFC 2473): the outer protocol of an IPv6 tunnel.
    pub const IPV6: u8 = 41;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// A folded multiply: the 128-bit product of `a` and `b`, its two halves XORed. The mixing step
/// of lbkit's fixed-key flow hashes (Maglev's lookup hash, the connection table's buckets).
#[inline]
pub fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A transport protocol lbkit understands, with its IANA protocol number as discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Protocol {
    /// ICMP for IPv4 (1).
    Icmp = proto::ICMP,
    /// TCP (6).
    Tcp = proto::TCP,
    /// UDP (17).
    Udp = proto::UDP,
    /// ICMPv6 (58).
    Icmpv6 = proto::ICMPV6,
}

impl Protocol {
    /// The IANA protocol number.
    #[inline]
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The protocol with IANA number `n`, if lbkit knows it.
    #[inline]
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            proto::ICMP => Some(Protocol::Icmp),
            proto::TCP => Some(Protocol::Tcp),
            proto::UDP => Some(Protocol::Udp),
            proto::ICMPV6 => Some(Protocol::Icmpv6),
            _ => None,
        }
    }

    /// Whether the protocol carries ports (TCP and UDP).
    #[inline]
    pub const fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }

    /// Lower-case name, as ipvsadm and tshark print it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Icmp => "icmp",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmpv6 => "icmpv6",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 5-tuple: protocol, source and destination address and port.
///
/// Both addresses belong to the same family; the constructors [`Flow::v4`] and [`Flow::v6`]
/// guarantee it. A `Flow` built by hand with mixed families is accepted everywhere without
/// panicking, but hashes and lookups treat it as what it is: a tuple that no packet carries.
///
/// For ICMP the ports are zero. Schedulers are always given the flow as the client sent it
/// (source = client, destination = virtual service).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Transport protocol.
    pub proto: Protocol,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 when the protocol has none).
    pub src_port: u16,
    /// Destination port (0 when the protocol has none).
    pub dst_port: u16,
}

impl Flow {
    /// An IPv4 flow.
    #[inline]
    pub const fn v4(proto: Protocol, src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, dst_port: u16) -> Self {
        Flow { proto, src: IpAddr::V4(src), dst: IpAddr::V4(dst), src_port, dst_port }
    }

    /// An IPv6 flow.
    #[inline]
    pub const fn v6(proto: Protocol, src: Ipv6Addr, src_port: u16, dst: Ipv6Addr, dst_port: u16) -> Self {
        Flow { proto, src: IpAddr::V6(src), dst: IpAddr::V6(dst), src_port, dst_port }
    }

    /// Whether the flow is IPv6 (judged by its source address).
    #[inline]
    pub const fn is_ipv6(&self) -> bool {
        matches!(self.src, IpAddr::V6(_))
    }

    /// The same flow seen from the other end: source and destination swapped.
    #[inline]
    pub const fn reversed(&self) -> Self {
        Flow { proto: self.proto, src: self.dst, dst: self.src, src_port: self.dst_port, dst_port: self.src_port }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn ep(f: &mut fmt::Formatter<'_>, a: &IpAddr, p: u16) -> fmt::Result {
            match a {
                IpAddr::V4(a) => write!(f, "{a}:{p}"),
                IpAddr::V6(a) => write!(f, "[{a}]:{p}"),
            }
        }
        write!(f, "{} ", self.proto)?;
        ep(f, &self.src, self.src_port)?;
        f.write_str(" -> ")?;
        ep(f, &self.dst, self.dst_port)
    }
}

/// Folds an address to 32 bits the way IPVS's sh, dh and mh do: an IPv4 address as its
/// host-order value, an IPv6 address as the XOR of its four 32-bit words (each in host order).
#[inline]
pub fn fold_addr(a: &IpAddr) -> u32 {
    match a {
        IpAddr::V4(v4) => u32::from(*v4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_numbers_round_trip() {
        for p in [Protocol::Icmp, Protocol::Tcp, Protocol::Udp, Protocol::Icmpv6] {
            assert_eq!(Protocol::from_number(p.number()), Some(p));
        }
        assert_eq!(Protocol::from_number(132), None);
        assert_eq!(Protocol::Tcp.number(), 6);
        assert_eq!(Protocol::Udp.number(), 17);
    }

    #[test]
    fn reversed_swaps_ends() {
        let f = Flow::v4(Protocol::Tcp, Ipv4Addr::new(10, 0, 0, 1), 1234, Ipv4Addr::new(192, 0, 2, 1), 80);
        let r = f.reversed();
        assert_eq!(r.src, f.dst);
        assert_eq!(r.dst_port, 1234);
        assert_eq!(r.reversed(), f);
        assert_eq!(f.to_string(), "tcp 10.0.0.1:1234 -> 192.0.2.1:80");
    }

    #[test]
    fn fold_matches_ipvs() {
        assert_eq!(fold_addr(&"1.2.3.4".parse().unwrap()), 0x0102_0304);
        // 2001:db8::1 = 20010db8 00000000 00000000 00000001
        assert_eq!(fold_addr(&"2001:db8::1".parse().unwrap()), 0x2001_0db8 ^ 1);
    }
}
