//! Parsing a frame into a [`Packet`]: the flow, the offsets a rewriter needs, and the few header
//! facts the pipeline decides on (TCP flags, TTL, DF, ICMP error quotes). Nothing is copied.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use lb_sched::TcpFlags;
use lb_sched::{Flow, Protocol};

use crate::error::ParseError;
use crate::wire::{self, be16, eth, get, icmp, ipv4, ipv6, proto, tcp, udp};

/// The IP version of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// The version of an address.
    #[inline]
    pub const fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => IpVersion::V4,
            IpAddr::V6(_) => IpVersion::V6,
        }
    }

    /// The ethertype that carries this version.
    #[inline]
    pub const fn ethertype(self) -> u16 {
        match self {
            IpVersion::V4 => eth::IPV4,
            IpVersion::V6 => eth::IPV6,
        }
    }
}

/// The packet quoted inside an ICMP / ICMPv6 error (destination unreachable, source quench,
/// time exceeded, parameter problem, packet too big): the packet of a connection that the error
/// is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpQuote {
    flow: Flow,
    l3: u32,
    l4: u32,
}

impl IcmpQuote {
    /// The quoted packet's flow, as that packet carried it (for an error about a reply, the
    /// source is the virtual service).
    #[inline]
    pub const fn flow(&self) -> &Flow {
        &self.flow
    }
    /// Offset of the quoted IP header in the frame.
    #[inline]
    pub const fn l3(&self) -> usize {
        self.l3 as usize
    }
    /// Offset of the quoted transport header in the frame (at least 8 bytes of it are present).
    #[inline]
    pub const fn l4(&self) -> usize {
        self.l4 as usize
    }
}

const BIT_DF: u8 = 1;
const BIT_FIRST_FRAGMENT: u8 = 2;
const BIT_QUOTE: u8 = 4;

/// What [`parse`] found in a frame: the [`Flow`], the offsets of each layer, and the header
/// facts a load balancer decides on. Small and `Copy`; it borrows nothing.
///
/// A `Packet` describes the frame it was parsed from. The rewriters take both; given another
/// frame they stay panic-free and inside the frame, but the result is meaningless (most such
/// mix-ups are caught as [`RewriteError::PacketMismatch`](crate::RewriteError::PacketMismatch)).
///
/// Every field is a plain integer (addresses as `u128` made from the address bytes in memory
/// order, an IPv4 one as a `u32` that way: no byte swapping in or out), so
/// that once [`parse`] is inlined the compiler keeps the whole struct in registers; the
/// [`Flow`] and the [`IcmpQuote`] are assembled when asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    src: u128,
    dst: u128,
    l3: u32,
    l4: u32,
    ip_end: u32,
    src_port: u16,
    dst_port: u16,
    proto: Protocol,
    version: IpVersion,
    ttl: u8,
    vlan_tags: u8,
    bits: u8,
    /// TCP: the flags byte; ICMP / ICMPv6: type << 8 | code.
    aux: u16,
}

#[inline(always)]
fn to_addr(version: IpVersion, a: u128) -> IpAddr {
    match version {
        IpVersion::V4 => IpAddr::V4(Ipv4Addr::from((a as u32).to_ne_bytes())),
        IpVersion::V6 => IpAddr::V6(Ipv6Addr::from(a.to_ne_bytes())),
    }
}

/// An IPv4 address's bytes as a `Packet` stores them (read back by `to_addr`).
#[inline(always)]
fn v4_word(b: &[u8; 4]) -> u128 {
    u128::from(u32::from_ne_bytes(*b))
}

impl Packet {
    /// The 5-tuple. ICMP and ICMPv6 have ports 0.
    #[inline]
    pub fn flow(&self) -> Flow {
        Flow {
            proto: self.proto,
            src: to_addr(self.version, self.src),
            dst: to_addr(self.version, self.dst),
            src_port: self.src_port,
            dst_port: self.dst_port,
        }
    }
    /// The transport protocol (the flow's).
    #[inline]
    pub const fn protocol(&self) -> Protocol {
        self.proto
    }
    /// IPv4 or IPv6.
    #[inline]
    pub const fn version(&self) -> IpVersion {
        self.version
    }
    /// Length of the L2 header (Ethernet and VLAN tags) = offset of the IP header.
    #[inline]
    pub const fn l3(&self) -> usize {
        self.l3 as usize
    }
    /// Offset of the transport header (after IPv4 options or IPv6 extension headers).
    #[inline]
    pub const fn l4(&self) -> usize {
        self.l4 as usize
    }
    /// Offset just past the IP packet. The frame may hold Ethernet padding after it.
    #[inline]
    pub const fn ip_end(&self) -> usize {
        self.ip_end as usize
    }
    /// Length of the IP packet (IPv4 total length, or 40 + IPv6 payload length).
    #[inline]
    pub const fn ip_len(&self) -> usize {
        (self.ip_end - self.l3) as usize
    }
    /// Number of VLAN tags (0, 1 or 2).
    #[inline]
    pub const fn vlan_tags(&self) -> u8 {
        self.vlan_tags
    }
    /// IPv4 TTL or IPv6 hop limit, as received.
    #[inline]
    pub const fn ttl(&self) -> u8 {
        self.ttl
    }
    /// The IPv4 don't-fragment bit (always `false` for IPv6, which routers never fragment).
    #[inline]
    pub const fn df(&self) -> bool {
        self.bits & BIT_DF != 0
    }
    /// The packet is the first fragment of a larger datagram (IPv4 MF set with offset 0, or an
    /// IPv6 fragment header with M set and offset 0): its transport checksum covers bytes that
    /// are not in this frame.
    #[inline]
    pub const fn is_first_fragment(&self) -> bool {
        self.bits & BIT_FIRST_FRAGMENT != 0
    }
    /// TCP flags (empty for other protocols).
    #[inline]
    pub const fn tcp_flags(&self) -> TcpFlags {
        match self.proto {
            Protocol::Tcp => TcpFlags(self.aux as u8),
            _ => TcpFlags(0),
        }
    }
    /// ICMP / ICMPv6 type and code, for those protocols.
    #[inline]
    pub const fn icmp_type_code(&self) -> Option<(u8, u8)> {
        match self.proto {
            Protocol::Icmp | Protocol::Icmpv6 => Some(((self.aux >> 8) as u8, self.aux as u8)),
            _ => None,
        }
    }
    /// Whether the packet is an ICMP / ICMPv6 error that quotes a packet ([`Packet::quote`]).
    #[inline]
    pub const fn has_quote(&self) -> bool {
        self.bits & BIT_QUOTE != 0
    }
    /// For an ICMP / ICMPv6 error that quotes a packet, that packet, read from `frame` (the
    /// frame this `Packet` was parsed from; only offsets are kept in the `Packet`, which keeps
    /// it small on the fast path). `None` for other packets, or if `frame` is not that frame.
    #[inline]
    pub fn quote(&self, frame: &[u8]) -> Option<IcmpQuote> {
        if !self.has_quote() {
            return None;
        }
        let packet = frame.get(..self.ip_end())?;
        // The quote starts right after the 8-byte ICMP header.
        let q = parse_quote(packet, self.l4() + icmp::HEADER_LEN, self.version).ok()?;
        Some(IcmpQuote {
            flow: Flow {
                proto: q.proto,
                src: to_addr(self.version, q.src),
                dst: to_addr(self.version, q.dst),
                src_port: q.src_port,
                dst_port: q.dst_port,
            },
            l3: q.l3 as u32,
            l4: q.l4 as u32,
        })
    }
    /// Whether the packet is an ICMP / ICMPv6 error message of any type (no ICMP error may be
    /// sent about it).
    #[inline]
    pub const fn is_icmp_error(&self) -> bool {
        match self.proto {
            Protocol::Icmp => icmp::v4_is_error((self.aux >> 8) as u8),
            Protocol::Icmpv6 => icmp::v6_is_error((self.aux >> 8) as u8),
            _ => false,
        }
    }
}

/// Parses an Ethernet frame: up to two VLAN tags (0x8100, 0x88a8), IPv4 (options skipped) or
/// IPv6 (hop-by-hop, routing, destination-options and first-fragment headers skipped), then TCP,
/// UDP, ICMP or ICMPv6. For ICMP errors the quoted packet is parsed too.
///
/// Never panics and never reads outside `frame`, whatever it holds. Bytes after the IP packet
/// (Ethernet padding) are ignored. IPv4 and IPv6 fragments other than the first, and anything
/// that is not one of the protocols above, are errors: every refusal names its reason.
///
/// On a hot path, bind the result by reference (`match &parsed { Ok(pkt) => ... }`): moving the
/// `Packet` out of the `Result` right after it was written is a copy that stalls store
/// forwarding, which measured as much as the parse itself (`BENCHMARKS.md`).
///
/// ```
/// # use lb_rewrite::{parse, ParseError};
/// assert_eq!(parse(&[0u8; 10]), Err(ParseError::TruncatedEthernet));
/// let parsed = parse(&[0u8; 60]);
/// match &parsed {
///     Ok(pkt) => println!("{}", pkt.flow()),
///     Err(e) => println!("drop: {}", e.name()), // "unsupported_ethertype"
/// }
/// ```
// Always inlined: the `Packet` is then built straight in the caller's variable. Returned from a
// call, it is written field by field and then copied whole, which stalls store forwarding and
// costs as much as the parse itself.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<Packet, ParseError> {
    let eth_hdr: &[u8; eth::HEADER_LEN] = get(frame, 0).ok_or(ParseError::TruncatedEthernet)?;
    let mut ethertype = be16([eth_hdr[12], eth_hdr[13]]);
    let mut l3 = eth::HEADER_LEN;
    let mut tags = 0u8;
    while ethertype == eth::TPID_8021Q || ethertype == eth::TPID_8021AD {
        if tags == eth::MAX_TAGS {
            return Err(ParseError::TooManyVlanTags);
        }
        let tag: &[u8; eth::TAG_LEN] = get(frame, l3).ok_or(ParseError::TruncatedVlan)?;
        ethertype = be16([tag[2], tag[3]]);
        l3 += eth::TAG_LEN;
        tags += 1;
    }
    match ethertype {
        eth::IPV4 => parse_ipv4(frame, l3, tags),
        eth::IPV6 => parse_ipv6(frame, l3, tags),
        _ => Err(ParseError::UnsupportedEthertype),
    }
}

/// The IP layer as the transport parser needs it. Addresses stay raw bytes until the `Packet`
/// is built, in one piece, at the end (building it field by field on the stack and copying it out
/// costs store-forwarding stalls).
#[derive(Clone, Copy)]
struct IpLayer {
    version: IpVersion,
    protocol: u8,
    l3: usize,
    l4: usize,
    end: usize,
    ttl: u8,
    bits: u8,
    tags: u8,
}

#[inline(always)]
fn parse_ipv4(frame: &[u8], l3: usize, tags: u8) -> Result<Packet, ParseError> {
    let h: &[u8; ipv4::MIN_HEADER_LEN] = get(frame, l3).ok_or(ParseError::TruncatedIp)?;
    // Version 4 without options (0x45) is one comparison; anything else is checked in full.
    let ver_ihl = h[ipv4::VER_IHL];
    let hl = if ver_ihl == 0x45 {
        ipv4::MIN_HEADER_LEN
    } else {
        if ver_ihl >> 4 != 4 {
            return Err(ParseError::BadIpVersion);
        }
        let hl = usize::from(ver_ihl & 0x0F) * 4;
        if hl < ipv4::MIN_HEADER_LEN {
            return Err(ParseError::BadIhl);
        }
        hl
    };
    let total = usize::from(wire::rd16(h, ipv4::TOTAL_LEN));
    if total < ipv4::MIN_HEADER_LEN {
        return Err(ParseError::BadIpLength);
    }
    if hl > total {
        return Err(ParseError::BadIhl);
    }
    let end = l3 + total;
    if end > frame.len() {
        return Err(ParseError::TruncatedIp);
    }
    let frag = wire::rd16(h, ipv4::FLAGS_FRAG);
    if frag & ipv4::OFFSET_MASK != 0 {
        return Err(ParseError::Ipv4Fragment);
    }
    let bits = u8::from(frag & ipv4::FLAG_DF != 0) * BIT_DF + u8::from(frag & ipv4::FLAG_MF != 0) * BIT_FIRST_FRAGMENT;
    let ip = IpLayer {
        version: IpVersion::V4,
        protocol: h[ipv4::PROTOCOL],
        l3,
        l4: l3 + hl,
        end,
        ttl: h[ipv4::TTL],
        bits,
        tags,
    };
    let src = v4_word(get::<4>(h, ipv4::SRC).unwrap_or(&[0; 4]));
    let dst = v4_word(get::<4>(h, ipv4::DST).unwrap_or(&[0; 4]));
    parse_transport(frame.get(..end).unwrap_or(&[]), ip, src, dst)
}

#[inline(always)]
fn parse_ipv6(frame: &[u8], l3: usize, tags: u8) -> Result<Packet, ParseError> {
    let h: &[u8; ipv6::HEADER_LEN] = get(frame, l3).ok_or(ParseError::TruncatedIp)?;
    if h[0] >> 4 != 6 {
        return Err(ParseError::BadIpVersion);
    }
    let payload = usize::from(wire::rd16(h, ipv6::PAYLOAD_LEN));
    if payload == 0 && h[ipv6::NEXT_HEADER] == ipv6::NH_HOP_BY_HOP {
        // A jumbogram (RFC 2675): not on Ethernet.
        return Err(ParseError::BadIpLength);
    }
    let end = l3 + ipv6::HEADER_LEN + payload;
    if end > frame.len() {
        return Err(ParseError::TruncatedIp);
    }
    let packet = frame.get(..end).unwrap_or(&[]);
    let next = h[ipv6::NEXT_HEADER];
    let (protocol, l4, first_fragment) = if is_extension(next) {
        skip_ipv6_extensions(packet, next, l3 + ipv6::HEADER_LEN).map_err(|e| match e {
            ExtError::Truncated => ParseError::TruncatedIpv6ExtHeader,
            ExtError::Fragment => ParseError::Ipv6Fragment,
            ExtError::MisplacedHopByHop => ParseError::MisplacedHopByHop,
        })?
    } else {
        (next, l3 + ipv6::HEADER_LEN, false)
    };
    let ip = IpLayer {
        version: IpVersion::V6,
        protocol,
        l3,
        l4,
        end,
        ttl: h[ipv6::HOP_LIMIT],
        bits: if first_fragment { BIT_FIRST_FRAGMENT } else { 0 },
        tags,
    };
    let src = u128::from_ne_bytes(*get::<16>(h, ipv6::SRC).unwrap_or(&[0; 16]));
    let dst = u128::from_ne_bytes(*get::<16>(h, ipv6::DST).unwrap_or(&[0; 16]));
    parse_transport(packet, ip, src, dst)
}

enum ExtError {
    Truncated,
    Fragment,
    MisplacedHopByHop,
}

#[inline(always)]
const fn is_extension(next: u8) -> bool {
    matches!(next, ipv6::NH_HOP_BY_HOP | ipv6::NH_ROUTING | ipv6::NH_DEST_OPTS | ipv6::NH_FRAGMENT)
}

/// Walks IPv6 extension headers from `at` (whose type is `next`) to the first header that is not
/// hop-by-hop, routing, destination options or fragment. Returns that header's type and offset,
/// and whether a first fragment (M set) was seen. `at` is right after the IPv6 header: a
/// hop-by-hop header is only allowed there (RFC 8200 §4.1). Each step advances at least 8 bytes
/// inside `packet`, so the walk ends.
#[inline(never)]
fn skip_ipv6_extensions(packet: &[u8], mut next: u8, mut at: usize) -> Result<(u8, usize, bool), ExtError> {
    let mut first_fragment = false;
    let first_at = at;
    loop {
        match next {
            ipv6::NH_HOP_BY_HOP if at != first_at => return Err(ExtError::MisplacedHopByHop),
            ipv6::NH_HOP_BY_HOP | ipv6::NH_ROUTING | ipv6::NH_DEST_OPTS => {
                let e: &[u8; 2] = get(packet, at).ok_or(ExtError::Truncated)?;
                let len = (usize::from(e[1]) + 1) * 8;
                if at + len > packet.len() {
                    return Err(ExtError::Truncated);
                }
                next = e[0];
                at += len;
            }
            ipv6::NH_FRAGMENT => {
                let f: &[u8; ipv6::FRAG_HEADER_LEN] = get(packet, at).ok_or(ExtError::Truncated)?;
                let off_m = be16([f[2], f[3]]);
                if off_m & 0xFFF8 != 0 {
                    return Err(ExtError::Fragment);
                }
                first_fragment |= off_m & 1 != 0;
                next = f[0];
                at += ipv6::FRAG_HEADER_LEN;
            }
            _ => return Ok((next, at, first_fragment)),
        }
    }
}

/// Parses the transport header and builds the `Packet` in one expression. `packet` ends where
/// the IP packet ends. The addresses travel as integers and become `IpAddr`s (by `addr`) only
/// inside the final struct literal, so they are written once, in place.
#[inline(always)]
fn parse_transport(packet: &[u8], ip: IpLayer, src: u128, dst: u128) -> Result<Packet, ParseError> {
    let avail = ip.end - ip.l4;
    let (proto, src_port, dst_port, aux, quote) = match ip.protocol {
        proto::TCP => {
            let t: &[u8; tcp::HEADER_LEN] = get(packet, ip.l4).ok_or(ParseError::TruncatedTcp)?;
            let off = usize::from(t[tcp::DATA_OFF] >> 4) * 4;
            if off < tcp::HEADER_LEN || off > avail {
                return Err(ParseError::BadTcpOffset);
            }
            (Protocol::Tcp, be16([t[0], t[1]]), be16([t[2], t[3]]), u16::from(t[tcp::FLAGS]), 0)
        }
        proto::UDP => {
            let u: &[u8; udp::HEADER_LEN] = get(packet, ip.l4).ok_or(ParseError::TruncatedUdp)?;
            let len = usize::from(be16([u[4], u[5]]));
            if len < udp::HEADER_LEN || (len > avail && ip.bits & BIT_FIRST_FRAGMENT == 0) {
                return Err(ParseError::BadUdpLength);
            }
            (Protocol::Udp, be16([u[0], u[1]]), be16([u[2], u[3]]), 0, 0)
        }
        proto::ICMP if ip.version == IpVersion::V4 => {
            let (proto, aux, quote) = parse_icmp(packet, ip.l4, ip.version)?;
            (proto, 0, 0, aux, quote)
        }
        proto::ICMPV6 if ip.version == IpVersion::V6 => {
            let (proto, aux, quote) = parse_icmp(packet, ip.l4, ip.version)?;
            (proto, 0, 0, aux, quote)
        }
        _ => return Err(ParseError::UnsupportedProtocol),
    };
    Ok(Packet {
        src,
        dst,
        l3: ip.l3 as u32,
        l4: ip.l4 as u32,
        ip_end: ip.end as u32,
        src_port,
        dst_port,
        proto,
        version: ip.version,
        ttl: ip.ttl,
        vlan_tags: ip.tags,
        bits: ip.bits | quote,
        aux,
    })
}

/// The ICMP / ICMPv6 header at `l4`: the protocol, `type << 8 | code`, and [`BIT_QUOTE`] if the
/// message is an error whose quoted packet parses.
///
/// It takes and returns only small scalars: a `Packet` or `IpLayer` passed to or returned from
/// this out-of-line function would have to live in memory, which costs the TCP / UDP path too.
#[cold]
#[inline(never)]
fn parse_icmp(packet: &[u8], l4: usize, version: IpVersion) -> Result<(Protocol, u16, u8), ParseError> {
    let h: &[u8; icmp::HEADER_LEN] = get(packet, l4).ok_or(ParseError::TruncatedIcmp)?;
    let (icmp_type, icmp_code) = (h[icmp::TYPE], h[icmp::CODE]);
    let (proto, carries) = match version {
        IpVersion::V4 => (Protocol::Icmp, icmp::v4_carries_packet(icmp_type)),
        IpVersion::V6 => (Protocol::Icmpv6, icmp::v6_carries_packet(icmp_type)),
    };
    // A first fragment of an ICMP error still holds the quote's start.
    let quote = if carries {
        parse_quote(packet, l4 + icmp::HEADER_LEN, version)?;
        BIT_QUOTE
    } else {
        0
    };
    Ok((proto, u16::from_be_bytes([icmp_type, icmp_code]), quote))
}

/// A parsed quote, before it goes into the `Packet`.
struct Quote {
    src: u128,
    dst: u128,
    src_port: u16,
    dst_port: u16,
    proto: Protocol,
    l3: usize,
    l4: usize,
}

/// Parses the packet quoted by an ICMP error, starting at `at`. The quote is a prefix of the
/// original packet: its length fields are not checked against what is present.
fn parse_quote(packet: &[u8], at: usize, version: IpVersion) -> Result<Quote, ParseError> {
    let (src, dst, protocol, l4) = match version {
        IpVersion::V4 => {
            let h: &[u8; ipv4::MIN_HEADER_LEN] = get(packet, at).ok_or(ParseError::TruncatedIcmpQuote)?;
            if h[0] >> 4 != 4 {
                return Err(ParseError::BadIcmpQuote);
            }
            let hl = usize::from(h[0] & 0x0F) * 4;
            if hl < ipv4::MIN_HEADER_LEN {
                return Err(ParseError::BadIcmpQuote);
            }
            if wire::rd16(h, ipv4::FLAGS_FRAG) & ipv4::OFFSET_MASK != 0 {
                return Err(ParseError::IcmpQuoteFragment);
            }
            let src = v4_word(get::<4>(h, ipv4::SRC).unwrap_or(&[0; 4]));
            let dst = v4_word(get::<4>(h, ipv4::DST).unwrap_or(&[0; 4]));
            (src, dst, h[ipv4::PROTOCOL], at + hl)
        }
        IpVersion::V6 => {
            let h: &[u8; ipv6::HEADER_LEN] = get(packet, at).ok_or(ParseError::TruncatedIcmpQuote)?;
            if h[0] >> 4 != 6 {
                return Err(ParseError::BadIcmpQuote);
            }
            let (protocol, l4, _) =
                skip_ipv6_extensions(packet, h[ipv6::NEXT_HEADER], at + ipv6::HEADER_LEN).map_err(|e| match e {
                    ExtError::Truncated => ParseError::TruncatedIcmpQuote,
                    ExtError::Fragment => ParseError::IcmpQuoteFragment,
                    ExtError::MisplacedHopByHop => ParseError::BadIcmpQuote,
                })?;
            let src = u128::from_ne_bytes(*get::<16>(h, ipv6::SRC).unwrap_or(&[0; 16]));
            let dst = u128::from_ne_bytes(*get::<16>(h, ipv6::DST).unwrap_or(&[0; 16]));
            (src, dst, protocol, l4)
        }
    };
    let proto = match (protocol, version) {
        (proto::TCP, _) => Protocol::Tcp,
        (proto::UDP, _) => Protocol::Udp,
        (proto::ICMP, IpVersion::V4) => Protocol::Icmp,
        (proto::ICMPV6, IpVersion::V6) => Protocol::Icmpv6,
        _ => return Err(ParseError::UnsupportedIcmpQuoteProtocol),
    };
    // RFC 792 / RFC 4443: at least the first 8 bytes of the transport header are quoted.
    let t: &[u8; 8] = get(packet, l4).ok_or(ParseError::TruncatedIcmpQuote)?;
    let (src_port, dst_port) = if proto.has_ports() { (be16([t[0], t[1]]), be16([t[2], t[3]])) } else { (0, 0) };
    Ok(Quote { src, dst, src_port, dst_port, proto, l3: at, l4 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header (no options) of `total` bytes carrying `protocol`, 192.0.2.1 -> 198.51.100.1.
    fn v4_header(protocol: u8, total: u16, frag: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h[8] = 64;
        h[9] = protocol;
        h[12..16].copy_from_slice(&[192, 0, 2, 1]);
        h[16..20].copy_from_slice(&[198, 51, 100, 1]);
        h
    }

    /// An IPv6 header with `payload` bytes after it, first header `next`, 2001:db8::1 -> ::2.
    fn v6_header(next: u8, payload: u16) -> [u8; 40] {
        let mut h = [0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&payload.to_be_bytes());
        h[6] = next;
        h[7] = 64;
        h[8..10].copy_from_slice(&[0x20, 0x01]);
        h[10..12].copy_from_slice(&[0x0d, 0xb8]);
        h[23] = 1;
        h[24..26].copy_from_slice(&[0x20, 0x01]);
        h[26..28].copy_from_slice(&[0x0d, 0xb8]);
        h[39] = 2;
        h
    }

    fn ip_layer(version: IpVersion, protocol: u8, l4: usize, end: usize, bits: u8) -> IpLayer {
        IpLayer { version, protocol, l3: 0, l4, end, ttl: 64, bits, tags: 0 }
    }

    #[test]
    fn addresses_round_trip_through_the_packet_words() {
        let a: Ipv4Addr = "192.0.2.1".parse().unwrap();
        assert_eq!(to_addr(IpVersion::V4, v4_word(&a.octets())), IpAddr::V4(a));
        let b: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(to_addr(IpVersion::V6, u128::from_ne_bytes(b.octets())), IpAddr::V6(b));
    }

    #[test]
    fn extension_header_types() {
        for t in [ipv6::NH_HOP_BY_HOP, ipv6::NH_ROUTING, ipv6::NH_DEST_OPTS, ipv6::NH_FRAGMENT] {
            assert!(is_extension(t), "{t}");
        }
        for t in [proto::TCP, proto::UDP, proto::ICMPV6, 59] {
            assert!(!is_extension(t), "{t}");
        }
    }

    #[test]
    fn extension_walk_reaches_the_transport_header() {
        // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> TCP.
        let mut p = [0u8; 24];
        p[0] = ipv6::NH_DEST_OPTS;
        p[8] = proto::TCP;
        p[9] = 1;
        let Ok((next, at, first)) = skip_ipv6_extensions(&p, ipv6::NH_HOP_BY_HOP, 0) else { panic!() };
        assert_eq!((next, at, first), (proto::TCP, 24, false));
    }

    #[test]
    fn extension_walk_sees_a_first_fragment_and_refuses_later_ones() {
        let mut p = [0u8; 8];
        p[0] = proto::UDP;
        p[3] = 1; // offset 0, M set
        assert!(matches!(skip_ipv6_extensions(&p, ipv6::NH_FRAGMENT, 0), Ok((proto::UDP, 8, true))));
        p[3] = 0;
        assert!(matches!(skip_ipv6_extensions(&p, ipv6::NH_FRAGMENT, 0), Ok((proto::UDP, 8, false))));
        p[2] = 0x01; // offset 32 bytes: not the first fragment
        assert!(matches!(skip_ipv6_extensions(&p, ipv6::NH_FRAGMENT, 0), Err(ExtError::Fragment)));
    }

    #[test]
    fn extension_walk_errors() {
        // A hop-by-hop header after another extension header.
        let mut p = [0u8; 16];
        p[0] = ipv6::NH_HOP_BY_HOP;
        assert!(matches!(skip_ipv6_extensions(&p, ipv6::NH_ROUTING, 0), Err(ExtError::MisplacedHopByHop)));
        // A length that runs past the packet.
        let mut p = [0u8; 8];
        p[1] = 1;
        assert!(matches!(skip_ipv6_extensions(&p, ipv6::NH_ROUTING, 0), Err(ExtError::Truncated)));
        // Too short for the fixed part.
        assert!(matches!(skip_ipv6_extensions(&[0u8; 1], ipv6::NH_ROUTING, 0), Err(ExtError::Truncated)));
        assert!(matches!(skip_ipv6_extensions(&[0u8; 7], ipv6::NH_FRAGMENT, 0), Err(ExtError::Truncated)));
    }

    #[test]
    fn transport_tcp_offset_and_udp_length_are_checked() {
        let mut p = [0u8; 40];
        p[20] = 0x9c;
        p[21] = 0x40;
        p[23] = 80;
        p[32] = 0x50;
        p[33] = TcpFlags::SYN;
        let ip = ip_layer(IpVersion::V4, proto::TCP, 20, 40, 0);
        let Ok(pkt) = parse_transport(&p, ip, 1, 2) else { panic!() };
        assert_eq!((pkt.protocol(), pkt.flow().src_port, pkt.flow().dst_port), (Protocol::Tcp, 40000, 80));
        assert!(pkt.tcp_flags().syn());
        p[32] = 0x40; // 16-byte header
        assert_eq!(parse_transport(&p, ip, 1, 2), Err(ParseError::BadTcpOffset));
        p[32] = 0x60; // 24 bytes, only 20 there
        assert_eq!(parse_transport(&p, ip, 1, 2), Err(ParseError::BadTcpOffset));
        assert_eq!(parse_transport(&p[..30], ip, 1, 2), Err(ParseError::TruncatedTcp));

        let mut u = [0u8; 28];
        u[24..26].copy_from_slice(&8u16.to_be_bytes());
        let ip = ip_layer(IpVersion::V4, proto::UDP, 20, 28, 0);
        assert!(matches!(parse_transport(&u, ip, 1, 2), Ok(p) if p.protocol() == Protocol::Udp));
        u[24..26].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(parse_transport(&u, ip, 1, 2), Err(ParseError::BadUdpLength));
        // Longer than what is here: wrong, except in a first fragment.
        u[24..26].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(parse_transport(&u, ip, 1, 2), Err(ParseError::BadUdpLength));
        let first = ip_layer(IpVersion::V4, proto::UDP, 20, 28, BIT_FIRST_FRAGMENT);
        assert!(parse_transport(&u, first, 1, 2).is_ok());
    }

    #[test]
    fn transport_icmp_must_match_the_ip_version() {
        let p = [0u8; 28];
        let ip = ip_layer(IpVersion::V6, proto::ICMP, 20, 28, 0);
        assert_eq!(parse_transport(&p, ip, 1, 2), Err(ParseError::UnsupportedProtocol));
        let ip = ip_layer(IpVersion::V4, proto::ICMPV6, 20, 28, 0);
        assert_eq!(parse_transport(&p, ip, 1, 2), Err(ParseError::UnsupportedProtocol));
        let ip = ip_layer(IpVersion::V4, proto::ICMP, 20, 28, 0);
        let Ok(pkt) = parse_transport(&p, ip, 1, 2) else { panic!() };
        assert_eq!((pkt.protocol(), pkt.icmp_type_code()), (Protocol::Icmp, Some((0, 0))));
        assert!(!pkt.has_quote());
    }

    #[test]
    fn quote_v4_with_ports() {
        let mut p = Vec::new();
        p.extend_from_slice(&v4_header(proto::UDP, 28, 0));
        p.extend_from_slice(&[0x00, 0x35, 0x9c, 0x40, 0, 8, 0, 0]);
        let Ok(q) = parse_quote(&p, 0, IpVersion::V4) else { panic!() };
        assert_eq!((q.proto, q.src_port, q.dst_port, q.l3, q.l4), (Protocol::Udp, 53, 40000, 0, 20));
        assert_eq!(to_addr(IpVersion::V4, q.src), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(to_addr(IpVersion::V4, q.dst), "198.51.100.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn quote_v4_errors() {
        let tail = [0u8; 8];
        let quote = |h: [u8; 20], tail: &[u8]| {
            let mut p = h.to_vec();
            p.extend_from_slice(tail);
            parse_quote(&p, 0, IpVersion::V4).map(|_| ())
        };
        assert_eq!(quote(v4_header(proto::TCP, 28, 0), &tail[..7]), Err(ParseError::TruncatedIcmpQuote));
        assert_eq!(quote(v4_header(proto::TCP, 28, 0x0001), &tail), Err(ParseError::IcmpQuoteFragment));
        assert_eq!(quote(v4_header(proto::ICMPV6, 28, 0), &tail), Err(ParseError::UnsupportedIcmpQuoteProtocol));
        assert_eq!(quote(v4_header(proto::IPIP, 28, 0), &tail), Err(ParseError::UnsupportedIcmpQuoteProtocol));
        let mut h = v4_header(proto::TCP, 28, 0);
        h[0] = 0x44;
        assert_eq!(quote(h, &tail), Err(ParseError::BadIcmpQuote));
        h[0] = 0x65;
        assert_eq!(quote(h, &tail), Err(ParseError::BadIcmpQuote));
        assert_eq!(parse_quote(&[0x45; 19], 0, IpVersion::V4).map(|_| ()), Err(ParseError::TruncatedIcmpQuote));
        // An ICMP quote has no ports.
        let Ok(q) = parse_quote(&[v4_header(proto::ICMP, 28, 0).as_slice(), &[8; 8]].concat(), 0, IpVersion::V4) else {
            panic!()
        };
        assert_eq!((q.proto, q.src_port, q.dst_port), (Protocol::Icmp, 0, 0));
    }

    #[test]
    fn quote_v6_through_extension_headers() {
        let mut p = v6_header(ipv6::NH_DEST_OPTS, 16).to_vec();
        p.extend_from_slice(&[proto::TCP, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[0x01, 0xbb, 0x9c, 0x40, 0, 0, 0, 0]);
        let Ok(q) = parse_quote(&p, 0, IpVersion::V6) else { panic!() };
        assert_eq!((q.proto, q.src_port, q.dst_port, q.l4), (Protocol::Tcp, 443, 40000, 48));
        assert_eq!(to_addr(IpVersion::V6, q.dst), "2001:db8::2".parse::<IpAddr>().unwrap());
        // A fragment header with a non-zero offset in the quote.
        let mut p = v6_header(ipv6::NH_FRAGMENT, 16).to_vec();
        p.extend_from_slice(&[proto::TCP, 0, 0x01, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[0; 8]);
        assert_eq!(parse_quote(&p, 0, IpVersion::V6).map(|_| ()), Err(ParseError::IcmpQuoteFragment));
        // ICMP (v4) inside ICMPv6 is not a quote lbkit reads.
        let mut p = v6_header(proto::ICMP, 8).to_vec();
        p.extend_from_slice(&[0; 8]);
        assert_eq!(parse_quote(&p, 0, IpVersion::V6).map(|_| ()), Err(ParseError::UnsupportedIcmpQuoteProtocol));
    }
}
