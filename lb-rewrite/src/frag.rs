//! Fragmentation of a rewritten packet that exceeds the MTU, in place and without allocation.
//!
//! Fragment `k` is assembled directly in front of its own data: its L2 and IP headers are written
//! over the tail of fragment `k - 1`, which has already gone to the sink. Only the headers are
//! kept aside, in stack arrays.

use crate::checksum::Update;
use crate::error::RewriteError;
use crate::frame::FragmentSink;
use crate::wire::{self, eth, get, ipv4, ipv6};

/// Copies `len` bytes at `from` into a stack array (the header templates).
fn template<const N: usize>(buf: &[u8], from: usize, len: usize) -> Result<[u8; N], RewriteError> {
    let mut t = [0u8; N];
    let src = buf.get(from..from.checked_add(len).ok_or(RewriteError::PacketMismatch)?);
    match (t.get_mut(..len), src) {
        (Some(dst), Some(src)) => dst.copy_from_slice(src),
        _ => return Err(RewriteError::PacketMismatch),
    }
    Ok(t)
}

/// Writes `src` into `buf` at `at`, if it fits (callers have checked that it does).
#[inline]
fn put(buf: &mut [u8], at: usize, src: &[u8]) {
    if let Some(dst) = at.checked_add(src.len()).and_then(|end| buf.get_mut(at..end)) {
        dst.copy_from_slice(src);
    }
}

/// Replaces every option whose copy flag is clear with NOPs, keeping the header length, as Linux
/// does for the fragments after the first (`ip_options_fragment`; RFC 791 §3.2 lets a
/// fragmenter drop those options, and NOP-filling keeps every fragment's header the same size).
fn options_for_later_fragments(opts: &mut [u8]) {
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            ipv4::OPT_EOL => return,
            ipv4::OPT_NOP => i += 1,
            _ => {
                let Some(&len) = opts.get(i + 1) else { return };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    return;
                }
                if kind & ipv4::OPT_COPIED == 0 {
                    if let Some(o) = opts.get_mut(i..i + len) {
                        o.fill(ipv4::OPT_NOP);
                    }
                }
                i += len;
            }
        }
    }
}

/// Fragments the IPv4 packet of the frame at `buf[start..]` (L2 header `l2` bytes long) for
/// `mtu` ([RFC 791 §3.2]): data in multiples of 8 bytes, offsets in 8-byte units, MF on all but
/// the last (and on the last too if the packet was itself a first fragment), DF kept as the
/// kernel keeps it, options without the copy flag replaced by NOPs after the first fragment. Each
/// header checksum is updated incrementally from the packet's, so a wrong one stays exactly as
/// wrong. Returns the number of fragments.
///
/// [RFC 791 §3.2]: https://www.rfc-editor.org/rfc/rfc791#section-3.2
pub(crate) fn fragment_ipv4(
    buf: &mut [u8],
    start: usize,
    l2: usize,
    mtu: u16,
    sink: &mut dyn FragmentSink,
) -> Result<u16, RewriteError> {
    if l2 > eth::MAX_HEADER_LEN {
        return Err(RewriteError::PacketMismatch);
    }
    let ip_at = start + l2;
    let fixed: &[u8; ipv4::MIN_HEADER_LEN] = get(buf, ip_at).ok_or(RewriteError::PacketMismatch)?;
    let hl = usize::from(fixed[ipv4::VER_IHL] & 0x0F) * 4;
    let total = usize::from(wire::rd16(fixed, ipv4::TOTAL_LEN));
    if hl < ipv4::MIN_HEADER_LEN || total < hl || ip_at + total > buf.len() {
        return Err(RewriteError::PacketMismatch);
    }
    let mtu = usize::from(mtu);
    if mtu < hl + 8 {
        return Err(RewriteError::MtuTooSmall);
    }
    let chunk = (mtu - hl) & !7;
    let l2_tpl: [u8; eth::MAX_HEADER_LEN] = template(buf, start, l2)?;
    let first: [u8; ipv4::MAX_HEADER_LEN] = template(buf, ip_at, hl)?;
    let mut later = first;
    options_for_later_fragments(later.get_mut(ipv4::MIN_HEADER_LEN..hl).unwrap_or(&mut []));

    let orig_frag = wire::rd16(&first, ipv4::FLAGS_FRAG);
    let keep_df = orig_frag & ipv4::FLAG_DF;
    let last_mf = orig_frag & ipv4::FLAG_MF;
    let base = orig_frag & ipv4::OFFSET_MASK;
    let orig_check = wire::rd16(&first, ipv4::CHECKSUM);
    let payload = total - hl;

    let mut off = 0usize;
    let mut count = 0u16;
    while off < payload {
        let n = chunk.min(payload - off);
        let last = off + n == payload;
        let mut h = if off == 0 { first } else { later };
        let mf = if last { last_mf } else { ipv4::FLAG_MF };
        wire::wr16(&mut h, ipv4::TOTAL_LEN, (hl + n) as u16);
        wire::wr16(&mut h, ipv4::FLAGS_FRAG, keep_df | mf | (base + (off / 8) as u16));
        let check = Update::new().replace_bytes(&first[..hl], &h[..hl]).apply(orig_check);
        wire::wr16(&mut h, ipv4::CHECKSUM, check);

        let data_at = ip_at + hl + off;
        let frag_at = start + off; // = data_at - hl - l2
        put(buf, frag_at, &l2_tpl[..l2]);
        put(buf, frag_at + l2, &h[..hl]);
        sink.fragment(buf.get(frag_at..data_at + n).unwrap_or(&[]));
        off += n;
        count += 1;
    }
    Ok(count)
}

/// Fragments the IPv6 packet of the frame at `buf[start..]` (L2 header `l2` bytes, then a bare
/// 40-byte IPv6 header, as the tunnel code builds it) for `mtu` ([RFC 8200 §4.5]): a fragment
/// header with identification `ident` is inserted, so the first fragment starts 8 bytes before
/// `start` (the caller has checked the headroom). Returns the number of fragments.
///
/// [RFC 8200 §4.5]: https://www.rfc-editor.org/rfc/rfc8200#section-4.5
pub(crate) fn fragment_ipv6(
    buf: &mut [u8],
    start: usize,
    l2: usize,
    mtu: u16,
    ident: u32,
    sink: &mut dyn FragmentSink,
) -> Result<u16, RewriteError> {
    const FH: usize = ipv6::FRAG_HEADER_LEN;
    if l2 > eth::MAX_HEADER_LEN || start < FH {
        return Err(RewriteError::PacketMismatch);
    }
    let ip_at = start + l2;
    let mut hdr: [u8; ipv6::HEADER_LEN] = template(buf, ip_at, ipv6::HEADER_LEN)?;
    let payload = usize::from(wire::rd16(&hdr, ipv6::PAYLOAD_LEN));
    let payload_at = ip_at + ipv6::HEADER_LEN;
    if payload_at + payload > buf.len() {
        return Err(RewriteError::PacketMismatch);
    }
    let mtu = usize::from(mtu);
    if mtu < ipv6::HEADER_LEN + FH + 8 {
        return Err(RewriteError::MtuTooSmall);
    }
    let chunk = (mtu - ipv6::HEADER_LEN - FH) & !7;
    let l2_tpl: [u8; eth::MAX_HEADER_LEN] = template(buf, start, l2)?;
    let next = hdr[ipv6::NEXT_HEADER];
    hdr[ipv6::NEXT_HEADER] = ipv6::NH_FRAGMENT;

    let mut off = 0usize;
    let mut count = 0u16;
    while off < payload {
        let n = chunk.min(payload - off);
        let more = u16::from(off + n < payload);
        wire::wr16(&mut hdr, ipv6::PAYLOAD_LEN, (FH + n) as u16);
        let mut fh = [next, 0, 0, 0, 0, 0, 0, 0];
        wire::wr16(&mut fh, 2, (off as u16) | more);
        fh[4..8].copy_from_slice(&ident.to_be_bytes());

        let data_at = payload_at + off;
        let frag_at = data_at - FH - ipv6::HEADER_LEN - l2; // start - 8 + off
        put(buf, frag_at, &l2_tpl[..l2]);
        put(buf, frag_at + l2, &hdr);
        put(buf, frag_at + l2 + ipv6::HEADER_LEN, &fh);
        sink.fragment(buf.get(frag_at..data_at + n).unwrap_or(&[]));
        off += n;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_fragments_keep_only_copied_options() {
        // NOP, record route (7, not copied, len 7), security (130, copied, len 4), EOL.
        let mut o = [1, 7, 7, 4, 0, 0, 0, 0, 130, 4, 0xAA, 0xBB, 0, 0, 0, 0];
        options_for_later_fragments(&mut o);
        assert_eq!(o, [1, 1, 1, 1, 1, 1, 1, 1, 130, 4, 0xAA, 0xBB, 0, 0, 0, 0]);
        // A malformed length stops the walk without touching anything further.
        let mut bad = [7, 1, 7, 7];
        options_for_later_fragments(&mut bad);
        assert_eq!(bad, [7, 1, 7, 7]);
        let mut over = [7, 9, 0, 0];
        options_for_later_fragments(&mut over);
        assert_eq!(over, [7, 9, 0, 0]);
    }
}
