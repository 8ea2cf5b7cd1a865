//! Field layouts of the headers lb-rewrite reads and writes, and checked fixed-size access.
//!
//! Headers are reached through [`get`] / [`get_mut`], which return a fixed-size array reference
//! or `None`: once a caller holds a `&[u8; N]`, indexing it with the constants below is checked
//! at compile time, so no accessor in this crate can panic or reach outside the frame.

/// Checked access to `N` bytes of `buf` at `at`, as an array.
#[inline(always)]
pub(crate) fn get<const N: usize>(buf: &[u8], at: usize) -> Option<&[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Checked mutable access to `N` bytes of `buf` at `at`, as an array.
#[inline(always)]
pub(crate) fn get_mut<const N: usize>(buf: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    buf.get_mut(at..at.checked_add(N)?)?.try_into().ok()
}

#[inline(always)]
pub(crate) const fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Reads a big-endian `u16` at a constant offset of an array.
#[inline(always)]
pub(crate) fn rd16<const N: usize>(h: &[u8; N], at: usize) -> u16 {
    // `at` is always one of the constants below; `get` keeps even a wrong one panic-free.
    match get::<2>(h, at) {
        Some(b) => u16::from_be_bytes(*b),
        None => 0,
    }
}

/// Writes a big-endian `u16` at a constant offset of an array.
#[inline(always)]
pub(crate) fn wr16<const N: usize>(h: &mut [u8; N], at: usize, v: u16) {
    if let Some(b) = get_mut::<2>(h, at) {
        *b = v.to_be_bytes();
    }
}

/// Reads two bytes at a constant offset as a native-order `u16`. Checksum arithmetic uses these:
/// the one's-complement sum is independent of byte order ([RFC 1071 §2 (B)]), so an update done
/// entirely on native-order words needs no byte swapping.
///
/// [RFC 1071 §2 (B)]: https://www.rfc-editor.org/rfc/rfc1071#section-2
#[inline(always)]
pub(crate) fn rd16ne<const N: usize>(h: &[u8; N], at: usize) -> u16 {
    match get::<2>(h, at) {
        Some(b) => u16::from_ne_bytes(*b),
        None => 0,
    }
}

/// Writes a native-order `u16` (see [`rd16ne`]) at a constant offset.
#[inline(always)]
pub(crate) fn wr16ne<const N: usize>(h: &mut [u8; N], at: usize, v: u16) {
    if let Some(b) = get_mut::<2>(h, at) {
        *b = v.to_ne_bytes();
    }
}

/// Ethernet II ([IEEE 802.3]).
pub(crate) mod eth {
    /// Destination MAC.
    pub const DST: usize = 0;
    /// Source MAC.
    pub const SRC: usize = 6;
    /// Header length without tags.
    pub const HEADER_LEN: usize = 14;
    /// 802.1Q customer tag.
    pub const TPID_8021Q: u16 = 0x8100;
    /// 802.1ad service tag.
    pub const TPID_8021AD: u16 = 0x88A8;
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
    /// Length of one VLAN tag.
    pub const TAG_LEN: usize = 4;
    /// At most this many tags are parsed (802.1ad outer + 802.1Q inner).
    pub const MAX_TAGS: u8 = 2;
    /// The longest L2 header we produce or accept.
    pub const MAX_HEADER_LEN: usize = HEADER_LEN + TAG_LEN * MAX_TAGS as usize;
}

/// IPv4 ([RFC 791]).
///
/// [RFC 791]: https://www.rfc-editor.org/rfc/rfc791
pub(crate) mod ipv4 {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const MIN_HEADER_LEN: usize = 20;
    pub const MAX_HEADER_LEN: usize = 60;
    pub const FLAG_DF: u16 = 0x4000;
    pub const FLAG_MF: u16 = 0x2000;
    pub const OFFSET_MASK: u16 = 0x1FFF;
    /// Options whose copy flag is set are repeated in every fragment (RFC 791 §3.1).
    pub const OPT_COPIED: u8 = 0x80;
    pub const OPT_EOL: u8 = 0;
    pub const OPT_NOP: u8 = 1;
}

/// IPv6 ([RFC 8200]).
///
/// [RFC 8200]: https://www.rfc-editor.org/rfc/rfc8200
pub(crate) mod ipv6 {
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    pub const HEADER_LEN: usize = 40;
    pub const NH_HOP_BY_HOP: u8 = 0;
    pub const NH_ROUTING: u8 = 43;
    pub const NH_FRAGMENT: u8 = 44;
    pub const NH_DEST_OPTS: u8 = 60;
    pub const FRAG_HEADER_LEN: usize = 8;
    /// The minimum link MTU of IPv6 (RFC 8200 §5).
    pub const MIN_MTU: u16 = 1280;
}

/// IANA protocol numbers: lb-sched's, the one definition.
pub(crate) use lb_sched::proto;

/// TCP ([RFC 9293]).
///
/// [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293
pub(crate) mod tcp {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const CHECKSUM: usize = 16;
    pub const HEADER_LEN: usize = 20;
}

/// UDP ([RFC 768]).
///
/// [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
pub(crate) mod udp {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

/// ICMP ([RFC 792]) and ICMPv6 ([RFC 4443]): the 8-byte header both share.
///
/// [RFC 792]: https://www.rfc-editor.org/rfc/rfc792
/// [RFC 4443]: https://www.rfc-editor.org/rfc/rfc4443
pub(crate) mod icmp {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const HEADER_LEN: usize = 8;

    pub const V4_DEST_UNREACH: u8 = 3;
    pub const V4_SOURCE_QUENCH: u8 = 4;
    pub const V4_REDIRECT: u8 = 5;
    pub const V4_TIME_EXCEEDED: u8 = 11;
    pub const V4_PARAM_PROBLEM: u8 = 12;
    pub const V4_FRAG_NEEDED_CODE: u8 = 4;

    pub const V6_DEST_UNREACH: u8 = 1;
    pub const V6_PACKET_TOO_BIG: u8 = 2;
    pub const V6_TIME_EXCEEDED: u8 = 3;
    pub const V6_PARAM_PROBLEM: u8 = 4;

    /// Whether an ICMPv4 type is an error that quotes a packet of a connection (the types
    /// IPVS's `ip_vs_in_icmp` handles, plus parameter problem).
    #[inline]
    pub const fn v4_carries_packet(t: u8) -> bool {
        matches!(t, V4_DEST_UNREACH | V4_SOURCE_QUENCH | V4_TIME_EXCEEDED | V4_PARAM_PROBLEM)
    }

    /// Whether an ICMPv6 type is one of the four RFC 4443 error messages.
    #[inline]
    pub const fn v6_carries_packet(t: u8) -> bool {
        matches!(t, V6_DEST_UNREACH | V6_PACKET_TOO_BIG | V6_TIME_EXCEEDED | V6_PARAM_PROBLEM)
    }

    /// Whether an ICMPv4 type is an error message, to which no error may be sent
    /// (RFC 1122 §3.2.2).
    #[inline]
    pub const fn v4_is_error(t: u8) -> bool {
        matches!(t, V4_DEST_UNREACH | V4_SOURCE_QUENCH | V4_REDIRECT | V4_TIME_EXCEEDED | V4_PARAM_PROBLEM)
    }

    /// Whether an ICMPv6 type is an error message (RFC 4443 §2.1: types 0..=127), to which no
    /// error may be sent (RFC 4443 §2.4 (e)).
    #[inline]
    pub const fn v6_is_error(t: u8) -> bool {
        t < 128
    }
}

/// GUE ([draft-ietf-intarea-gue]) as IPVS builds it: UDP, then a 4-byte base header.
///
/// [draft-ietf-intarea-gue]: https://datatracker.ietf.org/doc/html/draft-ietf-intarea-gue
pub(crate) mod gue {
    pub const HEADER_LEN: usize = 4;
    /// The kernel's default `ip_local_port_range`, used by `udp_flow_src_port`.
    pub const SPORT_MIN: u32 = 32768;
    pub const SPORT_MAX: u32 = 60999;
}
