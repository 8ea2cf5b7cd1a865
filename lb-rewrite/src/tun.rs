//! TUN: IP-in-IP encapsulation toward the real server (IPVS `ip_vs_tunnel_xmit[_v6]`,
//! `docs/ipvs.md` §4.5), optionally in GUE.

use std::net::IpAddr;

use lb_sched::Flow;

use crate::checksum;
use crate::error::RewriteError;
use crate::forward::{fit, ip_header_mut, set_macs, ttl_down_v4_apply, Fit};
use crate::frag;
use crate::frame::{FragmentSink, FrameBuf, NextHop, Verdict};
use crate::parse::{IpVersion, Packet};
use crate::wire::{self, eth, gue, ipv4, ipv6, proto, udp};

/// The encapsulation of a tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    /// Plain IP in IP (IPVS tunnel type `ipip`): outer protocol / next header 4 for an IPv4
    /// inner packet, 41 for an IPv6 one, whatever the outer family.
    Ipip,
    /// GUE (IPVS tunnel type `gue`): outer UDP to `port` with a 4-byte GUE header (version 0,
    /// no options), UDP checksum 0, source port [`gue_source_port`] of the inner flow.
    Gue {
        /// The UDP destination port (IPVS `tun_port`).
        port: u16,
    },
}

/// A tunnel to one real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// Outer source: the director's tunnel address (same family as `dst`).
    pub src: IpAddr,
    /// Outer destination: the real server.
    pub dst: IpAddr,
    /// IPIP or GUE.
    pub encap: Encap,
    /// Identification of the outer IPv4 header (the kernel's `ip_select_ident`: the caller's
    /// per-destination counter). For an outer IPv6 packet that has to be fragmented, the
    /// fragment header's identification.
    pub ident: u16,
}

impl Tunnel {
    /// The bytes the encapsulation adds: 20 (outer IPv4) or 40 (outer IPv6), plus 12 for GUE
    /// (UDP 8 + GUE 4).
    #[inline]
    pub const fn overhead(&self) -> usize {
        let ip = match self.dst {
            IpAddr::V4(_) => ipv4::MIN_HEADER_LEN,
            IpAddr::V6(_) => ipv6::HEADER_LEN,
        };
        match self.encap {
            Encap::Ipip => ip,
            Encap::Gue { .. } => ip + udp::HEADER_LEN + gue::HEADER_LEN,
        }
    }
}

/// The GUE source port for a flow: like the kernel's `udp_flow_src_port`, a flow hash mapped
/// onto the default local port range 32768..=60999 (`((h ^ h << 16) * 28232) >> 32) + 32768`),
/// so that ECMP and RSS at the real server spread flows. The hash is 32-bit FNV-1a over the
/// source address, destination address, source port, destination port (big-endian) and protocol
/// number: fixed, so every director sends a flow from the same port (the kernel's hash is
/// seeded per boot).
pub fn gue_source_port(flow: &Flow) -> u16 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u32::from(*b)).wrapping_mul(PRIME);
        }
    };
    for a in [flow.src, flow.dst] {
        match a {
            IpAddr::V4(a) => eat(&a.octets()),
            IpAddr::V6(a) => eat(&a.octets()),
        }
    }
    eat(&flow.src_port.to_be_bytes());
    eat(&flow.dst_port.to_be_bytes());
    eat(&[flow.proto.number()]);
    let h = h ^ (h << 16);
    let range = u64::from(gue::SPORT_MAX + 1 - gue::SPORT_MIN);
    (((u64::from(h) * range) >> 32) as u32 + gue::SPORT_MIN) as u16
}

/// The outer DS field from the inner one ([RFC 6040] / [RFC 3168 §9.1.1], the kernel's
/// `INET_ECN_encapsulate`): DSCP copied, ECN copied except that CE becomes ECT(0).
///
/// [RFC 6040]: https://www.rfc-editor.org/rfc/rfc6040
/// [RFC 3168 §9.1.1]: https://www.rfc-editor.org/rfc/rfc3168#section-9.1.1
#[inline]
pub(crate) const fn encapsulate_ds(inner: u8) -> u8 {
    const CE: u8 = 0b11;
    const ECT0: u8 = 0b10;
    let ecn = inner & 0b11;
    (inner & !0b11) | if ecn == CE { ECT0 } else { ecn }
}

/// TUN: encapsulates the packet's IP packet for `tunnel` and addresses the frame to `hop`.
///
/// The inner packet is forwarded as the kernel does (TTL / hop limit decremented, IPv4 checksum
/// updated incrementally). The outer header ([`docs/ipvs.md` §4.5]): IPv4 with IHL 5, DS
/// field from [`RFC 6040`]-style encapsulation (DSCP copied, ECN copied, inner CE → ECT(0)), DF
/// copied from an IPv4 inner packet and set for an IPv6 one, identification `tunnel.ident`, TTL
/// the inner one after the decrement, protocol 4 / 41 (17 for GUE); or IPv6 with the same
/// traffic class, flow label 0, hop limit as the TTL, next header 4 / 41 (17). The Ethernet header
/// is rebuilt (VLAN tags kept, outer ethertype). Ethernet padding after the inner packet is
/// dropped.
///
/// The frame's start moves back by [`Tunnel::overhead`] bytes ([`RewriteError::NoHeadroom`] if
/// the buffer has less; 8 more when an outer IPv6 packet must be fragmented).
///
/// MTU (`__ip_vs_get_out_rt` and `ensure_mtu_is_adequate`): the inner packet may be as large as
/// `hop.mtu - overhead` ([`RewriteError::TunnelMtuTooSmall`] below 68 for an outer IPv4, 1280
/// for an outer IPv6). Beyond it an IPv6 packet, or an IPv4 one with DF, gets
/// [`Verdict::TooBig`] with that MTU; an IPv4 one without DF is encapsulated and the outer packet
/// is fragmented (IPv4 fragments, or IPv6 fragment headers with identification `tunnel.ident`).
///
/// [`docs/ipvs.md` §4.5]: crate#tun
/// [`RFC 6040`]: https://www.rfc-editor.org/rfc/rfc6040
#[inline]
pub fn tun(
    frame: &mut FrameBuf<'_>,
    pkt: &Packet,
    hop: &NextHop,
    tunnel: &Tunnel,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    let outer = match (tunnel.src, tunnel.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Outer::V4(s.octets(), d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => Outer::V6(s.octets(), d.octets()),
        _ => return Err(RewriteError::FamilyMismatch),
    };
    let overhead = tunnel.overhead();
    let (l3, ip_len) = (pkt.l3(), pkt.ip_len());
    if pkt.ip_end() > frame.len() || !(eth::HEADER_LEN..=eth::MAX_HEADER_LEN).contains(&l3) {
        return Err(RewriteError::PacketMismatch);
    }
    let headroom = frame.headroom();
    // The inner IP header, reached once: what the outer header copies from it is read before
    // anything changes, and its TTL / hop limit is decremented through the same reference.
    let mut inner = InnerHeader::of(frame.frame_mut(), pkt)?;
    let (ttl, ds, inner_df, inner_proto) = inner.fields();
    // TTL first (`decrement_ttl` runs before the MTU checks).
    if ttl <= 1 {
        return Ok(Verdict::TimeExceeded);
    }
    let (outer_ip, min_mtu) = match outer {
        Outer::V4(..) => (ipv4::MIN_HEADER_LEN, 68),
        Outer::V6(..) => (ipv6::HEADER_LEN, usize::from(ipv6::MIN_MTU)),
    };
    let inner_mtu = usize::from(hop.mtu).saturating_sub(overhead);
    if inner_mtu < min_mtu {
        return Err(RewriteError::TunnelMtuTooSmall);
    }
    let fit = fit(pkt, ip_len, inner_mtu as u16);
    if let Fit::TooBig(mtu) = fit {
        inner.decrement_ttl();
        return Ok(Verdict::TooBig { mtu });
    }
    let outer_len = overhead + ip_len;
    let fragment = outer_len > usize::from(hop.mtu);
    let v6_fragment = fragment && matches!(outer, Outer::V6(..));
    if outer_len > usize::from(u16::MAX) {
        return Err(RewriteError::EncapTooLong);
    }
    if headroom < overhead + if v6_fragment { ipv6::FRAG_HEADER_LEN } else { 0 } {
        return Err(RewriteError::NoHeadroom);
    }

    inner.decrement_ttl();
    let ttl = ttl - 1;
    let ds = encapsulate_ds(ds);
    frame.push_front(overhead)?;
    let hdr_len = l3 + overhead;
    let f = frame.frame_mut();
    // Ethernet: new MACs, the old VLAN tags moved to the new start, the outer ethertype. The
    // tags are read before the outer header overwrites them (overhead ≥ 20 > 8 tag bytes).
    for i in eth::HEADER_LEN - 2..l3 - 2 {
        let tag_byte = f.get(overhead + i).copied().ok_or(RewriteError::PacketMismatch)?;
        if let Some(b) = f.get_mut(i) {
            *b = tag_byte;
        }
    }
    let ethertype = match outer {
        Outer::V4(..) => eth::IPV4,
        Outer::V6(..) => eth::IPV6,
    };
    *wire::get_mut::<2>(f, l3 - 2).ok_or(RewriteError::PacketMismatch)? = ethertype.to_be_bytes();
    set_macs(f, hop)?;
    let next = if let Encap::Gue { .. } = tunnel.encap { proto::UDP } else { inner_proto };
    match outer {
        Outer::V4(src, dst) => {
            let h: &mut [u8; ipv4::MIN_HEADER_LEN] = wire::get_mut(f, l3).ok_or(RewriteError::PacketMismatch)?;
            let frag = if inner_df { ipv4::FLAG_DF } else { 0 };
            let ttl_proto = u16::from_be_bytes([ttl, next]);
            let (src32, dst32) = (u32::from_be_bytes(src), u32::from_be_bytes(dst));
            wire::wr16(h, 0, 0x4500 | u16::from(ds));
            wire::wr16(h, ipv4::TOTAL_LEN, outer_len as u16);
            wire::wr16(h, ipv4::IDENT, tunnel.ident);
            wire::wr16(h, ipv4::FLAGS_FRAG, frag);
            wire::wr16(h, ipv4::TTL, ttl_proto);
            *wire::get_mut::<4>(h, ipv4::SRC).unwrap_or(&mut [0; 4]) = src;
            *wire::get_mut::<4>(h, ipv4::DST).unwrap_or(&mut [0; 4]) = dst;
            let c = checksum::Sum::new()
                .add_u16(0x4500 | u16::from(ds))
                .add_u16(outer_len as u16)
                .add_u16(tunnel.ident)
                .add_u16(frag)
                .add_u16(ttl_proto)
                .add_u32(src32)
                .add_u32(dst32)
                .checksum();
            wire::wr16(h, ipv4::CHECKSUM, c);
        }
        Outer::V6(src, dst) => {
            let h: &mut [u8; ipv6::HEADER_LEN] = wire::get_mut(f, l3).ok_or(RewriteError::PacketMismatch)?;
            *wire::get_mut::<4>(h, 0).unwrap_or(&mut [0; 4]) = [0x60 | (ds >> 4), ds << 4, 0, 0];
            wire::wr16(h, ipv6::PAYLOAD_LEN, (outer_len - ipv6::HEADER_LEN) as u16);
            wire::wr16(h, ipv6::NEXT_HEADER, u16::from_be_bytes([next, ttl]));
            *wire::get_mut::<16>(h, ipv6::SRC).unwrap_or(&mut [0; 16]) = src;
            *wire::get_mut::<16>(h, ipv6::DST).unwrap_or(&mut [0; 16]) = dst;
        }
    }
    if let Encap::Gue { port } = tunnel.encap {
        // UDP with checksum 0; GUE version 0, C 0, hlen 0, proto_ctype, flags 0.
        let g: &mut [u8; udp::HEADER_LEN + gue::HEADER_LEN] =
            wire::get_mut(f, l3 + outer_ip).ok_or(RewriteError::PacketMismatch)?;
        wire::wr16(g, udp::SRC_PORT, gue_source_port(&pkt.flow()));
        wire::wr16(g, udp::DST_PORT, port);
        wire::wr16(g, udp::LENGTH, (outer_len - outer_ip) as u16);
        wire::wr16(g, udp::CHECKSUM, 0);
        *wire::get_mut::<4>(g, udp::HEADER_LEN).unwrap_or(&mut [0; 4]) = [0, inner_proto, 0, 0];
    }
    frame.truncate(hdr_len + ip_len);
    if !fragment {
        return Ok(Verdict::Forward);
    }
    Ok(fragment_outer(frame, l3, hop.mtu, tunnel.ident, v6_fragment, frags))
}

/// The inner packet's IP header, as TUN reads and forwards it.
enum InnerHeader<'a> {
    V4(&'a mut [u8; ipv4::MIN_HEADER_LEN]),
    V6(&'a mut [u8; ipv6::HEADER_LEN]),
}

impl<'a> InnerHeader<'a> {
    /// The header of `pkt` in `f`, checked against the packet (`ip_header_mut`).
    #[inline(always)]
    fn of(f: &'a mut [u8], pkt: &Packet) -> Result<Self, RewriteError> {
        Ok(match pkt.version() {
            IpVersion::V4 => InnerHeader::V4(ip_header_mut(f, pkt)?),
            IpVersion::V6 => InnerHeader::V6(ip_header_mut(f, pkt)?),
        })
    }

    /// What the outer header copies: TTL / hop limit, DS field, DF (always for IPv6), and the
    /// outer protocol number for this inner family.
    #[inline(always)]
    fn fields(&self) -> (u8, u8, bool, u8) {
        match self {
            InnerHeader::V4(h) => {
                let df = wire::rd16(h, ipv4::FLAGS_FRAG) & ipv4::FLAG_DF != 0;
                (h[ipv4::TTL], h[ipv4::TOS], df, proto::IPIP)
            }
            InnerHeader::V6(h) => (h[ipv6::HOP_LIMIT], (h[0] << 4) | (h[1] >> 4), true, proto::IPV6),
        }
    }

    /// The forwarding TTL / hop-limit decrement (IPv4 checksum updated).
    #[inline(always)]
    fn decrement_ttl(&mut self) {
        match self {
            InnerHeader::V4(h) => ttl_down_v4_apply(h),
            InnerHeader::V6(h) => h[ipv6::HOP_LIMIT] = h[ipv6::HOP_LIMIT].wrapping_sub(1),
        }
    }
}

#[derive(Clone, Copy)]
enum Outer {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

#[cold]
fn fragment_outer(
    frame: &mut FrameBuf<'_>,
    l2: usize,
    mtu: u16,
    ident: u16,
    v6: bool,
    frags: &mut dyn FragmentSink,
) -> Verdict {
    let (buf, start) = frame.raw();
    let done = if v6 {
        frag::fragment_ipv6(buf, start, l2, mtu, u32::from(ident), frags)
    } else {
        frag::fragment_ipv4(buf, start, l2, mtu, frags)
    };
    // The outer header is ours and the MTU was checked against the tunnel minimum: not reached.
    Verdict::Fragmented { count: done.unwrap_or(0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_sched::Protocol;

    #[test]
    fn ecn_encapsulation() {
        assert_eq!(encapsulate_ds(0b1011_1000), 0b1011_1000); // EF, not-ECT
        assert_eq!(encapsulate_ds(0b0000_0001), 0b0000_0001); // ECT(1)
        assert_eq!(encapsulate_ds(0b0000_0010), 0b0000_0010); // ECT(0)
        assert_eq!(encapsulate_ds(0b1010_0011), 0b1010_0010); // AF41 + CE -> ECT(0)
    }

    #[test]
    fn gue_port_in_range_and_stable() {
        let f = Flow::v4(Protocol::Tcp, "192.0.2.1".parse().unwrap(), 40000, "198.51.100.1".parse().unwrap(), 80);
        let p = gue_source_port(&f);
        assert!((32768..=60999).contains(&p));
        assert_eq!(p, gue_source_port(&f));
        let mut seen = std::collections::HashSet::new();
        for sport in 0..2000u16 {
            let g = Flow { src_port: sport, ..f };
            let p = gue_source_port(&g);
            assert!((32768..=60999).contains(&p));
            seen.insert(p);
        }
        assert!(seen.len() > 1900, "ports spread: {}", seen.len());
    }
}
