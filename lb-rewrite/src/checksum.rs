//! The Internet checksum: full computation ([RFC 1071]) and incremental update ([RFC 1624]).
//!
//! Every checksum lb-rewrite writes goes through this module. Two tools:
//!
//! * [`Sum`] accumulates the one's-complement sum of 16-bit big-endian words (an odd trailing
//!   byte counts as the high byte of a last word, RFC 1071 §4.1). [`Sum::checksum`] is the value
//!   to store in a header whose checksum field was zero while summing.
//! * [`Update`] accumulates field replacements (old value → new value) and applies them to an
//!   existing checksum with RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`. It never looks at the
//!   rest of the packet, so a checksum that was wrong by `e` before the update is wrong by exactly
//!   `e` after it (in one's-complement arithmetic): an incremental update never turns a corrupt
//!   packet into one that looks valid. When the checksum was right, the result equals a full
//!   recomputation, including the corner case where that is `0x0000`: equation 3 does not produce
//!   the `0xFFFF` "negative zero" that the older RFC 1141 form produces.
//!
//! UDP stores a computed `0x0000` as `0xFFFF` because zero means "no checksum" ([RFC 768]);
//! [`udp_wire`] applies that rule.
//!
//! [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
//! [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
//! [RFC 1624]: https://www.rfc-editor.org/rfc/rfc1624

/// A running one's-complement sum of 16-bit big-endian words ([RFC 1071]).
///
/// The accumulator is 64 bits wide and only folded at the end, so it cannot overflow for any
/// input shorter than 2^32 words.
///
/// [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum(u64);

impl Sum {
    /// The empty sum.
    #[inline]
    pub const fn new() -> Self {
        Sum(0)
    }

    /// Adds one 16-bit word.
    #[inline]
    pub const fn add_u16(self, word: u16) -> Self {
        Sum(self.0 + word as u64)
    }

    /// Adds a 32-bit value as its two 16-bit words.
    #[inline]
    pub const fn add_u32(self, word: u32) -> Self {
        Sum(self.0 + word as u64)
    }

    /// Adds `data` as big-endian 16-bit words; an odd trailing byte is the high byte of a word
    /// whose low byte is zero. `data` is taken to start at an even offset of the checksummed
    /// region.
    #[inline]
    pub fn add_bytes(self, data: &[u8]) -> Self {
        // Summing 32-bit big-endian words is congruent to summing 16-bit ones modulo 0xFFFF,
        // because 2^16 ≡ 1 (mod 0xFFFF).
        let mut acc = self.0;
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        let rest = words.remainder();
        let mut pairs = rest.chunks_exact(2);
        for p in &mut pairs {
            acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
        }
        if let [last] = pairs.remainder() {
            acc += u64::from(*last) << 8;
        }
        Sum(acc)
    }

    /// Adds another sum (the sums of two regions, the first of even length).
    #[inline]
    pub const fn add_sum(self, other: Sum) -> Self {
        Sum(self.0 + other.0)
    }

    /// The folded one's-complement sum: a value in `0..=0xFFFF` that is `0` only when every
    /// word added was zero.
    #[inline]
    pub const fn fold(self) -> u16 {
        fold64(self.0)
    }

    /// The checksum to store: the one's complement of [`Sum::fold`].
    #[inline]
    pub const fn checksum(self) -> u16 {
        !self.fold()
    }
}

/// Folds a 64-bit one's-complement sum to 16 bits, without branches: the two 32-bit halves are
/// added with the carry out brought back in (end-around carry; 2^32 ≡ 1 modulo 0xFFFF), then
/// the two 16-bit halves the same way. An end-around addition cannot carry out again, so two
/// steps suffice, and `overflowing_add` compiles to `add` + `adc` (eight instructions in all).
/// The result is `0` only for a zero sum, as with any end-around fold.
#[inline(always)]
const fn fold64(s: u64) -> u16 {
    let (s, carry) = (s as u32).overflowing_add((s >> 32) as u32);
    let s = s + carry as u32;
    let (s, carry) = (s as u16).overflowing_add((s >> 16) as u16);
    s + carry as u16
}

/// The checksum of `data` ([RFC 1071]): what to store in a checksum field that was zero while
/// `data` was summed.
///
/// [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    Sum::new().add_bytes(data).checksum()
}

/// Whether `data`, checksum field included, sums to `0xFFFF` (a correct RFC 1071 checksum).
#[inline]
pub fn verify(data: &[u8]) -> bool {
    Sum::new().add_bytes(data).fold() == 0xFFFF
}

/// The IPv4 pseudo-header sum for TCP, UDP ([RFC 793], [RFC 768]): source, destination, zero,
/// protocol, transport length.
///
/// [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
/// [RFC 793]: https://www.rfc-editor.org/rfc/rfc793#section-3.1
#[inline]
pub fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], protocol: u8, len: u16) -> Sum {
    Sum::new()
        .add_u32(u32::from_be_bytes(*src))
        .add_u32(u32::from_be_bytes(*dst))
        .add_u16(u16::from(protocol))
        .add_u16(len)
}

/// The IPv6 pseudo-header sum for TCP, UDP and ICMPv6 ([RFC 8200 §8.1]): source, destination,
/// upper-layer length (32 bits), next header.
///
/// [RFC 8200 §8.1]: https://www.rfc-editor.org/rfc/rfc8200#section-8.1
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> Sum {
    Sum::new().add_bytes(src).add_bytes(dst).add_u32(len).add_u16(u16::from(next_header))
}

/// The UDP wire form of a computed checksum: `0x0000` is sent as `0xFFFF`, because a zero UDP
/// checksum means "none" ([RFC 768]; the kernel's `CSUM_MANGLED_0`).
///
/// [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
#[inline]
pub const fn udp_wire(check: u16) -> u16 {
    if check == 0 {
        0xFFFF
    } else {
        check
    }
}

/// An incremental checksum update ([RFC 1624] equation 3): the sum of `~m + m'` over every
/// replaced 16-bit word `m → m'`, applied to an existing checksum with [`Update::apply`].
///
/// Replacements must be aligned on the 16-bit words of the checksummed region (all the fields
/// lb-rewrite changes are). Replacing a value with itself is a no-op.
///
/// [RFC 1624]: https://www.rfc-editor.org/rfc/rfc1624
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Update(u64);

impl Update {
    /// No change.
    #[inline]
    pub const fn new() -> Self {
        Update(0)
    }

    /// A 16-bit word changed from `old` to `new`.
    #[inline]
    pub const fn replace_u16(self, old: u16, new: u16) -> Self {
        Update(self.0 + (!old) as u64 + new as u64)
    }

    /// A 32-bit field (two aligned words) changed from `old` to `new`.
    #[inline]
    pub const fn replace_u32(self, old: u32, new: u32) -> Self {
        Update(self.0 + (!old) as u64 + new as u64)
    }

    /// A 16-byte field (an IPv6 address) changed from `old` to `new`.
    #[inline(always)]
    pub fn replace_addr16(self, old: &[u8; 16], new: &[u8; 16]) -> Self {
        let (o, n) = (u128::from_be_bytes(*old), u128::from_be_bytes(*new));
        let words =
            |x: u128| (x >> 96) as u32 as u64 + (x >> 64) as u32 as u64 + (x >> 32) as u32 as u64 + x as u32 as u64;
        // Σ~m over four 32-bit words is 4·0xFFFF_FFFF - Σm.
        Update(self.0 + (4 * 0xFFFF_FFFF - words(o)) + words(n))
    }

    /// [`Update::replace_addr16`] on the address bytes taken in native byte order, for updates
    /// done entirely on native-order words (the one's-complement sum does not depend on byte
    /// order, [RFC 1071 §2 (B)]; the checksum must then be read and written natively too).
    ///
    /// [RFC 1071 §2 (B)]: https://www.rfc-editor.org/rfc/rfc1071#section-2
    #[inline(always)]
    pub fn replace_addr16_ne(self, old: &[u8; 16], new: &[u8; 16]) -> Self {
        let (o, n) = (u128::from_ne_bytes(*old), u128::from_ne_bytes(*new));
        let words =
            |x: u128| (x >> 96) as u32 as u64 + (x >> 64) as u32 as u64 + (x >> 32) as u32 as u64 + x as u32 as u64;
        Update(self.0 + (4 * 0xFFFF_FFFF - words(o)) + words(n))
    }

    /// A field of whole 16-bit words changed from `old` to `new` (same length, even).
    ///
    /// If the lengths differ only the common prefix counts; callers pass equal lengths.
    #[inline]
    pub fn replace_bytes(self, old: &[u8], new: &[u8]) -> Self {
        let mut acc = self.0;
        for (o, n) in old.chunks_exact(4).zip(new.chunks_exact(4)) {
            acc += u64::from(!u32::from_be_bytes([o[0], o[1], o[2], o[3]]));
            acc += u64::from(u32::from_be_bytes([n[0], n[1], n[2], n[3]]));
        }
        let tail = old.len().min(new.len()) & !3;
        for (o, n) in old[tail..].chunks_exact(2).zip(new[tail..].chunks_exact(2)) {
            acc += u64::from(!u16::from_be_bytes([o[0], o[1]]));
            acc += u64::from(u16::from_be_bytes([n[0], n[1]]));
        }
        Update(acc)
    }

    /// Merges another update into this one.
    #[inline]
    pub const fn then(self, other: Update) -> Self {
        Update(self.0 + other.0)
    }

    /// The updated checksum: `~(~check + Σ(~m + m'))`.
    #[inline]
    pub const fn apply(self, check: u16) -> u16 {
        !fold64(self.0 + (!check) as u64)
    }

    /// [`Update::apply`] for a UDP checksum: a result of `0x0000` is stored as `0xFFFF`.
    /// (A zero UDP checksum means "none" and is never updated incrementally.)
    #[inline]
    pub const fn apply_udp(self, check: u16) -> u16 {
        udp_wire(self.apply(check))
    }
}

/// `a - b` in one's-complement arithmetic, folded: how far a stored checksum `a` is from the
/// correct one `b`, as a value where both representations of zero (`0x0000`, `0xFFFF`) mean
/// "no difference". Used to state the "exactly as wrong as before" guarantee.
#[inline]
pub const fn difference(a: u16, b: u16) -> u16 {
    let d = fold64(a as u64 + (!b) as u64);
    if d == 0xFFFF {
        0
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 reference: a plain 16-bit-word loop with end-around carry.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for (i, b) in data.iter().enumerate() {
            s += if i % 2 == 0 { u32::from(*b) << 8 } else { u32::from(*b) };
            s = (s & 0xFFFF) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Sum::new().add_bytes(&data).fold(), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        assert_eq!(checksum(&data), reference(&data));
    }

    #[test]
    fn known_ipv4_header() {
        // A textbook header: 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert!(verify(&h));
    }

    #[test]
    fn odd_lengths_and_alignment() {
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect();
            assert_eq!(checksum(&data), reference(&data), "len {len}");
        }
        // An odd trailing byte is the high byte of the last word.
        assert_eq!(Sum::new().add_bytes(&[0xab]).fold(), 0xab00);
    }

    #[test]
    fn fold_corner_cases() {
        assert_eq!(Sum::new().fold(), 0);
        assert_eq!(Sum::new().checksum(), 0xFFFF);
        assert_eq!(Sum::new().add_u16(0xFFFF).fold(), 0xFFFF);
        assert_eq!(Sum::new().add_u16(0xFFFF).add_u16(0x0001).fold(), 0x0001);
        assert_eq!(Sum::new().add_u16(0xFFFF).add_u16(0xFFFF).fold(), 0xFFFF);
        assert_eq!(Sum(u64::MAX >> 1).fold(), reference_fold(u64::MAX >> 1));
    }

    #[test]
    fn fold_matches_the_reference_fold() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            // xorshift64: values of every magnitude, then the edges.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for s in [x, x >> 16, x >> 31, x >> 40, x >> 48] {
                assert_eq!(fold64(s), reference_fold(s), "{s:#x}");
            }
        }
        for s in [0, 1, 0xFFFF, 0x1_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x1_FFFF_FFFE, u64::MAX, u64::MAX - 1] {
            assert_eq!(fold64(s), reference_fold(s), "{s:#x}");
        }
    }

    fn reference_fold(mut s: u64) -> u16 {
        while s >> 16 != 0 {
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn update_equals_recomputation_including_zero_result() {
        // Data whose checksum is 0x0000 after the change: the rest sums to 0xFFFF.
        // Before: [0x1234, 0xEDCB - 1 = 0xEDCA] sum 0xFFFE -> checksum 0x0001.
        let before = [0x12, 0x34, 0xED, 0xCA];
        let after = [0x12, 0x34, 0xED, 0xCB];
        let hc = checksum(&before);
        assert_eq!(hc, 0x0001);
        let up = Update::new().replace_u16(0xEDCA, 0xEDCB).apply(hc);
        assert_eq!(up, checksum(&after));
        assert_eq!(up, 0x0000, "RFC 1624 eqn 3 gives +0, as a recomputation does");
        // And back.
        assert_eq!(Update::new().replace_u16(0xEDCB, 0xEDCA).apply(up), hc);
        // UDP stores that zero as 0xFFFF.
        assert_eq!(Update::new().replace_u16(0xEDCA, 0xEDCB).apply_udp(hc), 0xFFFF);
    }

    #[test]
    fn update_preserves_error() {
        let before = [0x45u8, 0x00, 0x01, 0x02, 0xAB, 0xCD, 0x00, 0x00];
        let good = checksum(&before);
        let bad = good.wrapping_add(0x1111);
        let after = [0x45u8, 0x00, 0x01, 0x02, 0x12, 0x34, 0x56, 0x78];
        let up = Update::new().replace_bytes(&before[4..8], &after[4..8]);
        let good_after = checksum(&after);
        assert_eq!(up.apply(good), good_after);
        assert_eq!(difference(up.apply(bad), good_after), difference(bad, good));
        assert_ne!(difference(bad, good), 0);
    }

    #[test]
    fn difference_treats_both_zeros_alike() {
        assert_eq!(difference(0x0000, 0xFFFF), 0);
        assert_eq!(difference(0xFFFF, 0x0000), 0);
        assert_eq!(difference(0x1234, 0x1234), 0);
        assert_eq!(difference(0x1235, 0x1234), 1);
    }

    #[test]
    fn pseudo_headers_match_byte_layout() {
        let (s, d) = ([192, 0, 2, 1], [198, 51, 100, 7]);
        let bytes = [192, 0, 2, 1, 198, 51, 100, 7, 0, 6, 0x05, 0xdc];
        assert_eq!(pseudo_header_v4(&s, &d, 6, 1500).fold(), Sum::new().add_bytes(&bytes).fold());
        let (s6, d6) = ([0x20u8; 16], [0x01u8; 16]);
        let mut b6 = Vec::new();
        b6.extend_from_slice(&s6);
        b6.extend_from_slice(&d6);
        b6.extend_from_slice(&70_000u32.to_be_bytes());
        b6.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 17, 70_000).fold(), Sum::new().add_bytes(&b6).fold());
    }

    mod props {
        use super::super::*;
        use super::reference;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
                prop_assert_eq!(checksum(&data), reference(&data));
            }

            #[test]
            fn addr16_is_bytes(old in any::<[u8; 16]>(), new in any::<[u8; 16]>(), check in any::<u16>()) {
                let a = Update::new().replace_addr16(&old, &new).apply(check);
                let b = Update::new().replace_bytes(&old, &new).apply(check);
                prop_assert_eq!(difference(a, b), 0);
            }

            /// Replacing any aligned words and updating incrementally gives the recomputed
            /// checksum when it was right, and keeps the same error when it was not.
            #[test]
            fn update_matches_full(
                data in proptest::collection::vec(any::<u8>(), 4..200).prop_filter("even", |d| d.len() % 2 == 0),
                at in any::<prop::sample::Index>(),
                new in proptest::collection::vec(any::<u8>(), 2..20),
                err in any::<u16>(),
            ) {
                let mut data = data;
                let words = data.len() / 2;
                let w = at.index(words);
                let n = (new.len() / 2).min(words - w) * 2;
                let good = checksum(&data);
                let stored = Update::new().replace_u16(0, err).apply(good); // good "plus" err
                let old = data[w * 2..w * 2 + n].to_vec();
                data[w * 2..w * 2 + n].copy_from_slice(&new[..n]);
                let up = Update::new().replace_bytes(&old, &data[w * 2..w * 2 + n]);
                let recomputed = checksum(&data);
                let updated_good = up.apply(good);
                // Equal as values, except that equation 3 may give 0xFFFF where the recomputation
                // gives 0x0000 only when the data is all zeros (impossible to reach from a valid
                // checksum over non-zero data); compare exactly when data is non-zero.
                if data.iter().any(|b| *b != 0) {
                    prop_assert_eq!(updated_good, recomputed);
                }
                prop_assert_eq!(difference(up.apply(stored), recomputed), difference(stored, good));
            }
        }
    }
}
