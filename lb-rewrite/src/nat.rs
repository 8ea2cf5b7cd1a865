//! NAT (IPVS "masquerading", `reference/ipvs.md` §4.3, §4.6) and DR (§4.4), and the forwarding
//! steps every mode shares (§4.1, §4.2): next-hop MACs, TTL / hop limit, MTU.

use std::net::{IpAddr, SocketAddr};

use crate::checksum::{self, Update};
use crate::error::RewriteError;
use crate::frag;
use crate::frame::{FragmentSink, FrameBuf, NextHop, Verdict};
use crate::parse::{IpVersion, Packet};
use crate::wire::{self, get_mut, icmp, ipv4, ipv6, tcp, udp};
use lb_sched::Protocol;

/// How a packet relates to the egress MTU (`ensure_mtu_is_adequate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    Fits,
    /// IPv4 that may be fragmented: without DF, or an ICMP error (IPVS skips the DF check for
    /// those and the kernel then fragments them, `ignore_df`).
    Fragment,
    TooBig(u16),
}

#[inline(always)]
pub(crate) fn fit(pkt: &Packet, len: usize, mtu: u16) -> Fit {
    if len <= usize::from(mtu) {
        Fit::Fits
    } else if pkt.version() == IpVersion::V4 && (!pkt.df() || pkt.has_quote()) {
        Fit::Fragment
    } else {
        Fit::TooBig(mtu)
    }
}

/// The IP header of `pkt` in `f`, checked against the packet (bounds and version nibble).
#[inline(always)]
pub(crate) fn ip_header_mut<'a, const N: usize>(
    f: &'a mut [u8],
    pkt: &Packet,
) -> Result<&'a mut [u8; N], RewriteError> {
    let h: &mut [u8; N] = get_mut(f, pkt.l3()).ok_or(RewriteError::PacketMismatch)?;
    let want = match pkt.version() {
        IpVersion::V4 => 4,
        IpVersion::V6 => 6,
    };
    match h.first() {
        Some(b) if b >> 4 == want => Ok(h),
        _ => Err(RewriteError::PacketMismatch),
    }
}

/// Decrements an IPv4 TTL and returns the matching header-checksum update (not applied), in
/// native byte order (`wire::rd16ne`): apply it to the checksum read the same way.
#[inline(always)]
pub(crate) fn ttl_down_v4(h: &mut [u8; ipv4::MIN_HEADER_LEN]) -> Update {
    // The TTL is the high byte of the (TTL, protocol) word. Read and write the whole word: a
    // byte store followed by a word load of the same bytes stalls store forwarding.
    let old = wire::rd16ne(h, ipv4::TTL);
    let [ttl, protocol] = old.to_ne_bytes();
    let new = u16::from_ne_bytes([ttl.wrapping_sub(1), protocol]);
    wire::wr16ne(h, ipv4::TTL, new);
    Update::new().replace_u16(old, new)
}

/// Decrements an IPv4 TTL and updates the header checksum.
#[inline(always)]
pub(crate) fn ttl_down_v4_apply(h: &mut [u8; ipv4::MIN_HEADER_LEN]) {
    let up = ttl_down_v4(h);
    let c = up.apply(wire::rd16ne(h, ipv4::CHECKSUM));
    wire::wr16ne(h, ipv4::CHECKSUM, c);
}

#[inline(always)]
pub(crate) fn set_macs(f: &mut [u8], hop: &NextHop) -> Result<(), RewriteError> {
    let m: &mut [u8; 12] = get_mut(f, 0).ok_or(RewriteError::PacketMismatch)?;
    let (dst, src) = m.split_at_mut(6);
    dst.copy_from_slice(&hop.dst_mac.0);
    src.copy_from_slice(&hop.src_mac.0);
    Ok(())
}

#[cold]
fn fragment_in_place(frame: &mut FrameBuf<'_>, l2: usize, mtu: u16, frags: &mut dyn FragmentSink) -> Verdict {
    let (buf, start) = frame.raw();
    match frag::fragment_ipv4(buf, start, l2, mtu, frags) {
        Ok(count) => Verdict::Fragmented { count },
        // The header was checked by the caller and `mtu` too (`check_fragmentable`): not reached.
        Err(_) => Verdict::Fragmented { count: 0 },
    }
}

/// Refuses, before any change, an MTU that cannot carry the IPv4 header plus 8 bytes.
#[inline(always)]
fn check_fragmentable(fit: Fit, l4_minus_l3: usize, mtu: u16) -> Result<(), RewriteError> {
    if fit == Fit::Fragment && usize::from(mtu) < l4_minus_l3.min(ipv4::MAX_HEADER_LEN) + 8 {
        return Err(RewriteError::MtuTooSmall);
    }
    Ok(())
}

/// Refuses, before any change, a frame whose IPv4 header does not say what `pkt` says (header
/// and total length), or that ends before the packet does: fragmentation reads those fields
/// from the frame.
#[inline(always)]
fn check_header_matches(f: &[u8], pkt: &Packet) -> Result<(), RewriteError> {
    let h: &[u8; ipv4::MIN_HEADER_LEN] = wire::get(f, pkt.l3()).ok_or(RewriteError::PacketMismatch)?;
    let hl = usize::from(h[ipv4::VER_IHL] & 0x0F) * 4;
    let total = usize::from(wire::rd16(h, ipv4::TOTAL_LEN));
    if h[ipv4::VER_IHL] >> 4 != 4 || hl != pkt.l4() - pkt.l3() || total != pkt.ip_len() || pkt.ip_end() > f.len() {
        return Err(RewriteError::PacketMismatch);
    }
    Ok(())
}

/// The rewrite `over_mtu` runs before fragmenting.
#[derive(Clone, Copy)]
enum Mode {
    Dr,
    Nat(End, SocketAddr),
}

/// What the MTU check asks for, once the packet is known not to fit.
#[cold]
#[inline(never)]
///
/// It takes the packet by value: a `&Packet` reaching a function that is not inlined would keep
/// the caller's `Packet` in memory instead of registers, on the fast path too.
fn over_mtu(
    frame: &mut FrameBuf<'_>,
    pkt: Packet,
    hop: &NextHop,
    fit: Fit,
    mode: Mode,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    let pkt = &pkt;
    let rewrite = |f: &mut [u8]| match mode {
        Mode::Dr => dr_in_place(f, pkt, hop),
        Mode::Nat(end, to) => nat_in_place(f, pkt, hop, end, to),
    };
    match fit {
        Fit::TooBig(mtu) => {
            // The kernel decrements the TTL before the MTU check; the reply quotes the result.
            if !ttl_down(frame.frame_mut(), pkt)? {
                return Ok(Verdict::TimeExceeded);
            }
            Ok(Verdict::TooBig { mtu })
        }
        Fit::Fragment => {
            check_fragmentable(fit, pkt.l4() - pkt.l3(), hop.mtu)?;
            check_header_matches(frame.frame(), pkt)?;
            match rewrite(frame.frame_mut())? {
                Verdict::Forward => Ok(fragment_in_place(frame, pkt.l3(), hop.mtu, frags)),
                other => Ok(other),
            }
        }
        Fit::Fits => rewrite(frame.frame_mut()),
    }
}

/// DR (`ip_vs_dr_xmit`): only the next-hop MACs, the TTL / hop limit and the IPv4 header checksum
/// (updated incrementally) change. Addresses and ports stay: the real server owns the VIP.
///
/// Returns [`Verdict::TimeExceeded`] for TTL ≤ 1, [`Verdict::TooBig`] when the packet exceeds
/// `hop.mtu` and may not be fragmented, [`Verdict::Fragmented`] when it may.
#[inline]
pub fn dr(
    frame: &mut FrameBuf<'_>,
    pkt: &Packet,
    hop: &NextHop,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError> {
    let fit = fit(pkt, pkt.ip_len(), hop.mtu);
    if fit != Fit::Fits {
        return over_mtu(frame, *pkt, hop, fit, Mode::Dr, frags);
    }
    dr_in_place(frame.frame_mut(), pkt, hop)
}

#[inline(always)]
fn dr_in_place(f: &mut [u8], pkt: &Packet, hop: &NextHop) -> Result<Verdict, RewriteError> {
    if !ttl_down(f, pkt)? {
        return Ok(Verdict::TimeExceeded);
    }
    set_macs(f, hop)?;
    Ok(Verdict::Forward)
}

/// The forwarding path's TTL / hop-limit decrement (IPv4 header checksum updated
/// incrementally): `Ok(false)`, and nothing changed, when it was 1 or 0.
#[inline(always)]
fn ttl_down(f: &mut [u8], pkt: &Packet) -> Result<bool, RewriteError> {
    if pkt.ip_end() > f.len() {
        return Err(RewriteError::PacketMismatch);
    }
    match pkt.version() {
        IpVersion::V4 => {
            let h: &mut [u8; ipv4::MIN_HEADER_LEN] = ip_header_mut(f, pkt)?;
            if h[ipv4::TTL] <= 1 {
                return Ok(false);
            }
            ttl_down_v4_apply(h);
        }
        IpVersion::V6 => {
            let h: &mut [u8; ipv6::HEADER_LEN] = ip_header_mut(f, pkt)?;
            if h[ipv6::HOP_LIMIT] <= 1 {
                return Ok(false);
            }
            h[ipv6::HOP_LIMIT] -= 1;
        }
    }
    Ok(true)
}

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
/// [`RewriteError::IcmpErrorPacket`]: use [`nat_icmp_in`].
///
/// Verdicts as for [`dr`]; `to` must have the packet's IP family.
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
        return over_mtu(frame, *pkt, hop, fit, Mode::Nat(end, to), frags);
    }
    nat_in_place(frame.frame_mut(), pkt, hop, end, to)
}

#[inline(always)]
fn nat_in_place(f: &mut [u8], pkt: &Packet, hop: &NextHop, end: End, to: SocketAddr) -> Result<Verdict, RewriteError> {
    match to {
        SocketAddr::V4(to) => nat_v4(f, pkt, hop, end, u32::from(*to.ip()), to.port()),
        SocketAddr::V6(to) => nat_v6(f, pkt, hop, end, to.ip().octets(), to.port()),
    }
}

/// NAT's IPv4 header change: the address at `end`, the TTL and the header checksum, in one
/// update. Returns the address change, which the transport checksum takes too.
#[inline(always)]
fn ip_update_v4(h: &mut [u8; ipv4::MIN_HEADER_LEN], end: End, new: u32) -> Update {
    // `end.v4` is 12 or 16: the field is always there.
    // Native-order words throughout (see `wire::rd16ne`).
    let new = u32::from_ne_bytes(new.to_be_bytes());
    let mut old = new;
    if let Some(field) = get_mut::<4>(h, end.v4) {
        old = u32::from_ne_bytes(*field);
        *field = new.to_ne_bytes();
    }
    let addr_up = Update::new().replace_u32(old, new);
    let c = ttl_down_v4(h).then(addr_up).apply(wire::rd16ne(h, ipv4::CHECKSUM));
    wire::wr16ne(h, ipv4::CHECKSUM, c);
    addr_up
}

/// NAT's IPv6 header change: the hop limit and the address at `end`. Returns the address change
/// for the transport checksum.
#[inline(always)]
fn ip_update_v6(h: &mut [u8; ipv6::HEADER_LEN], end: End, new: &[u8; 16]) -> Update {
    h[ipv6::HOP_LIMIT] = h[ipv6::HOP_LIMIT].wrapping_sub(1);
    // `end.v6` is 8 or 24: the field is always there.
    let mut old = *new;
    if let Some(field) = get_mut::<16>(h, end.v6) {
        old = *field;
        *field = *new;
    }
    Update::new().replace_addr16_ne(&old, new)
}

/// The frame cut at the end of the IP packet, split at the transport header.
#[inline(always)]
fn split_l4<'a>(f: &'a mut [u8], pkt: &Packet) -> Result<(&'a mut [u8], &'a mut [u8]), RewriteError> {
    let f = f.get_mut(..pkt.ip_end()).ok_or(RewriteError::PacketMismatch)?;
    f.split_at_mut_checked(pkt.l4()).ok_or(RewriteError::PacketMismatch)
}

#[inline(always)]
fn nat_v4(f: &mut [u8], pkt: &Packet, hop: &NextHop, end: End, new: u32, port: u16) -> Result<Verdict, RewriteError> {
    let (head, l4) = split_l4(f, pkt)?;
    let h: &mut [u8; ipv4::MIN_HEADER_LEN] = ip_header_mut(head, pkt)?;
    if h[ipv4::TTL] <= 1 {
        return Ok(Verdict::TimeExceeded);
    }
    match pkt.protocol() {
        Protocol::Tcp => {
            let t: &mut [u8; tcp::HEADER_LEN] = get_mut(l4, 0).ok_or(RewriteError::PacketMismatch)?;
            let addr_up = ip_update_v4(h, end, new);
            let port = u16::from_ne_bytes(port.to_be_bytes());
            let old = wire::rd16ne(t, end.port);
            wire::wr16ne(t, end.port, port);
            let c = addr_up.replace_u16(old, port).apply(wire::rd16ne(t, tcp::CHECKSUM));
            wire::wr16ne(t, tcp::CHECKSUM, c);
        }
        Protocol::Udp => {
            let u: &mut [u8; udp::HEADER_LEN] = get_mut(l4, 0).ok_or(RewriteError::PacketMismatch)?;
            let addr_up = ip_update_v4(h, end, new);
            let port = u16::from_ne_bytes(port.to_be_bytes());
            let old = wire::rd16ne(u, end.port);
            wire::wr16ne(u, end.port, port);
            // 0x0000 and 0xFFFF read the same in either byte order.
            let check = wire::rd16ne(u, udp::CHECKSUM);
            if check != 0 {
                wire::wr16ne(u, udp::CHECKSUM, addr_up.replace_u16(old, port).apply_udp(check));
            } else if !pkt.is_first_fragment() {
                udp_full_checksum(head, pkt.version(), pkt.l3(), l4);
            }
        }
        // The ICMPv4 checksum covers the ICMP message only.
        Protocol::Icmp | Protocol::Icmpv6 => {
            ip_update_v4(h, end, new);
        }
    }
    set_macs(head, hop)?;
    Ok(Verdict::Forward)
}

#[inline(always)]
fn nat_v6(
    f: &mut [u8],
    pkt: &Packet,
    hop: &NextHop,
    end: End,
    new: [u8; 16],
    port: u16,
) -> Result<Verdict, RewriteError> {
    let (head, l4) = split_l4(f, pkt)?;
    let h: &mut [u8; ipv6::HEADER_LEN] = ip_header_mut(head, pkt)?;
    if h[ipv6::HOP_LIMIT] <= 1 {
        return Ok(Verdict::TimeExceeded);
    }
    match pkt.protocol() {
        Protocol::Tcp => {
            let t: &mut [u8; tcp::HEADER_LEN] = get_mut(l4, 0).ok_or(RewriteError::PacketMismatch)?;
            let addr_up = ip_update_v6(h, end, &new);
            let port = u16::from_ne_bytes(port.to_be_bytes());
            let old = wire::rd16ne(t, end.port);
            wire::wr16ne(t, end.port, port);
            let c = addr_up.replace_u16(old, port).apply(wire::rd16ne(t, tcp::CHECKSUM));
            wire::wr16ne(t, tcp::CHECKSUM, c);
        }
        Protocol::Udp => {
            let u: &mut [u8; udp::HEADER_LEN] = get_mut(l4, 0).ok_or(RewriteError::PacketMismatch)?;
            let addr_up = ip_update_v6(h, end, &new);
            let port = u16::from_ne_bytes(port.to_be_bytes());
            let old = wire::rd16ne(u, end.port);
            wire::wr16ne(u, end.port, port);
            // 0x0000 and 0xFFFF read the same in either byte order.
            let check = wire::rd16ne(u, udp::CHECKSUM);
            if check != 0 {
                wire::wr16ne(u, udp::CHECKSUM, addr_up.replace_u16(old, port).apply_udp(check));
            } else if !pkt.is_first_fragment() {
                udp_full_checksum(head, pkt.version(), pkt.l3(), l4);
            }
        }
        Protocol::Icmpv6 | Protocol::Icmp => {
            // The ICMPv6 checksum covers the pseudo-header.
            let i: &mut [u8; icmp::HEADER_LEN] = get_mut(l4, 0).ok_or(RewriteError::PacketMismatch)?;
            let addr_up = ip_update_v6(h, end, &new);
            let c = addr_up.apply(wire::rd16ne(i, icmp::CHECKSUM));
            wire::wr16ne(i, icmp::CHECKSUM, c);
        }
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
    let pseudo = match pseudo_header_at(head, version, l3, 17, u32::from(len)) {
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

/// NAT of an ICMP error from the client side about a reply of a connection (`ip_vs_nat_icmp`,
/// inout = 0): the outer destination (the VIP) and the quoted source address and port
/// (VIP:vport) become the real server's `rs`.
///
/// The outer and quoted IPv4 header checksums are updated incrementally; the ICMP checksum is
/// verified first ([`RewriteError::BadIcmpChecksum`], as IPVS drops those) and then fully
/// recomputed (ICMPv6 with the pseudo-header). The quoted transport checksum, when the quote
/// holds it, is updated for the new address and port by the same incremental rule (IPVS leaves
/// it stale, so a receiver that checks it, or tshark, would see a corrupt quote; the kernel's
/// own NAT updates it too). TTL and MTU as for [`dr`] (an IPv4 ICMP error is fragmented even with DF, as the
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
        IpVersion::V6 => pseudo_header(head, pkt, 58, msg.len() as u32).ok_or(RewriteError::PacketMismatch)?,
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
        IpVersion::V6 => pseudo_header(head, pkt, 58, msg.len() as u32).ok_or(RewriteError::PacketMismatch)?,
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
