//! The checksum oracle: what etherparse, an independent implementation, computes for a frame's
//! IPv4 header and transport checksums, and the rule a rewrite must keep ("valid stays valid;
//! a wrong one stays exactly as wrong").

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// `a - b` in one's-complement arithmetic, folded, with both zeros (`0x0000`, `0xFFFF`) read as
/// "no difference": how far a stored checksum `a` is from the right one `b`.
pub fn ones_difference(a: u16, b: u16) -> u16 {
    let mut s = u32::from(a) + u32::from(!b);
    s = (s & 0xFFFF) + (s >> 16);
    s = (s & 0xFFFF) + (s >> 16);
    if s == 0xFFFF {
        0
    } else {
        s as u16
    }
}

/// The RFC 1071 checksum of the concatenation of `parts`, with the 16-bit field at byte
/// `skip` of it read as zero (the checksum field itself). Every part but the last must have an
/// even length.
pub fn checksum_of(parts: &[&[u8]], skip: usize) -> u16 {
    let mut sum = 0u64;
    let mut at = 0usize;
    for part in parts {
        for (i, pair) in part.chunks(2).enumerate() {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            if at + 2 * i != skip {
                sum += u64::from(word);
            }
        }
        at += part.len();
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// One checksum of a frame: the stored value and etherparse's full recomputation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// What the frame carries.
    pub stored: u16,
    /// What a full recomputation gives.
    pub computed: u16,
}

impl Check {
    /// How wrong the stored value is (0: right).
    pub fn error(&self) -> u16 {
        ones_difference(self.stored, self.computed)
    }
}

/// The checksums of a frame, as etherparse sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    /// The IPv4 header checksum (the outer one for a tunnelled frame).
    pub ip: Option<Check>,
    /// TCP, UDP, ICMP or ICMPv6; `None` when etherparse gives no transport (fragments,
    /// tunnels, other protocols).
    pub l4: Option<Check>,
    /// The transport is UDP with a checksum of zero ("none").
    pub udp_none: bool,
}

/// Parses `frame` with etherparse and recomputes every checksum it holds; `Err` when
/// etherparse cannot parse it, or it is not IP.
pub fn checks(frame: &[u8]) -> Result<Checks, String> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| format!("etherparse: {e}"))?;
    let mut out = Checks::default();
    enum Ends {
        V4([u8; 4], [u8; 4]),
        V6([u8; 16], [u8; 16]),
    }
    let ends = match &p.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            out.ip = Some(Check { stored: h.header_checksum(), computed: checksum_of(&[h.slice()], 10) });
            Ends::V4(h.source(), h.destination())
        }
        Some(NetSlice::Ipv6(v6)) => Ends::V6(v6.header().source(), v6.header().destination()),
        _ => return Err("etherparse: not IP".into()),
    };
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let computed = match ends {
                Ends::V4(s, d) => t.calc_checksum_ipv4(s, d),
                Ends::V6(s, d) => t.calc_checksum_ipv6(s, d),
            }
            .map_err(|e| e.to_string())?;
            out.l4 = Some(Check { stored: t.checksum(), computed });
        }
        Some(TransportSlice::Udp(u)) => {
            let h = u.to_header();
            out.udp_none = u.checksum() == 0;
            let computed = match ends {
                Ends::V4(s, d) => h.calc_checksum_ipv4_raw(s, d, u.payload()),
                Ends::V6(s, d) => h.calc_checksum_ipv6_raw(s, d, u.payload()),
            }
            .map_err(|e| e.to_string())?;
            out.l4 = Some(Check { stored: u.checksum(), computed });
        }
        // ICMP checksums are summed over the raw bytes here: etherparse's own computation
        // rebuilds the header from the type it decoded, which drops bytes it calls unused
        // (e.g. an RFC 4884 length).
        Some(TransportSlice::Icmpv4(i)) => {
            out.l4 = Some(Check { stored: i.checksum(), computed: checksum_of(&[i.slice()], 2) });
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let Ends::V6(s, d) = ends else { return Err("etherparse: ICMPv6 in IPv4".into()) };
            let msg = i.slice();
            let len = (msg.len() as u32).to_be_bytes();
            let pseudo = [&s[..], &d[..], &len[..], &[0, 0, 0, 58][..]].concat();
            out.l4 = Some(Check { stored: i.checksum(), computed: checksum_of(&[&pseudo, msg], pseudo.len() + 2) });
        }
        _ => {}
    }
    Ok(out)
}

/// The checksum rule: a right checksum stays exactly right, a wrong one stays wrong by the same
/// one's-complement amount, and a checksum neither appears nor disappears.
pub fn assert_rule(what: &str, input: Option<Check>, output: Option<Check>) {
    match (input, output) {
        (Some(i), Some(o)) => {
            assert_eq!(o.error(), i.error(), "{what}: checksum error changed: in {i:?}, out {o:?}");
            if i.stored == i.computed {
                assert_eq!(o.stored, o.computed, "{what}: was right, now {o:?}");
            }
        }
        (None, None) => {}
        (i, o) => panic!("{what}: checksum presence changed: {i:?} -> {o:?}"),
    }
}

/// Asserts that `o` is exactly right.
pub fn assert_right(what: &str, o: Option<Check>) {
    match o {
        Some(o) => assert_eq!(o.stored, o.computed, "{what}: checksum not right: {o:?}"),
        None => panic!("{what}: no checksum"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_is_zero_for_both_zeros_and_antisymmetric() {
        assert_eq!(ones_difference(0x1234, 0x1234), 0);
        assert_eq!(ones_difference(0x0000, 0xFFFF), 0);
        assert_eq!(ones_difference(0xFFFF, 0x0000), 0);
        assert_eq!(ones_difference(0x1235, 0x1234), 1);
        // -1 in one's complement is 0xFFFE.
        assert_eq!(ones_difference(0x1233, 0x1234), 0xFFFE);
    }

    #[test]
    fn checksum_of_skips_the_field_and_spans_parts() {
        // RFC 1071's example words sum to 0xDDF2 (folded): the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum_of(&[&data], 99), !0xDDF2);
        assert_eq!(checksum_of(&[&data[..4], &data[4..]], 99), !0xDDF2);
        let mut with_field = data.to_vec();
        with_field.extend_from_slice(&[0xAB, 0xCD]);
        assert_eq!(checksum_of(&[&with_field], 8), !0xDDF2);
        // An odd tail is padded with a zero byte.
        assert_eq!(checksum_of(&[&[0x12, 0x34, 0x56]], 99), !(0x1234u16 + 0x5600));
    }

    #[test]
    fn checks_see_a_wrong_ipv4_header_checksum() {
        // IPv4/UDP, header checksum right, UDP checksum "none".
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let c = checks(&f).unwrap();
        let ip = c.ip.unwrap();
        f[24..26].copy_from_slice(&ip.computed.to_be_bytes());
        let c = checks(&f).unwrap();
        assert_eq!(c.ip.unwrap().error(), 0);
        assert!(c.udp_none);
        f[25] ^= 1;
        assert_ne!(checks(&f).unwrap().ip.unwrap().error(), 0);
    }
}
