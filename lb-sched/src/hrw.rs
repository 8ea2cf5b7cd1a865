//! `hrw`: weighted rendezvous (highest random weight) hashing: Thaler and Ravishankar, "Using
//! name-based mappings to increase hit rates" (IEEE/ACM ToN 6(1), 1998) for the unweighted
//! scheme, and the logarithmic weighted form of Schindelhauer and Schomaker, "Weighted
//! distributed hash tables" (SPAA 2005), as popularised by Resch, "New Hashing Algorithms for
//! Data Storage" (2015):
//!
//! `score_i = -w_i / ln(u_i)`, the destination with the highest score wins.
//!
//! With `u_i` uniform on (0, 1) and independent, destination `i` wins with probability exactly
//! `w_i / Σw` (it is the minimum of exponential variables of rates `w_i`), and removing or
//! adding a destination moves only the flows it loses or wins.
//!
//! What is implemented:
//!
//! * Flow key: the client's address and port only (the flow's source address, IPv4 as
//!   IPv4-mapped IPv6, and its source port, 0 for ICMP): `k = SipHash-1-3(FLOW_KEY,
//!   addr16(src) ‖ src_port big-endian)` ([`flow_key`]).
//! * Destination identity: `id_i = SipHash-1-3(DEST_KEY, addr16(addr) ‖ port big-endian)`,
//!   computed at rebuild time ([`dest_id`]).
//! * `u_i = ((mix(k ^ id_i) >> 11) + 0.5) / 2^53` where `mix` is the SplitMix64 finaliser
//!   ([`mix64`]): the top 53 bits of a 64-bit hash, centred in their interval, so
//!   0 < u_i < 1.
//! * Candidates: destinations eligible at pick time (weight > 0, no OVERLOAD), with their live
//!   weight; O(N) per pick (with a shortcut that skips most logarithms, [`Rendezvous`]).
//!   `ln` is the platform's `f64::ln`: a libm that rounds differently in the last place could
//!   only change a flow whose two best scores agree to about 15 digits. Equal scores (which need equal weights and equal 53-bit hashes) go
//!   to the first in list order. None eligible: `None`.
//!
//! Every constant is fixed and part of the stable behaviour.

use core::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;

use siphasher::sip::SipHasher13;

use crate::hash::addr16;
use crate::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// SipHash-1-3 key of the flow key (client address and port).
pub const FLOW_KEY: [u64; 2] = [0x6c62_6b69_742d_6872, 0x772d_666c_6f77_2d6b];
/// SipHash-1-3 key of a destination's identity.
pub const DEST_KEY: [u64; 2] = [0x6c62_6b69_742d_6872, 0x772d_6465_7374_2d6b];

/// `1 + 2^-40`: the margin of the pick's shortcut (see [`Rendezvous`]).
const SKIP_MARGIN: f64 = 1.0 + 1.0 / (1u64 << 40) as f64;

/// Weighted rendezvous hashing.
///
/// A pick computes `u_i` for every eligible destination but `ln u_i` only for those that may
/// beat the best score so far: since `-ln u >= 1 - u`, a destination with
/// `(1 - u_i) * best >= w_i * (1 + 2^-40)` cannot, whatever the rounding of `ln` and the
/// division (each within a few ulps, far below 2^-40). The result is that of computing every
/// score; most `ln`s are skipped.
#[derive(Debug)]
pub struct Rendezvous {
    ids: Box<[u64]>,
}

fn sip(key: [u64; 2], addr: &IpAddr, port: u16) -> u64 {
    let mut h = SipHasher13::new_with_keys(key[0], key[1]);
    let mut bytes = [0u8; 18];
    bytes[..16].copy_from_slice(&addr16(addr));
    bytes[16..].copy_from_slice(&port.to_be_bytes());
    h.write(&bytes);
    h.finish()
}

/// The flow key: SipHash-1-3 under [`FLOW_KEY`] of the client address (16 bytes, IPv4 mapped)
/// and the client port (big-endian).
#[inline]
pub fn flow_key(flow: &Flow) -> u64 {
    sip(FLOW_KEY, &flow.src, flow.src_port)
}

/// A destination's identity hash: SipHash-1-3 under [`DEST_KEY`] of its address (16 bytes,
/// IPv4 mapped) and port (big-endian).
pub fn dest_id(addr: &IpAddr, port: u16) -> u64 {
    sip(DEST_KEY, addr, port)
}

/// The SplitMix64 finaliser (Steele, Lea and Flood, OOPSLA 2014).
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `u` in (0, 1) for a flow key and a destination identity.
#[inline]
pub fn unit(key: u64, id: u64) -> f64 {
    ((mix64(key ^ id) >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// The score of a destination of weight `w` (`-w / ln u`).
#[inline]
pub fn score(key: u64, id: u64, w: u32) -> f64 {
    -f64::from(w) / unit(key, id).ln()
}

/// Registry constructor.
pub fn build(_cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(Rendezvous::new(dests)))
}

impl Rendezvous {
    /// The scheduler for `dests` (their identity hashes).
    pub fn new(dests: &[Arc<Destination>]) -> Self {
        Rendezvous { ids: dests.iter().map(|d| dest_id(&d.addr(), d.port())).collect() }
    }
}

impl Scheduler for Rendezvous {
    fn name(&self) -> &'static str {
        "hrw"
    }

    fn pick(&self, dests: &[Arc<Destination>], flow: &Flow) -> Option<usize> {
        let key = flow_key(flow);
        let mut best: Option<(usize, f64)> = None;
        for (i, (d, &id)) in dests.iter().zip(self.ids.iter()).enumerate() {
            let w = d.weight();
            if w == 0 || d.is_overloaded() {
                continue;
            }
            let u = unit(key, id);
            if let Some((_, b)) = best {
                // -ln u >= 1 - u: with (1 - u) * best >= w (and a margin far above the rounding
                // of either side), this score cannot beat the best. Skips nearly every ln.
                if (1.0 - u) * b >= f64::from(w) * SKIP_MARGIN {
                    continue;
                }
            }
            let s = -f64::from(w) / u.ln();
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best.map(|(i, _)| i)
    }

    fn rebuild(&self, dests: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(Rendezvous::new(dests)))
    }
}
