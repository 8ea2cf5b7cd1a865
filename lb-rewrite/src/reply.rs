//! The ICMP errors a director sends back to the client: time exceeded (TTL / hop limit expired on
//! the way through) and fragmentation needed / packet too big (the MTU toward the real server).
//! They are written into a caller-provided buffer; nothing is allocated.

use std::net::IpAddr;

use crate::checksum;
use crate::error::RewriteError;
use crate::frame::MacAddr;
use crate::parse::{IpVersion, Packet};
use crate::wire::{self, eth, icmp, ipv4, ipv6, proto};

/// The TTL / hop limit of the replies: Linux's defaults (`ip_default_ttl`, IPv6 `hop_limit`).
pub const REPLY_TTL: u8 = 64;
/// The longest IPv4 reply, quote included ([RFC 1812 §4.3.2.3]: 576 bytes; Linux's `icmp_send`).
///
/// [RFC 1812 §4.3.2.3]: https://www.rfc-editor.org/rfc/rfc1812#section-4.3.2.3
pub const MAX_REPLY_V4: usize = 576;
/// The longest IPv6 reply, quote included ([RFC 4443 §2.4 (c)]: the IPv6 minimum MTU).
///
/// [RFC 4443 §2.4 (c)]: https://www.rfc-editor.org/rfc/rfc4443#section-2.4
pub const MAX_REPLY_V6: usize = 1280;

/// Who sends the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplySource {
    /// The director's address the reply comes from (the packet's family).
    pub addr: IpAddr,
    /// The director's MAC on the link the packet came in by (the reply's source MAC; the
    /// destination MAC is the packet's source MAC, and its VLAN tags are kept).
    pub mac: MacAddr,
    /// Identification of the IPv4 reply header (unused for IPv6).
    pub ident: u16,
}

/// Builds the ICMP "time exceeded in transit" (type 11 code 0) or ICMPv6 "hop limit exceeded"
/// (type 3 code 0) reply to the sender of the packet `pkt` of `frame`, for
/// [`Verdict::TimeExceeded`](crate::Verdict::TimeExceeded). Returns the length of the frame
/// written at the start of `out`.
///
/// The reply quotes the packet from its IP header on, as much as fits in 576 bytes (IPv4) or
/// 1280 bytes (IPv6) of reply ([RFC 792], [RFC 4443 §3.3]). Its IPv4 header: TOS
/// `0xC0 | (tos & 0x1E)`, identification `from.ident`, no DF, TTL 64 (Linux's `icmp_send`); its
/// IPv6 header: traffic class 0, flow label 0, hop limit 64.
///
/// [RFC 792]: https://www.rfc-editor.org/rfc/rfc792
/// [RFC 4443 §3.3]: https://www.rfc-editor.org/rfc/rfc4443#section-3.3
pub fn build_time_exceeded(
    frame: &[u8],
    pkt: &Packet,
    from: &ReplySource,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    let (ty, rest) = match pkt.version() {
        IpVersion::V4 => (icmp::V4_TIME_EXCEEDED, [0; 4]),
        IpVersion::V6 => (icmp::V6_TIME_EXCEEDED, [0; 4]),
    };
    build(frame, pkt, from, ty, 0, rest, out)
}

/// Builds the ICMP "fragmentation needed and DF set" (type 3 code 4, next-hop MTU in the low 16
/// bits of the second word, [RFC 1191 §4]) or ICMPv6 "packet too big" (type 2 code 0, MTU in the
/// second word, [RFC 4443 §3.2]) reply for [`Verdict::TooBig`](crate::Verdict::TooBig), with
/// the verdict's `mtu`. Quote and headers as for [`build_time_exceeded`].
///
/// [RFC 1191 §4]: https://www.rfc-editor.org/rfc/rfc1191#section-4
/// [RFC 4443 §3.2]: https://www.rfc-editor.org/rfc/rfc4443#section-3.2
pub fn build_too_big(
    frame: &[u8],
    pkt: &Packet,
    mtu: u16,
    from: &ReplySource,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    let [hi, lo] = mtu.to_be_bytes();
    let (ty, code) = match pkt.version() {
        IpVersion::V4 => (icmp::V4_DEST_UNREACH, icmp::V4_FRAG_NEEDED_CODE),
        IpVersion::V6 => (icmp::V6_PACKET_TOO_BIG, 0),
    };
    build(frame, pkt, from, ty, code, [0, 0, hi, lo], out)
}

fn reply_forbidden(pkt: &Packet) -> bool {
    if pkt.is_icmp_error() {
        return true;
    }
    let flow = pkt.flow();
    match (flow.src, flow.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            s.is_unspecified() || s.is_multicast() || s.is_broadcast() || d.is_multicast() || d.is_broadcast()
        }
        (IpAddr::V6(s), _) => s.is_unspecified() || s.is_multicast(),
        _ => true,
    }
}

fn build(
    frame: &[u8],
    pkt: &Packet,
    from: &ReplySource,
    ty: u8,
    code: u8,
    rest: [u8; 4],
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    if IpVersion::of(&from.addr) != pkt.version() {
        return Err(RewriteError::FamilyMismatch);
    }
    if reply_forbidden(pkt) {
        return Err(RewriteError::IcmpReplyForbidden);
    }
    let l2 = pkt.l3();
    if pkt.ip_end() > frame.len() || !(eth::HEADER_LEN..=eth::MAX_HEADER_LEN).contains(&l2) {
        return Err(RewriteError::PacketMismatch);
    }
    let (ip_hdr, max) = match pkt.version() {
        IpVersion::V4 => (ipv4::MIN_HEADER_LEN, MAX_REPLY_V4),
        IpVersion::V6 => (ipv6::HEADER_LEN, MAX_REPLY_V6),
    };
    let quote_len = pkt.ip_len().min(max - ip_hdr - icmp::HEADER_LEN);
    let quote = frame.get(l2..l2 + quote_len).ok_or(RewriteError::PacketMismatch)?;
    let ip_len = ip_hdr + icmp::HEADER_LEN + quote_len;
    let total = l2 + ip_len;
    let out = out.get_mut(..total).ok_or(RewriteError::BufferTooSmall)?;

    // Ethernet: back to where the packet came from, same VLAN tags.
    let (l2_out, ip_out) = out.split_at_mut(l2);
    let in_l2 = frame.get(..l2).ok_or(RewriteError::PacketMismatch)?;
    l2_out.copy_from_slice(in_l2);
    l2_out[eth::DST..eth::DST + 6].copy_from_slice(&in_l2[eth::SRC..eth::SRC + 6]);
    l2_out[eth::SRC..eth::SRC + 6].copy_from_slice(&from.mac.0);

    let (hdr_out, msg) = ip_out.split_at_mut(ip_hdr);
    {
        let (icmp_hdr, quote_out) = msg.split_at_mut(icmp::HEADER_LEN);
        quote_out.copy_from_slice(quote);
        icmp_hdr.copy_from_slice(&[ty, code, 0, 0, rest[0], rest[1], rest[2], rest[3]]);
    }
    match (from.addr, pkt.flow().src) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let tos = quote.get(1).copied().unwrap_or(0);
            let h: &mut [u8; ipv4::MIN_HEADER_LEN] = wire::get_mut(hdr_out, 0).ok_or(RewriteError::PacketMismatch)?;
            h[ipv4::VER_IHL] = 0x45;
            h[ipv4::TOS] = 0xC0 | (tos & 0x1E);
            wire::wr16(h, ipv4::TOTAL_LEN, ip_len as u16);
            wire::wr16(h, ipv4::IDENT, from.ident);
            wire::wr16(h, ipv4::FLAGS_FRAG, 0);
            h[ipv4::TTL] = REPLY_TTL;
            h[ipv4::PROTOCOL] = proto::ICMP;
            wire::wr16(h, ipv4::CHECKSUM, 0);
            h[ipv4::SRC..ipv4::SRC + 4].copy_from_slice(&src.octets());
            h[ipv4::DST..ipv4::DST + 4].copy_from_slice(&dst.octets());
            let c = checksum::checksum(h);
            wire::wr16(h, ipv4::CHECKSUM, c);
            let c = checksum::checksum(msg);
            msg[icmp::CHECKSUM..icmp::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let h: &mut [u8; ipv6::HEADER_LEN] = wire::get_mut(hdr_out, 0).ok_or(RewriteError::PacketMismatch)?;
            h[..4].copy_from_slice(&[0x60, 0, 0, 0]);
            wire::wr16(h, ipv6::PAYLOAD_LEN, (icmp::HEADER_LEN + quote_len) as u16);
            h[ipv6::NEXT_HEADER] = proto::ICMPV6;
            h[ipv6::HOP_LIMIT] = REPLY_TTL;
            h[ipv6::SRC..ipv6::SRC + 16].copy_from_slice(&src.octets());
            h[ipv6::DST..ipv6::DST + 16].copy_from_slice(&dst.octets());
            let sum = checksum::pseudo_header_v6(&src.octets(), &dst.octets(), proto::ICMPV6, msg.len() as u32);
            let c = sum.add_bytes(msg).checksum();
            msg[icmp::CHECKSUM..icmp::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
        }
        _ => return Err(RewriteError::FamilyMismatch),
    }
    // The ethertype is the packet's (same family); the tags were copied with it.
    Ok(total)
}
