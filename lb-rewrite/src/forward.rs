//! The forwarding steps every mode shares (`docs/ipvs.md` §4.1, §4.2): next-hop MACs,
//! TTL / hop limit, the MTU check and IPv4 fragmentation; and DR (§4.4), which is nothing else.

use crate::checksum::Update;
use crate::error::RewriteError;
use crate::frag;
use crate::frame::{FragmentSink, FrameBuf, NextHop, Verdict};
use crate::parse::{IpVersion, Packet};
use crate::wire::{self, get_mut, ipv4, ipv6};

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
pub(crate) fn fragment_in_place(
    frame: &mut FrameBuf<'_>,
    l2: usize,
    mtu: u16,
    frags: &mut dyn FragmentSink,
) -> Verdict {
    let (buf, start) = frame.raw();
    match frag::fragment_ipv4(buf, start, l2, mtu, frags) {
        Ok(count) => Verdict::Fragmented { count },
        // The header was checked by the caller and `mtu` too (`check_fragmentable`): not reached.
        Err(_) => Verdict::Fragmented { count: 0 },
    }
}

/// Refuses, before any change, an MTU that cannot carry the IPv4 header plus 8 bytes.
#[inline(always)]
pub(crate) fn check_fragmentable(fit: Fit, l4_minus_l3: usize, mtu: u16) -> Result<(), RewriteError> {
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

/// What the MTU check asks for, once the packet is known not to fit.
///
/// It takes the packet by value: a `&Packet` reaching a function that is not inlined would keep
/// the caller's `Packet` in memory instead of registers, on the fast path too.
///
/// `rewrite` is the mode's in-place rewrite (TTL, MACs, and for NAT addresses and ports), run
/// when the packet fits or is to be fragmented.
#[cold]
#[inline(never)]
pub(crate) fn over_mtu<R>(
    frame: &mut FrameBuf<'_>,
    pkt: Packet,
    hop: &NextHop,
    fit: Fit,
    rewrite: R,
    frags: &mut dyn FragmentSink,
) -> Result<Verdict, RewriteError>
where
    R: Fn(&mut [u8], &Packet, &NextHop) -> Result<Verdict, RewriteError>,
{
    let pkt = &pkt;
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
            match rewrite(frame.frame_mut(), pkt, hop)? {
                Verdict::Forward => Ok(fragment_in_place(frame, pkt.l3(), hop.mtu, frags)),
                other => Ok(other),
            }
        }
        Fit::Fits => rewrite(frame.frame_mut(), pkt, hop),
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
        return over_mtu(frame, *pkt, hop, fit, dr_in_place, frags);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;
    use crate::frame::MacAddr;
    use crate::parse::parse;
    use crate::testutil::{self, tcp};
    use crate::wire::proto;

    fn hop(mtu: u16) -> NextHop {
        NextHop { src_mac: MacAddr([2, 0, 0, 0, 0, 0xa]), dst_mac: MacAddr([2, 0, 0, 0, 0, 0xb]), mtu }
    }

    #[test]
    fn fit_by_family_and_df() {
        let df = parse(&testutil::v4(proto::TCP, 64, true, &tcp())).unwrap();
        let no_df = parse(&testutil::v4(proto::TCP, 64, false, &tcp())).unwrap();
        let v6 = parse(&testutil::v6(proto::TCP, 64, &tcp())).unwrap();
        assert_eq!(fit(&df, 40, 40), Fit::Fits);
        assert_eq!(fit(&df, 41, 40), Fit::TooBig(40));
        assert_eq!(fit(&no_df, 41, 40), Fit::Fragment);
        assert_eq!(fit(&v6, 1281, 1280), Fit::TooBig(1280));
        assert_eq!(fit(&v6, 1280, 1280), Fit::Fits);
    }

    #[test]
    fn ttl_decrement_updates_the_checksum() {
        let mut f = testutil::v4(proto::TCP, 64, true, &tcp());
        let h: &mut [u8; ipv4::MIN_HEADER_LEN] = get_mut(&mut f, 14).unwrap();
        ttl_down_v4_apply(h);
        assert_eq!(h[ipv4::TTL], 63);
        assert_eq!(h[ipv4::PROTOCOL], proto::TCP);
        assert!(checksum::verify(&h[..]));
    }

    #[test]
    fn ttl_down_refuses_one_and_leaves_the_frame() {
        for mut f in [testutil::v4(proto::TCP, 1, true, &tcp()), testutil::v6(proto::TCP, 1, &tcp())] {
            let pkt = parse(&f).unwrap();
            let before = f.clone();
            assert_eq!(ttl_down(&mut f, &pkt), Ok(false));
            assert_eq!(f, before);
        }
        let mut f = testutil::v6(proto::TCP, 2, &tcp());
        let pkt = parse(&f).unwrap();
        assert_eq!(ttl_down(&mut f, &pkt), Ok(true));
        assert_eq!(f[14 + ipv6::HOP_LIMIT], 1);
        let mut short = f[..60].to_vec();
        assert_eq!(ttl_down(&mut short, &pkt), Err(RewriteError::PacketMismatch));
    }

    #[test]
    fn ip_header_must_have_the_packets_version() {
        let v4 = testutil::v4(proto::TCP, 64, true, &tcp());
        let mut v6 = testutil::v6(proto::TCP, 64, &tcp());
        let pkt = parse(&v4).unwrap();
        assert_eq!(ip_header_mut::<20>(&mut v6, &pkt).err(), Some(RewriteError::PacketMismatch));
        assert_eq!(ip_header_mut::<20>(&mut v6[..30], &pkt).err(), Some(RewriteError::PacketMismatch));
        let mut v4 = v4;
        assert!(ip_header_mut::<20>(&mut v4, &pkt).is_ok());
    }

    #[test]
    fn macs_and_frames_too_short_for_them() {
        let mut f = [0u8; 14];
        set_macs(&mut f, &hop(1500)).unwrap();
        assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa]);
        assert_eq!(set_macs(&mut [0u8; 11], &hop(1500)), Err(RewriteError::PacketMismatch));
    }

    #[test]
    fn fragmentation_needs_room_for_the_header_and_eight_bytes() {
        assert_eq!(check_fragmentable(Fit::Fragment, 20, 27), Err(RewriteError::MtuTooSmall));
        assert_eq!(check_fragmentable(Fit::Fragment, 20, 28), Ok(()));
        // Options beyond the maximum header length are not counted.
        assert_eq!(check_fragmentable(Fit::Fragment, 80, 68), Ok(()));
        assert_eq!(check_fragmentable(Fit::TooBig(10), 20, 10), Ok(()));
    }

    #[test]
    fn header_must_match_the_packet_before_fragmenting() {
        let f = testutil::v4(proto::TCP, 64, false, &tcp());
        let pkt = parse(&f).unwrap();
        assert_eq!(check_header_matches(&f, &pkt), Ok(()));
        let mut other = f.clone();
        other[14 + ipv4::TOTAL_LEN + 1] += 1;
        assert_eq!(check_header_matches(&other, &pkt), Err(RewriteError::PacketMismatch));
        assert_eq!(check_header_matches(&f[..50], &pkt), Err(RewriteError::PacketMismatch));
    }

    #[test]
    fn over_mtu_too_big_decrements_and_reports() {
        let mut f = testutil::v4(proto::TCP, 64, true, &tcp());
        let pkt = parse(&f).unwrap();
        let mut buf = FrameBuf::whole(&mut f);
        let mut sink = crate::DiscardFragments::default();
        let v = over_mtu(&mut buf, pkt, &hop(40), Fit::TooBig(40), dr_in_place, &mut sink);
        assert_eq!(v, Ok(Verdict::TooBig { mtu: 40 }));
        assert_eq!(buf.frame()[14 + ipv4::TTL], 63);
        // The MACs are not the next hop's: the frame is not sent.
        assert_eq!(&buf.frame()[..6], &[2, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn over_mtu_fragments_after_the_rewrite() {
        let mut f = testutil::v4(proto::TCP, 64, false, &[tcp().as_slice(), &[7; 40]].concat());
        let pkt = parse(&f).unwrap();
        let mut buf = FrameBuf::whole(&mut f);
        let mut sink = crate::DiscardFragments::default();
        let v = over_mtu(&mut buf, pkt, &hop(44), Fit::Fragment, dr_in_place, &mut sink);
        // 60 bytes of payload in pieces of 24: 3 fragments.
        assert_eq!(v, Ok(Verdict::Fragmented { count: 3 }));
        assert_eq!(sink.0, 3);
    }
}
