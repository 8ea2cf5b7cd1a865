//! NAT of ICMP errors about a connection (IPVS `ip_vs_nat_icmp`, `docs/ipvs.md` §4.6): the
//! outer header and the quoted packet, with the ICMP checksum verified and recomputed.

use std::net::{IpAddr, SocketAddr};

use crate::checksum::{self, Update};
use crate::error::RewriteError;
use crate::forward::{check_fragmentable, fit, fragment_in_place, ip_header_mut, set_macs, ttl_down_v4, Fit};
use crate::frame::{FragmentSink, FrameBuf, NextHop, Verdict};
use crate::nat::pseudo_header;
use crate::parse::{IpVersion, Packet};
use crate::wire::{self, get_mut, icmp, ipv4, ipv6, proto, tcp, udp};

/// NAT of an ICMP error from the client side about a reply of a connection (`ip_vs_nat_icmp`,
/// inout = 0): the outer destination (the VIP) and the quoted source address and port
/// (VIP:vport) become the real server's `rs`.
///
/// The outer and quoted IPv4 header checksums are updated incrementally; the ICMP checksum is
/// verified first ([`RewriteError::BadIcmpChecksum`], as IPVS drops those) and then fully
/// recomputed (ICMPv6 with the pseudo-header). The quoted transport checksum, when the quote
/// holds it, is updated for the new address and port by the same incremental rule (IPVS leaves
/// it stale, so a receiver that checks it, or tshark, would see a corrupt quote; the kernel's
/// own NAT updates it too). TTL and MTU as for [`dr`](crate::dr) (an IPv4 ICMP error is fragmented even with DF, as the
/// kernel does; an IPv6 one that is too big gets [`Verdict::TooBig`], to which no reply may be
/// sent).
pub fn nat_icmp_in(
    frame: &mut FrameBuf<'_>,
    pkt: &Packet,
    hop: &NextHop,
    rs: SocketAddr,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    nat_icmp(frame, pkt, hop, Side::Dst, rs, frags)
}

/// NAT of an ICMP error from the real-server side about a request of a connection
/// (`ip_vs_nat_icmp`, inout = 1): the outer source (the real server or a router near it), the
/// quoted destination address and port (RS:port) become the virtual service's `vs`. Checksums and
/// verdicts as for [`nat_icmp_in`].
pub fn nat_icmp_out(
    frame: &mut FrameBuf<'_>,
    pkt: &Packet,
    hop: &NextHop,
    vs: SocketAddr,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    nat_icmp(frame, pkt, hop, Side::Src, vs, frags)
}

/// Which address of the outer header an ICMP error NAT changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

/// `outer` is the end of the outer header that changes; the quoted packet changes at the other
/// end (the quote travels the opposite way).
fn nat_icmp(
    frame: &mut FrameBuf<'_>,
    pkt: &Packet,
    hop: &NextHop,
    outer: Side,
    to: SocketAddr,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    let quote = pkt.quote(frame.frame()).ok_or(RewriteError::NotIcmpError)?;
    if IpVersion::of(&to.ip()) != pkt.version() {
        return Err(RewriteError::FamilyMismatch);
    }
    let fit = fit(pkt, pkt.ip_len(), hop.mtu);
    check_fragmentable(fit, pkt.l4() - pkt.l3(), hop.mtu)?;
    let f = frame.frame_mut();
    let (l3, l4_at, end) = (pkt.l3(), pkt.l4(), pkt.ip_end());
    let quote_ip_min = match pkt.version() {
        IpVersion::V4 => ipv4::MIN_HEADER_LEN,
        IpVersion::V6 => ipv6::HEADER_LEN,
    };
    if end > f.len()
        || !(l3 < l4_at && l4_at < quote.l3() && quote.l3() + quote_ip_min <= quote.l4() && quote.l4() + 8 <= end)
    {
        return Err(RewriteError::PacketMismatch);
    }
    // Verify the ICMP checksum before anything changes. A fragmented error cannot be verified
    // (the checksum covers bytes that are not here), even if this fragment happens to sum right.
    let (head, rest) = f.split_at_mut(l4_at);
    let msg = rest.get_mut(..end - l4_at).unwrap_or(&mut []);
    let icmp_sum = match pkt.version() {
        IpVersion::V4 => checksum::Sum::new(),
        IpVersion::V6 => {
            pseudo_header(head, pkt, proto::ICMPV6, msg.len() as u32).ok_or(RewriteError::PacketMismatch)?
        }
    };
    if pkt.is_first_fragment() || icmp_sum.add_bytes(msg).fold() != 0xFFFF {
        return Err(RewriteError::BadIcmpChecksum);
    }
    let q_l3 = quote.l3() - l4_at;
    let q_l4 = quote.l4() - l4_at;
    let (quote_addr_at, quote_port_at) = match outer {
        // Outer destination changes: the quote's source.
        Side::Dst => (0, tcp::SRC_PORT),
        Side::Src => (1, tcp::DST_PORT),
    };
    // What the quoted transport checksum covers and is about to change: the quoted address
    // (pseudo-header) and port, as they are now.
    let q_addr_off = match (pkt.version(), quote_addr_at) {
        (IpVersion::V4, 0) => ipv4::SRC,
        (IpVersion::V4, _) => ipv4::DST,
        (IpVersion::V6, 0) => ipv6::SRC,
        (IpVersion::V6, _) => ipv6::DST,
    };
    let q_addr_len = if pkt.version() == IpVersion::V4 { 4 } else { 16 };
    let mut old_q_addr = [0u8; 16];
    old_q_addr[..q_addr_len].copy_from_slice(
        msg.get(q_l3 + q_addr_off..q_l3 + q_addr_off + q_addr_len).ok_or(RewriteError::PacketMismatch)?,
    );
    let old_q_port =
        msg.get(q_l4 + quote_port_at..q_l4 + quote_port_at + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));

    match (pkt.version(), to.ip()) {
        (IpVersion::V4, IpAddr::V4(new)) => {
            let h: &mut [u8; ipv4::MIN_HEADER_LEN] = ip_header_mut(head, pkt)?;
            if h[ipv4::TTL] <= 1 {
                return Ok(Verdict::TimeExceeded);
            }
            // An IPv4 ICMP error always fits (`Fit::Fragment` at worst).
            let at = if outer == Side::Dst { ipv4::DST } else { ipv4::SRC };
            let field: &mut [u8; 4] = get_mut(h, at).ok_or(RewriteError::PacketMismatch)?;
            let old = u32::from_ne_bytes(*field);
            *field = new.octets();
            let up = ttl_down_v4(h).replace_u32(old, u32::from_ne_bytes(new.octets()));
            let c = up.apply(wire::rd16ne(h, ipv4::CHECKSUM));
            wire::wr16ne(h, ipv4::CHECKSUM, c);

            let qh: &mut [u8; ipv4::MIN_HEADER_LEN] = get_mut(msg, q_l3).ok_or(RewriteError::PacketMismatch)?;
            let at = if quote_addr_at == 0 { ipv4::SRC } else { ipv4::DST };
            let field: &mut [u8; 4] = get_mut(qh, at).ok_or(RewriteError::PacketMismatch)?;
            let old = u32::from_be_bytes(*field);
            *field = new.octets();
            let c = Update::new().replace_u32(old, u32::from(new)).apply(wire::rd16(qh, ipv4::CHECKSUM));
            wire::wr16(qh, ipv4::CHECKSUM, c);
        }
        (IpVersion::V6, IpAddr::V6(new)) => {
            let h: &mut [u8; ipv6::HEADER_LEN] = ip_header_mut(head, pkt)?;
            if h[ipv6::HOP_LIMIT] <= 1 {
                return Ok(Verdict::TimeExceeded);
            }
            h[ipv6::HOP_LIMIT] -= 1;
            if let Fit::TooBig(mtu) = fit {
                return Ok(Verdict::TooBig { mtu });
            }
            let at = if outer == Side::Dst { ipv6::DST } else { ipv6::SRC };
            *get_mut::<16>(h, at).ok_or(RewriteError::PacketMismatch)? = new.octets();
            let qh: &mut [u8; ipv6::HEADER_LEN] = get_mut(msg, q_l3).ok_or(RewriteError::PacketMismatch)?;
            let at = if quote_addr_at == 0 { ipv6::SRC } else { ipv6::DST };
            *get_mut::<16>(qh, at).ok_or(RewriteError::PacketMismatch)? = new.octets();
        }
        _ => return Err(RewriteError::FamilyMismatch),
    }
    if quote.flow().proto.has_ports() {
        if let Some(t) = get_mut::<8>(msg, q_l4) {
            wire::wr16(t, quote_port_at, to.port());
        }
        // The quoted transport checksum follows its address and port when the quote holds it
        // (IPVS leaves it stale; the kernel's own NAT updates it), by the same incremental rule:
        // a checksum that was right stays right, a wrong one stays exactly as wrong. A UDP
        // checksum of zero ("none") stays zero.
        let udp = quote.flow().proto == lb_sched::Protocol::Udp;
        let at = q_l4 + if udp { udp::CHECKSUM } else { tcp::CHECKSUM };
        if let Some(c) = msg.get_mut(at..at + 2) {
            let old = u16::from_be_bytes([c[0], c[1]]);
            if !(udp && old == 0) {
                let new_addr: [u8; 16] = match to.ip() {
                    IpAddr::V4(a) => {
                        let mut b = [0u8; 16];
                        b[..4].copy_from_slice(&a.octets());
                        b
                    }
                    IpAddr::V6(a) => a.octets(),
                };
                let up = Update::new()
                    .replace_bytes(&old_q_addr[..q_addr_len], &new_addr[..q_addr_len])
                    .replace_u16(old_q_port, to.port());
                let new = if udp { up.apply_udp(old) } else { up.apply(old) };
                c.copy_from_slice(&new.to_be_bytes());
            }
        }
    }
    // The ICMP checksum, recomputed over the whole message.
    if let Some(i) = get_mut::<{ icmp::HEADER_LEN }>(msg, 0) {
        wire::wr16(i, icmp::CHECKSUM, 0);
    }
    let sum = match pkt.version() {
        IpVersion::V4 => checksum::Sum::new(),
        IpVersion::V6 => {
            pseudo_header(head, pkt, proto::ICMPV6, msg.len() as u32).ok_or(RewriteError::PacketMismatch)?
        }
    };
    let c = sum.add_bytes(msg).checksum();
    if let Some(i) = get_mut::<{ icmp::HEADER_LEN }>(msg, 0) {
        wire::wr16(i, icmp::CHECKSUM, c);
    }
    set_macs(f, hop)?;
    Ok(match fit {
        Fit::Fragment => fragment_in_place(frame, pkt.l3(), hop.mtu, frags),
        Fit::Fits | Fit::TooBig(_) => Verdict::Forward,
    })
}
