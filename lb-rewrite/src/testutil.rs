//! Frames for the unit tests of the rewriters' internals.

use crate::checksum;
use crate::wire::proto;

/// Ethernet (destination 02:..:02, source 02:..:01) + IPv4 192.0.2.7 -> 198.51.100.1 + a
/// transport header of `l4.len()` bytes, TTL `ttl`, DF if `df`; IPv4 and transport checksums
/// valid (a UDP checksum of zero stays zero).
pub(crate) fn v4(protocol: u8, ttl: u8, df: bool, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + l4.len()) as u16;
    let mut h = [0x45, 0, 0, 0, 0, 1, if df { 0x40 } else { 0 }, 0, ttl, protocol, 0, 0, 192, 0, 2, 7, 198, 51, 100, 1];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(l4);
    let pseudo = checksum::pseudo_header_v4(&[192, 0, 2, 7], &[198, 51, 100, 1], protocol, l4.len() as u16);
    fill_l4_checksum(&mut f[34..], protocol, pseudo);
    f
}

/// As [`v4`] for IPv6, 2001:db8::7 -> 2001:db8::1, hop limit `hops`.
pub(crate) fn v6(next: u8, hops: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    let (src, dst) = (addr6(7), addr6(1));
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, hops]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(l4);
    let pseudo = checksum::pseudo_header_v6(&src, &dst, next, l4.len() as u32);
    fill_l4_checksum(&mut f[54..], next, pseudo);
    f
}

/// 2001:db8::`last`.
pub(crate) fn addr6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    a
}

/// A TCP header, 40000 -> 80, SYN.
pub(crate) fn tcp() -> [u8; 20] {
    [0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]
}

/// A UDP datagram 40000 -> 53 with 4 bytes of payload; `zero_checksum` leaves its checksum 0.
pub(crate) fn udp(zero_checksum: bool) -> [u8; 12] {
    [0x9c, 0x40, 0, 53, 0, 12, 0, u8::from(!zero_checksum), 1, 2, 3, 4]
}

fn fill_l4_checksum(l4: &mut [u8], protocol: u8, pseudo: checksum::Sum) {
    let at = match protocol {
        proto::TCP => 16,
        // Marked non-zero by `udp` when it is to be computed.
        proto::UDP if l4[7] != 0 => 6,
        proto::ICMPV6 => 2,
        _ => return,
    };
    l4[at] = 0;
    l4[at + 1] = 0;
    let c = pseudo.add_bytes(l4).checksum();
    let c = if protocol == proto::UDP { checksum::udp_wire(c) } else { c };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Whether the transport checksum of the packet in `f` (IP header at 14) is right.
pub(crate) fn l4_checksum_ok(f: &[u8]) -> bool {
    let (pseudo, l4) = match f[14] >> 4 {
        4 => {
            let l4 = &f[34..];
            let (s, d) = (f[26..30].try_into().unwrap(), f[30..34].try_into().unwrap());
            (checksum::pseudo_header_v4(s, d, f[23], l4.len() as u16), l4)
        }
        _ => {
            let l4 = &f[54..];
            let (s, d) = (f[22..38].try_into().unwrap(), f[38..54].try_into().unwrap());
            (checksum::pseudo_header_v6(s, d, f[20], l4.len() as u32), l4)
        }
    };
    pseudo.add_bytes(l4).fold() == 0xFFFF
}
