//! The schedulers' building blocks: the fixed hashes and the table builders, for lbkit's own
//! benchmarks, fuzz targets and known-answer tests.
//!
//! **Unstable.** This module exists only with the non-default cargo feature `internals`, and
//! nothing in it is covered by semantic versioning: names and signatures change whenever the
//! schedulers' internals do. What *is* stable is the behaviour they implement (which destination
//! a flow gets), through [`Service`](crate::Service) and the [`registry`](crate::registry).

use std::net::IpAddr;
use std::sync::Arc;

use crate::{Destination, Flow, SchedError};

/// The kernel's hash primitives and small number helpers every hashing scheduler uses.
pub mod hash {
    pub use crate::hash::{addr16, fls, gcd, hash_32, hsiphash_u32, is_prime};
}

/// `mh` (IPVS Maglev hashing): its hash and table.
pub mod mh {
    use super::*;

    /// `hsiphash(offset + port + fold(addr))` under `key` ([`HASH1`](crate::mh::HASH1) or
    /// [`HASH2`](crate::mh::HASH2)).
    #[inline]
    pub fn hashkey(addr: &IpAddr, port: u16, key: [u64; 2], offset: u32) -> u32 {
        crate::mh::hashkey(addr, port, key, offset)
    }

    /// The turns of each destination, in list order; `tab_bits` is IPVS's `IP_VS_MH_TAB_BITS`
    /// (`CONFIG_IP_VS_MH_TAB_INDEX / 2`).
    #[inline]
    pub fn turns(tab_bits: u32, dests: &[Arc<Destination>]) -> Vec<u32> {
        crate::mh::turns(tab_bits, dests)
    }

    /// The lookup table of size `m`: `table[slot]` is an index into `dests`, or `u32::MAX` for
    /// empty.
    #[inline]
    pub fn populate(m: u32, tab_bits: u32, dests: &[Arc<Destination>]) -> Result<Box<[u32]>, SchedError> {
        crate::mh::populate(m, tab_bits, dests)
    }
}

/// `maglev` (the paper's Maglev with Katran's weights): its hashes and table.
pub mod maglev {
    use super::*;

    /// A destination identity's two hashes `(h1, h2)` (offset and order, skip).
    #[inline]
    pub fn identity_hashes(addr: &IpAddr, port: u16) -> (u64, u64) {
        crate::maglev::identity_hashes(addr, port)
    }

    /// The flow hash lookups use.
    #[inline]
    pub fn flow_hash(f: &Flow) -> u64 {
        crate::maglev::flow_hash(f)
    }

    /// The table of size `m`: `table[slot]` is an index into `dests`, or `u32::MAX` for empty
    /// (only when no destination has a positive weight).
    #[inline]
    pub fn populate(m: u32, dests: &[Arc<Destination>]) -> Result<Box<[u32]>, SchedError> {
        crate::maglev::populate(m, dests)
    }
}
