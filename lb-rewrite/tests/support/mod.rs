//! Shared test helpers: a frame builder for generated packets and the etherparse checksum oracle.
#![allow(dead_code)]

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lb_rewrite::checksum::difference;

/// One checksum of a frame: what is stored and what a full recomputation (by etherparse) gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub stored: u16,
    pub computed: u16,
}

impl Check {
    /// The one's-complement error of the stored value (0 when right; both zeros alike).
    pub fn error(&self) -> u16 {
        difference(self.stored, self.computed)
    }
}

/// The checksums of a frame, as etherparse sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    /// The (outer) IPv4 header checksum.
    pub ip: Option<Check>,
    /// TCP, UDP, ICMP or ICMPv6 (`None` for payloads that are none of those, such as tunnels).
    /// For a zero UDP checksum, `stored` is 0 and `udp_none` is set.
    pub l4: Option<Check>,
    /// The frame had a UDP checksum of zero.
    pub udp_none: bool,
}

/// Parses `frame` with etherparse and recomputes every checksum it holds.
pub fn checks(frame: &[u8]) -> Result<Checks, String> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| format!("etherparse: {e}"))?;
    let mut out = Checks::default();
    let (src, dst): (Vec<u8>, Vec<u8>) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            out.ip = Some(Check { stored: h.header_checksum(), computed: h.to_header().calc_header_checksum() });
            (h.source().to_vec(), h.destination().to_vec())
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (h.source().to_vec(), h.destination().to_vec())
        }
        _ => return Err("not IP".into()),
    };
    let v4 = src.len() == 4;
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let computed = if v4 {
                t.calc_checksum_ipv4(src[..].try_into().unwrap(), dst[..].try_into().unwrap())
            } else {
                t.calc_checksum_ipv6(src[..].try_into().unwrap(), dst[..].try_into().unwrap())
            }
            .map_err(|e| e.to_string())?;
            out.l4 = Some(Check { stored: t.checksum(), computed });
        }
        Some(TransportSlice::Udp(u)) => {
            let h = u.to_header();
            if u.checksum() == 0 {
                out.udp_none = true;
            }
            let computed = if v4 {
                h.calc_checksum_ipv4_raw(src[..].try_into().unwrap(), dst[..].try_into().unwrap(), u.payload())
            } else {
                h.calc_checksum_ipv6_raw(src[..].try_into().unwrap(), dst[..].try_into().unwrap(), u.payload())
            }
            .map_err(|e| e.to_string())?;
            out.l4 = Some(Check { stored: u.checksum(), computed });
        }
        Some(TransportSlice::Icmpv4(i)) => {
            out.l4 = Some(Check { stored: i.checksum(), computed: i.icmp_type().calc_checksum(i.payload()) });
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let computed = i
                .icmp_type()
                .calc_checksum(src[..].try_into().unwrap(), dst[..].try_into().unwrap(), i.payload())
                .map_err(|e| e.to_string())?;
            out.l4 = Some(Check { stored: i.checksum(), computed });
        }
        _ => {}
    }
    Ok(out)
}

/// One's-complement addition (for making a checksum wrong by a known amount).
pub fn ocadd(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xFFFF) + (s >> 16)) as u16
}

#[derive(Clone, Debug)]
pub enum IpSpec {
    V4 { src: [u8; 4], dst: [u8; 4], ttl: u8, tos: u8, df: bool, id: u16, options: Vec<u8> },
    V6 { src: [u8; 16], dst: [u8; 16], hlim: u8, tc: u8, flow: u32, exts: Vec<(u8, u8)> },
}

#[derive(Clone, Debug)]
pub enum L4Spec {
    Tcp { sport: u16, dport: u16, flags: u8, opt_words: u8 },
    Udp { sport: u16, dport: u16, zero: bool },
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub tags: Vec<u16>,
    pub ip: IpSpec,
    pub l4: L4Spec,
    pub payload: Vec<u8>,
    pub padding: usize,
    /// Amounts by which the IPv4 header and transport checksums are made wrong (0: right).
    pub ip_err: u16,
    pub l4_err: u16,
}

/// A built frame and where its layers are.
#[derive(Clone, Debug)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub l3: usize,
    pub l4: usize,
    pub end: usize,
}

pub const IN_SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0c];
pub const IN_DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0d];

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// Builds the frame of `spec`, with checksums computed by etherparse and then made wrong by
/// `ip_err` / `l4_err`.
pub fn build(spec: &Spec) -> Built {
    let mut b = Vec::new();
    b.extend_from_slice(&IN_DST_MAC);
    b.extend_from_slice(&IN_SRC_MAC);
    for (i, tpid) in spec.tags.iter().enumerate() {
        put16(&mut b, *tpid);
        put16(&mut b, 0x2000 | (i as u16 + 10)); // PCP 1, VID
    }
    let (ethertype, proto_v6) = match &spec.ip {
        IpSpec::V4 { .. } => (0x0800u16, false),
        IpSpec::V6 { .. } => (0x86DD, true),
    };
    put16(&mut b, ethertype);
    let l3 = b.len();
    let l4_proto = match spec.l4 {
        L4Spec::Tcp { .. } => 6u8,
        L4Spec::Udp { .. } => 17,
    };
    let l4_len = match &spec.l4 {
        L4Spec::Tcp { opt_words, .. } => 20 + 4 * usize::from(*opt_words),
        L4Spec::Udp { .. } => 8,
    } + spec.payload.len();
    match &spec.ip {
        IpSpec::V4 { src, dst, ttl, tos, df, id, options } => {
            assert!(options.len() % 4 == 0 && options.len() <= 40);
            let hl = 20 + options.len();
            b.push(0x40 | (hl / 4) as u8);
            b.push(*tos);
            put16(&mut b, (hl + l4_len) as u16);
            put16(&mut b, *id);
            put16(&mut b, if *df { 0x4000 } else { 0 });
            b.push(*ttl);
            b.push(l4_proto);
            put16(&mut b, 0);
            b.extend_from_slice(src);
            b.extend_from_slice(dst);
            b.extend_from_slice(options);
        }
        IpSpec::V6 { src, dst, hlim, tc, flow, exts } => {
            let ext_len: usize = exts.iter().map(|(_, l)| (usize::from(*l) + 1) * 8).sum();
            let first = exts.first().map_or(l4_proto, |e| e.0);
            b.push(0x60 | (tc >> 4));
            b.push((tc << 4) | ((flow >> 16) & 0x0F) as u8);
            put16(&mut b, *flow as u16);
            put16(&mut b, (ext_len + l4_len) as u16);
            b.push(first);
            b.push(*hlim);
            b.extend_from_slice(src);
            b.extend_from_slice(dst);
            for (i, (_, len8)) in exts.iter().enumerate() {
                let next = exts.get(i + 1).map_or(l4_proto, |e| e.0);
                let n = (usize::from(*len8) + 1) * 8;
                b.push(next);
                b.push(*len8);
                b.extend(std::iter::repeat_n(0u8, n - 2)); // Pad1 options / routing type 0, segments left 0
            }
        }
    }
    let _ = proto_v6;
    let l4 = b.len();
    match &spec.l4 {
        L4Spec::Tcp { sport, dport, flags, opt_words } => {
            put16(&mut b, *sport);
            put16(&mut b, *dport);
            b.extend_from_slice(&0x0102_0304u32.to_be_bytes());
            b.extend_from_slice(&0x0a0b_0c0du32.to_be_bytes());
            b.push((5 + opt_words) << 4);
            b.push(*flags);
            put16(&mut b, 0xFFFF);
            put16(&mut b, 0);
            put16(&mut b, 0);
            b.extend(std::iter::repeat_n(1u8, 4 * usize::from(*opt_words))); // NOPs
        }
        L4Spec::Udp { sport, dport, .. } => {
            put16(&mut b, *sport);
            put16(&mut b, *dport);
            put16(&mut b, l4_len as u16);
            put16(&mut b, 0);
        }
    }
    b.extend_from_slice(&spec.payload);
    let end = b.len();
    b.extend(std::iter::repeat_n(0xA5u8, spec.padding));

    // Checksums by the oracle, then the requested errors.
    let c = checks(&b).expect("generated frame parses");
    let csum_at = match spec.l4 {
        L4Spec::Tcp { .. } => l4 + 16,
        L4Spec::Udp { .. } => l4 + 6,
    };
    if let Some(ip) = c.ip {
        b[l3 + 10..l3 + 12].copy_from_slice(&ocadd(ip.computed, spec.ip_err).to_be_bytes());
    }
    let zero = matches!(spec.l4, L4Spec::Udp { zero: true, .. });
    if !zero {
        let c = checks(&b).expect("generated frame parses");
        let l4c = c.l4.expect("l4 checksum").computed;
        b[csum_at..csum_at + 2].copy_from_slice(&ocadd(l4c, spec.l4_err).to_be_bytes());
    }
    Built { bytes: b, l3, l4, end }
}

/// Swaps the source and destination addresses and ports of the IP packet at `l3` (a reply to
/// it). Checksums stay valid: the sums do not depend on the order.
pub fn swap_ends(frame: &mut [u8], l3: usize, l4: usize) {
    let (a, alen) = if frame[l3] >> 4 == 4 { (l3 + 12, 4) } else { (l3 + 8, 16) };
    for i in 0..alen {
        frame.swap(a + i, a + alen + i);
    }
    frame.swap(l4, l4 + 2);
    frame.swap(l4 + 1, l4 + 3);
}
