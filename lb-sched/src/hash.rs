//! The fixed hashes that decide destinations. Every constant here is part of lbkit's stable
//! behaviour: changing one moves flows between destinations, so it never changes within a major
//! version.

use core::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher13;

/// The kernel's `hash_32(val, bits)` (`include/linux/hash.h`): the high `bits` bits of
/// `val * GOLDEN_RATIO_32` (0x61C88647) modulo 2^32. `bits` must be in 1..=32.
#[inline]
pub const fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// The kernel's `hsiphash` on a 64-bit machine: SipHash-1-3 with the 64-bit key words `k`,
/// over the 4 bytes of `v` in little-endian order (x86's memory order), truncated to 32 bits.
#[inline]
pub fn hsiphash_u32(v: u32, k: [u64; 2]) -> u32 {
    let mut h = SipHasher13::new_with_keys(k[0], k[1]);
    h.write(&v.to_le_bytes());
    h.finish() as u32
}

/// The greatest common divisor (0 if both are 0).
pub const fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// The kernel's `fls`: 1-based position of the highest set bit, 0 for 0.
#[inline]
pub const fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// Whether `n` is prime (trial division; used for table sizes only).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The 16-byte form of an address used by identity hashes: IPv4 as IPv4-mapped IPv6.
#[inline]
pub fn addr16(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_32_takes_high_bits() {
        // 1 * 0x61C88647 = 0x61C88647; its top 8 bits are 0x61.
        assert_eq!(hash_32(1, 8), 0x61);
        // 2 * 0x61C88647 = 0xC3910C8E; top 8 bits 0xC3.
        assert_eq!(hash_32(2, 8), 0xC3);
        // 3 * 0x61C88647 = 0x1_2559_92D5 -> mod 2^32 = 0x255992D5; top 4 bits 0x2.
        assert_eq!(hash_32(3, 4), 0x2);
        assert_eq!(hash_32(0xffff_ffff, 32), 0xffff_ffffu32.wrapping_mul(0x61C8_8647));
    }

    #[test]
    fn hsiphash_matches_the_kernel_self_test_vector() {
        // lib/test_siphash.c (64-bit): key {0x0706050403020100, 0x0f0e0d0c0b0a0908}, message
        // bytes 00 01 02 03, expected test_vectors_hsiphash[4] = 0x88d38328.
        let k = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        assert_eq!(hsiphash_u32(0x0302_0100, k), 0x88d3_8328);
    }

    #[test]
    fn gcd_fls_prime() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(0, 7), 7);
        assert_eq!(fls(0), 0);
        assert_eq!(fls(1), 1);
        assert_eq!(fls(0x80), 8);
        assert!(is_prime(65537) && is_prime(4093) && is_prime(251));
        assert!(!is_prime(65536) && !is_prime(1) && !is_prime(4095));
    }
}
