//! The two error enums: why a frame could not be parsed, and why it could not be rewritten.
//!
//! Both are small `Copy` enums whose every variant has a stable snake_case name
//! ([`ParseError::name`], [`RewriteError::name`]) meant as a drop-counter key, and an index
//! ([`ParseError::index`], [`RewriteError::index`]) into an array of [`ParseError::COUNT`]
//! (or [`RewriteError::COUNT`]) counters.

use core::fmt;

macro_rules! reason_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $key:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order ([`Self::index`] is the position here).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The number of variants: the size of a counter array indexed by [`Self::index`].
            pub const COUNT: usize = Self::ALL.len();

            /// The stable snake_case name of the reason, usable as a drop-counter key.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $key,)+
                }
            }

            /// The position of the variant in [`Self::ALL`], for counter arrays.
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::error::Error for $name {}
    };
}

reason_enum! {
    /// Why [`parse`](crate::parse) refused a frame. Each variant is one drop reason.
    pub enum ParseError {
        /// Fewer than 14 bytes: no Ethernet header.
        TruncatedEthernet => "truncated_ethernet",
        /// A VLAN tag (0x8100 / 0x88a8) runs past the end of the frame.
        TruncatedVlan => "truncated_vlan",
        /// More than two VLAN tags.
        TooManyVlanTags => "too_many_vlan_tags",
        /// The ethertype is neither IPv4 nor IPv6 (ARP, LLC/802.3 lengths, ...).
        UnsupportedEthertype => "unsupported_ethertype",
        /// The IP header, or the IP packet its length field announces, runs past the frame.
        TruncatedIp => "truncated_ip",
        /// The IP version nibble does not match the ethertype.
        BadIpVersion => "bad_ip_version",
        /// IPv4 IHL below 5, or a header longer than the total length.
        BadIhl => "bad_ihl",
        /// An IP length field that cannot be right (IPv4 total length below 20, IPv6 jumbogram).
        BadIpLength => "bad_ip_length",
        /// An IPv4 fragment other than the first (offset ≠ 0): it has no transport header.
        Ipv4Fragment => "ipv4_fragment",
        /// An IPv6 fragment other than the first.
        Ipv6Fragment => "ipv6_fragment",
        /// An IPv6 extension header runs past the packet.
        TruncatedIpv6ExtHeader => "truncated_ipv6_ext_header",
        /// An IPv6 hop-by-hop options header anywhere but directly after the IPv6 header
        /// (RFC 8200 §4.1; Linux answers it with a parameter problem and drops the packet).
        MisplacedHopByHop => "misplaced_hop_by_hop",
        /// A transport protocol other than TCP, UDP, ICMP (IPv4) or ICMPv6 (IPv6), including
        /// tunnels (IPIP, 6in4), ESP/AH and "no next header".
        UnsupportedProtocol => "unsupported_protocol",
        /// Fewer than 20 bytes of TCP header.
        TruncatedTcp => "truncated_tcp",
        /// TCP data offset below 5 or beyond the IP payload.
        BadTcpOffset => "bad_tcp_offset",
        /// Fewer than 8 bytes of UDP header.
        TruncatedUdp => "truncated_udp",
        /// UDP length below 8 or beyond the IP payload (unfragmented datagrams only).
        BadUdpLength => "bad_udp_length",
        /// Fewer than 8 bytes of ICMP / ICMPv6 header.
        TruncatedIcmp => "truncated_icmp",
        /// An ICMP error whose quoted packet lacks a full IP header or 8 bytes of transport
        /// header (RFC 792 / RFC 4443 require them).
        TruncatedIcmpQuote => "truncated_icmp_quote",
        /// An ICMP error quoting a packet of another IP version or with a bad IHL.
        BadIcmpQuote => "bad_icmp_quote",
        /// An ICMP error quoting a non-first fragment: it names no connection.
        IcmpQuoteFragment => "icmp_quote_fragment",
        /// An ICMP error quoting a packet of an unsupported transport protocol.
        UnsupportedIcmpQuoteProtocol => "unsupported_icmp_quote_protocol",
    }
}

reason_enum! {
    /// Why a rewrite or an ICMP reply builder refused to act. Each variant is one drop reason.
    ///
    /// When a rewriter returns an error the frame may be partly written only for
    /// [`RewriteError::MtuTooSmall`] during fragmentation; every other error is returned before
    /// the first byte is changed.
    pub enum RewriteError {
        /// The [`Packet`](crate::Packet) does not describe this frame (offsets beyond it, or a
        /// header that is not where it says): it was parsed from another frame.
        PacketMismatch => "packet_mismatch",
        /// Addresses of different IP families where one is needed (NAT target, tunnel
        /// endpoints, ICMP reply source).
        FamilyMismatch => "family_mismatch",
        /// `dnat` / `snat` on an ICMP error: those go through `nat_icmp_in` / `nat_icmp_out`.
        IcmpErrorPacket => "icmp_error_packet",
        /// `nat_icmp_in` / `nat_icmp_out` on a packet that is not an ICMP error quoting a
        /// packet.
        NotIcmpError => "not_icmp_error",
        /// An ICMP error whose checksum is wrong: IPVS drops it before rewriting (the rewrite
        /// recomputes that checksum, which would hide the corruption).
        BadIcmpChecksum => "bad_icmp_checksum",
        /// The frame buffer has too little headroom for the encapsulation.
        NoHeadroom => "no_headroom",
        /// Tunnel MTU below 68 (outer IPv4) or 1280 (outer IPv6) after the tunnel overhead:
        /// IPVS drops the packet.
        TunnelMtuTooSmall => "tunnel_mtu_too_small",
        /// An MTU too small to carry one 8-byte fragment after the headers.
        MtuTooSmall => "mtu_too_small",
        /// The encapsulated packet would exceed 65535 bytes.
        EncapTooLong => "encap_too_long",
        /// The reply buffer is too small for the ICMP reply.
        BufferTooSmall => "buffer_too_small",
        /// No ICMP error may be sent about this packet: it is itself an ICMP error
        /// (RFC 1122 §3.2.2, RFC 4443 §2.4 (e)) or its source is unspecified, multicast or
        /// broadcast.
        IcmpReplyForbidden => "icmp_reply_forbidden",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_indices_dense() {
        let mut seen = std::collections::HashSet::new();
        for (i, e) in ParseError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(seen.insert(e.name()), "duplicate {}", e.name());
            assert!(e.name().bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()));
        }
        for (i, e) in RewriteError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(seen.insert(e.name()), "duplicate {}", e.name());
        }
        assert_eq!(ParseError::COUNT, 22);
        assert_eq!(ParseError::Ipv4Fragment.to_string(), "ipv4_fragment");
        assert_eq!(RewriteError::NoHeadroom.name(), "no_headroom");
    }
}
