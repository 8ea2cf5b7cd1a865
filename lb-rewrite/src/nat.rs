//! NAT (IPVS "masquerading", `docs/ipvs.md` §4.3, §4.6): addresses and ports of requests
//! and replies. ICMP errors about a connection are in `nat_icmp`.

use std::net::SocketAddr;

use crate::checksum::{self, Update};
use crate::error::RewriteError;
use crate::forward::{fit, ip_header_mut, over_mtu, set_macs, ttl_down_v4, Fit};
use crate::frame::{FragmentSink, FrameBuf, NextHop, Verdict};
use crate::parse::{IpVersion, Packet};
use crate::wire::{self, get_mut, icmp, ipv4, ipv6, proto, tcp, udp};
use lb_sched::Protocol;

/// Which end of the packet NAT rewrites: where the address sits in each IP header and the port
/// in the transport header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct End {
    v4: usize,
    v6: usize,
    port: usize,
}

const DST: End = End { v4: ipv4::DST, v6: ipv6::DST, port: tcp::DST_PORT };
const SRC: End = End { v4: ipv4::SRC, v6: ipv6::SRC, port: tcp::SRC_PORT };

/// NAT of a request (`ip_vs_nat_xmit` + the protocol's `dnat_handler`): destination address and
/// port become the real server's `to`.
///
/// TCP and UDP checksums are updated incrementally (pseudo-header included), as is the IPv4 header
/// checksum; a UDP checksum of zero gets a full computation (IPVS does this; a computed zero is
/// stored as `0xFFFF`), except in a first fragment, where it stays zero. ICMP echo and other
/// non-error ICMP only get the address (and the ICMPv6 checksum). ICMP errors are refused with
/// [`RewriteError::IcmpErrorPacket`]: use [`nat_icmp_in`](crate::nat_icmp_in).
///
/// Verdicts as for [`dr`](crate::dr); `to` must have the packet's IP family.
#[inline]
pub fn dnat(
    frame: &mut FrameBuf<'_>,
    pkt: &Packet,
    hop: &NextHop,
    to: SocketAddr,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    nat(frame, pkt, hop, DST, to, frags)
}

/// NAT of a reply (`handle_response` + the protocol's `snat_handler`): source address and port
/// become the virtual service's `from`. Checksums and verdicts as for [`dnat`].
#[inline]
pub fn snat(
    frame: &mut FrameBuf<'_>,
    pkt: &Packet,
    hop: &NextHop,
    from: SocketAddr,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    nat(frame, pkt, hop, SRC, from, frags)
}

#[inline(always)]
fn nat(
    frame: &mut FrameBuf<'_>,
    pkt: &Packet,
    hop: &NextHop,
    end: End,
    to: SocketAddr,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    if pkt.has_quote() {
        return Err(RewriteError::IcmpErrorPacket);
    }
    if IpVersion::of(&to.ip()) != pkt.version() {
        return Err(RewriteError::FamilyMismatch);
    }
    let fit = fit(pkt, pkt.ip_len(), hop.mtu);
    if fit != Fit::Fits {
        return over_mtu(frame, *pkt, hop, fit, move |f, pkt, hop| nat_in_place(f, pkt, hop, end, to), frags);
    }
    nat_in_place(frame.frame_mut(), pkt, hop, end, to)
}

#[inline(always)]
fn nat_in_place(f: &mut [u8], pkt: &Packet, hop: &NextHop, end: End, to: SocketAddr) -> Result<Verdict, RewriteError> {
    match to {
        SocketAddr::V4(to) => nat_ip::<V4Header>(f, pkt, hop, end, u32::from(*to.ip()), to.port()),
        SocketAddr::V6(to) => nat_ip::<V6Header>(f, pkt, hop, end, to.ip().octets(), to.port()),
    }
}

type V4Header = [u8; ipv4::MIN_HEADER_LEN];
type V6Header = [u8; ipv6::HEADER_LEN];

/// An IP header as NAT changes it. [`nat_ip`] is the one NAT path for both families; what
/// differs between IPv4 and IPv6 is here.
trait NatHeader {
    /// The new address as NAT receives it.
    type Addr: Copy;

    /// The header of `pkt` in `head`, checked against the packet (`ip_header_mut`).
    fn of<'a>(head: &'a mut [u8], pkt: &Packet) -> Result<&'a mut Self, RewriteError>;

    /// TTL / hop limit 1 or 0: the packet may not be forwarded.
    fn expired(&self) -> bool;

    /// The header change: the address at `end`, the TTL / hop limit, and for IPv4 the header
    /// checksum, in one update. Returns the address change, which the transport checksum takes
    /// too.
    fn update(&mut self, end: End, new: Self::Addr) -> Update;

    /// The header change for an ICMP message that is not an error, and its checksum in `l4` if
    /// it covers the pseudo-header (ICMPv6).
    fn update_icmp(&mut self, end: End, new: Self::Addr, l4: &mut [u8]) -> Result<(), RewriteError>;
}

impl NatHeader for V4Header {
    type Addr = u32;

    #[inline(always)]
    fn of<'a>(head: &'a mut [u8], pkt: &Packet) -> Result<&'a mut Self, RewriteError> {
        ip_header_mut(head, pkt)
    }

    #[inline(always)]
    fn expired(&self) -> bool {
        self[ipv4::TTL] <= 1
    }

    #[inline(always)]
    fn update(&mut self, end: End, new: u32) -> Update {
        // `end.v4` is 12 or 16: the field is always there.
        // Native-order words throughout (see `wire::rd16ne`).
        let new = u32::from_ne_bytes(new.to_be_bytes());
        let mut old = new;
        if let Some(field) = get_mut::<4>(self, end.v4) {
            old = u32::from_ne_bytes(*field);
            *field = new.to_ne_bytes();
        }
        let addr_up = Update::new().replace_u32(old, new);
        let c = ttl_down_v4(self).then(addr_up).apply(wire::rd16ne(self, ipv4::CHECKSUM));
        wire::wr16ne(self, ipv4::CHECKSUM, c);
        addr_up
    }

    /// The ICMPv4 checksum covers the ICMP message only.
    #[inline(always)]
    fn update_icmp(&mut self, end: End, new: u32, _l4: &mut [u8]) -> Result<(), RewriteError> {
        self.update(end, new);
        Ok(())
    }
}

impl NatHeader for V6Header {
    type Addr = [u8; 16];

    #[inline(always)]
    fn of<'a>(head: &'a mut [u8], pkt: &Packet) -> Result<&'a mut Self, RewriteError> {
        ip_header_mut(head, pkt)
    }

    #[inline(always)]
    fn expired(&self) -> bool {
        self[ipv6::HOP_LIMIT] <= 1
    }

    #[inline(always)]
    fn update(&mut self, end: End, new: [u8; 16]) -> Update {
        self[ipv6::HOP_LIMIT] = self[ipv6::HOP_LIMIT].wrapping_sub(1);
        // `end.v6` is 8 or 24: the field is always there.
        let mut old = new;
        if let Some(field) = get_mut::<16>(self, end.v6) {
            old = *field;
            *field = new;
        }
        Update::new().replace_addr16_ne(&old, &new)
    }

    /// The ICMPv6 checksum covers the pseudo-header.
    #[inline(always)]
    fn update_icmp(&mut self, end: End, new: [u8; 16], l4: &mut [u8]) -> Result<(), RewriteError> {
        let i: &mut [u8; icmp::HEADER_LEN] = get_mut(l4, 0).ok_or(RewriteError::PacketMismatch)?;
        let addr_up = self.update(end, new);
        let c = addr_up.apply(wire::rd16ne(i, icmp::CHECKSUM));
        wire::wr16ne(i, icmp::CHECKSUM, c);
        Ok(())
    }
}

/// The frame cut at the end of the IP packet, split at the transport header.
#[inline(always)]
fn split_l4<'a>(f: &'a mut [u8], pkt: &Packet) -> Result<(&'a mut [u8], &'a mut [u8]), RewriteError> {
    let f = f.get_mut(..pkt.ip_end()).ok_or(RewriteError::PacketMismatch)?;
    f.split_at_mut_checked(pkt.l4()).ok_or(RewriteError::PacketMismatch)
}

/// Writes `port` (network order, as a native-order word) at `at` in a transport header and
/// returns the old one the same way.
#[inline(always)]
fn replace_port<const N: usize>(t: &mut [u8; N], at: usize, port: u16) -> u16 {
    let old = wire::rd16ne(t, at);
    wire::wr16ne(t, at, port);
    old
}

/// NAT of a packet whose IP header is `H`: the address and TTL / hop limit in the IP header,
/// the port at `end` and the transport checksum, the MACs.
#[inline(always)]
fn nat_ip<H: NatHeader + ?Sized>(
    f: &mut [u8],
    pkt: &Packet,
    hop: &NextHop,
    end: End,
    new: H::Addr,
    port: u16,
) -> Result<Verdict, RewriteError> {
    let (head, l4) = split_l4(f, pkt)?;
    let h = H::of(head, pkt)?;
    if h.expired() {
        return Ok(Verdict::TimeExceeded);
    }
    match pkt.protocol() {
        Protocol::Tcp => {
            let t: &mut [u8; tcp::HEADER_LEN] = get_mut(l4, 0).ok_or(RewriteError::PacketMismatch)?;
            let addr_up = h.update(end, new);
            let port = u16::from_ne_bytes(port.to_be_bytes());
            let old = replace_port(t, end.port, port);
            let c = addr_up.replace_u16(old, port).apply(wire::rd16ne(t, tcp::CHECKSUM));
            wire::wr16ne(t, tcp::CHECKSUM, c);
        }
        Protocol::Udp => {
            let u: &mut [u8; udp::HEADER_LEN] = get_mut(l4, 0).ok_or(RewriteError::PacketMismatch)?;
            let addr_up = h.update(end, new);
            let port = u16::from_ne_bytes(port.to_be_bytes());
            let old = replace_port(u, end.port, port);
            // 0x0000 and 0xFFFF read the same in either byte order.
            let check = wire::rd16ne(u, udp::CHECKSUM);
            if check != 0 {
                wire::wr16ne(u, udp::CHECKSUM, addr_up.replace_u16(old, port).apply_udp(check));
            } else if !pkt.is_first_fragment() {
                udp_full_checksum(head, pkt.version(), pkt.l3(), l4);
            }
        }
        Protocol::Icmp | Protocol::Icmpv6 => h.update_icmp(end, new, l4)?,
    }
    set_macs(head, hop)?;
    Ok(Verdict::Forward)
}

/// Computes the UDP checksum of the datagram at the start of `l4` (its length field says how
/// long it is) over the pseudo-header of the IP header in `head`, as IPVS does for a zero one.
#[cold]
#[inline(never)]
fn udp_full_checksum(head: &[u8], version: IpVersion, l3: usize, l4: &mut [u8]) {
    let Some(u) = wire::get::<{ udp::HEADER_LEN }>(l4, 0) else { return };
    let len = wire::rd16(u, udp::LENGTH);
    let pseudo = match pseudo_header_at(head, version, l3, proto::UDP, u32::from(len)) {
        Some(p) => p,
        None => return,
    };
    let Some(dgram) = l4.get_mut(..usize::from(len)) else { return };
    if let Some(u) = get_mut::<{ udp::HEADER_LEN }>(dgram, 0) {
        wire::wr16(u, udp::CHECKSUM, 0);
    }
    let c = checksum::udp_wire(pseudo.add_bytes(dgram).checksum());
    if let Some(u) = get_mut::<{ udp::HEADER_LEN }>(dgram, 0) {
        wire::wr16(u, udp::CHECKSUM, c);
    }
}

/// The pseudo-header sum of the packet whose IP header is in `head`.
pub(crate) fn pseudo_header(head: &[u8], pkt: &Packet, protocol: u8, len: u32) -> Option<checksum::Sum> {
    pseudo_header_at(head, pkt.version(), pkt.l3(), protocol, len)
}

/// The pseudo-header sum of the IP header at `head[l3..]`.
fn pseudo_header_at(head: &[u8], version: IpVersion, l3: usize, protocol: u8, len: u32) -> Option<checksum::Sum> {
    match version {
        IpVersion::V4 => {
            let h: &[u8; ipv4::MIN_HEADER_LEN] = wire::get(head, l3)?;
            let src = wire::get::<4>(h, ipv4::SRC)?;
            let dst = wire::get::<4>(h, ipv4::DST)?;
            Some(checksum::pseudo_header_v4(src, dst, protocol, len as u16))
        }
        IpVersion::V6 => {
            let h: &[u8; ipv6::HEADER_LEN] = wire::get(head, l3)?;
            let src = wire::get::<16>(h, ipv6::SRC)?;
            let dst = wire::get::<16>(h, ipv6::DST)?;
            Some(checksum::pseudo_header_v6(src, dst, protocol, len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MacAddr;
    use crate::parse::parse;
    use crate::testutil::{self, addr6, l4_checksum_ok, tcp, udp};
    use crate::wire::proto;

    const HOP: NextHop =
        NextHop { src_mac: MacAddr([2, 0, 0, 0, 0, 0xa]), dst_mac: MacAddr([2, 0, 0, 0, 0, 0xb]), mtu: 1500 };

    fn v4_header(f: &mut [u8]) -> &mut V4Header {
        get_mut(f, 14).unwrap()
    }

    #[test]
    fn v4_header_update_keeps_the_header_checksum_right() {
        let mut f = testutil::v4(proto::TCP, 64, true, &tcp());
        let h = v4_header(&mut f);
        assert!(!h.expired());
        let up = h.update(DST, u32::from_be_bytes([10, 0, 0, 2]));
        assert_eq!(&h[16..20], &[10, 0, 0, 2]);
        assert_eq!(h[ipv4::TTL], 63);
        assert!(checksum::verify(&h[..]));
        // The returned update is the address change alone: 198.51.100.1 -> 10.0.0.2.
        let want = Update::new().replace_u32(u32::from_ne_bytes([198, 51, 100, 1]), u32::from_ne_bytes([10, 0, 0, 2]));
        assert_eq!(up, want);
        let h = v4_header(&mut f);
        h.update(SRC, u32::from_be_bytes([203, 0, 113, 9]));
        assert_eq!(&h[12..16], &[203, 0, 113, 9]);
        assert!(checksum::verify(&h[..]));
    }

    #[test]
    fn expiry_at_ttl_and_hop_limit_one() {
        let mut f = testutil::v4(proto::TCP, 1, true, &tcp());
        assert!(v4_header(&mut f).expired());
        let mut f = testutil::v6(proto::TCP, 1, &tcp());
        let h: &mut V6Header = get_mut(&mut f, 14).unwrap();
        assert!(h.expired());
        h[ipv6::HOP_LIMIT] = 2;
        assert!(!h.expired());
    }

    #[test]
    fn v6_header_update_changes_the_address_and_hop_limit() {
        let mut f = testutil::v6(proto::TCP, 64, &tcp());
        let h: &mut V6Header = get_mut(&mut f, 14).unwrap();
        h.update(DST, addr6(0x42));
        assert_eq!(&h[ipv6::DST..ipv6::DST + 16], &addr6(0x42));
        assert_eq!(&h[ipv6::SRC..ipv6::SRC + 16], &addr6(7));
        assert_eq!(h[ipv6::HOP_LIMIT], 63);
    }

    #[test]
    fn icmpv6_checksum_follows_the_address_and_icmpv4_has_none_to_follow() {
        let echo = [128, 0, 0, 0, 0, 1, 0, 1];
        let mut f = testutil::v6(proto::ICMPV6, 64, &echo);
        let (head, l4) = f.split_at_mut(54);
        let h: &mut V6Header = get_mut(head, 14).unwrap();
        h.update_icmp(SRC, addr6(9), l4).unwrap();
        assert!(l4_checksum_ok(&f));
        let mut short = [0u8; 4];
        let h: &mut V6Header = get_mut(&mut f, 14).unwrap();
        assert_eq!(h.update_icmp(SRC, addr6(9), &mut short), Err(RewriteError::PacketMismatch));

        let mut f = testutil::v4(proto::ICMP, 64, true, &[8, 0, 0xf7, 0xfe, 0, 1, 0, 0]);
        let before = f[34..].to_vec();
        let (head, l4) = f.split_at_mut(34);
        get_mut::<20>(head, 14).unwrap().update_icmp(DST, 0x0a00_0002, l4).unwrap();
        assert_eq!(&f[34..], &before[..]);
        assert!(checksum::verify(&f[14..34]));
    }

    #[test]
    fn replace_port_returns_the_old_word() {
        let mut t = tcp();
        let new = u16::from_ne_bytes(8080u16.to_be_bytes());
        let old = replace_port(&mut t, tcp::DST_PORT, new);
        assert_eq!(old, u16::from_ne_bytes(80u16.to_be_bytes()));
        assert_eq!(&t[2..4], &8080u16.to_be_bytes());
        assert_eq!(&t[0..2], &40000u16.to_be_bytes());
    }

    #[test]
    fn split_l4_cuts_at_the_packet_end() {
        let mut f = testutil::v4(proto::TCP, 64, true, &tcp());
        let pkt = parse(&f).unwrap();
        f.extend_from_slice(&[0xEE; 6]); // Ethernet padding
        let (head, l4) = split_l4(&mut f, &pkt).unwrap();
        assert_eq!((head.len(), l4.len()), (34, 20));
        let mut short = f[..40].to_vec();
        assert_eq!(split_l4(&mut short, &pkt).err(), Some(RewriteError::PacketMismatch));
    }

    #[test]
    fn nat_ip_rewrites_tcp_and_udp_in_both_families() {
        for (mut f, v6) in [
            (testutil::v4(proto::TCP, 64, true, &tcp()), false),
            (testutil::v4(proto::UDP, 64, true, &udp(false)), false),
            (testutil::v6(proto::TCP, 64, &tcp()), true),
            (testutil::v6(proto::UDP, 64, &udp(false)), true),
        ] {
            let pkt = parse(&f).unwrap();
            let v = if v6 {
                nat_ip::<V6Header>(&mut f, &pkt, &HOP, DST, addr6(2), 8080)
            } else {
                nat_ip::<V4Header>(&mut f, &pkt, &HOP, DST, 0x0a00_0002, 8080)
            };
            assert_eq!(v, Ok(Verdict::Forward));
            assert!(l4_checksum_ok(&f), "{:?}", pkt.protocol());
            let out = parse(&f).unwrap();
            assert_eq!(out.flow().dst_port, 8080);
            assert_eq!(out.ttl(), 63);
            assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa]);
        }
    }

    #[test]
    fn nat_ip_time_exceeded_changes_nothing() {
        let mut f = testutil::v4(proto::TCP, 1, true, &tcp());
        let before = f.clone();
        let pkt = parse(&f).unwrap();
        assert_eq!(nat_ip::<V4Header>(&mut f, &pkt, &HOP, SRC, 1, 1), Ok(Verdict::TimeExceeded));
        assert_eq!(f, before);
    }

    #[test]
    fn zero_udp_checksum_is_computed_in_full() {
        let mut f = testutil::v4(proto::UDP, 64, true, &udp(true));
        assert_eq!(&f[40..42], &[0, 0]);
        let pkt = parse(&f).unwrap();
        assert_eq!(nat_ip::<V4Header>(&mut f, &pkt, &HOP, DST, 0x0a00_0002, 5353), Ok(Verdict::Forward));
        assert_ne!(&f[40..42], &[0, 0]);
        assert!(l4_checksum_ok(&f));

        // The same through `udp_full_checksum` directly, for IPv6.
        let mut f = testutil::v6(proto::UDP, 64, &udp(true));
        let (head, l4) = f.split_at_mut(54);
        udp_full_checksum(head, IpVersion::V6, 14, l4);
        assert!(l4_checksum_ok(&f));
    }

    #[test]
    fn pseudo_header_needs_the_whole_ip_header() {
        let f = testutil::v4(proto::TCP, 64, true, &tcp());
        let want = checksum::pseudo_header_v4(&[192, 0, 2, 7], &[198, 51, 100, 1], proto::TCP, 20);
        assert_eq!(pseudo_header_at(&f, IpVersion::V4, 14, proto::TCP, 20), Some(want));
        assert_eq!(pseudo_header_at(&f[..33], IpVersion::V4, 14, proto::TCP, 20), None);
        let f = testutil::v6(proto::TCP, 64, &tcp());
        let want = checksum::pseudo_header_v6(&addr6(7), &addr6(1), proto::TCP, 20);
        assert_eq!(pseudo_header_at(&f, IpVersion::V6, 14, proto::TCP, 20), Some(want));
        assert_eq!(pseudo_header_at(&f[..53], IpVersion::V6, 14, proto::TCP, 20), None);
    }
}
