//! The scheduler trait, its configuration and errors.

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::{Destination, Flow};

/// The scheduler flag bits of a service (ipvsadm's `-b`, IPVS `IP_VS_SVC_F_SCHED*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags(pub u32);

impl SchedFlags {
    /// `IP_VS_SVC_F_SCHED1` (0x0008): `sh-fallback` / `mh-fallback`.
    pub const SCHED1: u32 = 0x0008;
    /// `IP_VS_SVC_F_SCHED2` (0x0010): `sh-port` / `mh-port`.
    pub const SCHED2: u32 = 0x0010;
    /// `IP_VS_SVC_F_SCHED3` (0x0020): reserved by IPVS, unused by its schedulers.
    pub const SCHED3: u32 = 0x0020;

    /// Whether the fallback bit (SCHED1) is set.
    #[inline]
    pub fn fallback(self) -> bool {
        self.0 & Self::SCHED1 != 0
    }
    /// Whether the port bit (SCHED2) is set.
    #[inline]
    pub fn port(self) -> bool {
        self.0 & Self::SCHED2 != 0
    }

    /// Parses ipvsadm's `-b` argument: a comma-separated list of `sh-fallback`, `sh-port`,
    /// `mh-fallback`, `mh-port`, `flag-1`, `flag-2`, `flag-3`.
    pub fn parse(s: &str) -> Result<Self, SchedError> {
        let mut bits = 0;
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            bits |= match word {
                "sh-fallback" | "mh-fallback" | "flag-1" => Self::SCHED1,
                "sh-port" | "mh-port" | "flag-2" => Self::SCHED2,
                "flag-3" => Self::SCHED3,
                other => return Err(SchedError::BadFlag(other.to_string())),
            };
        }
        Ok(SchedFlags(bits))
    }
}

/// A source of random numbers for `twos`, injectable so tests and replays are deterministic.
/// Implementations must be lock-free: `below` is called on the pick path.
pub trait RandomSource: Send + Sync + fmt::Debug {
    /// A value uniformly drawn from `0..n` (`n > 0`).
    fn below(&self, n: u64) -> u64;
}

/// A lock-free SplitMix64 generator: every call advances one shared atomic state.
#[derive(Debug)]
pub struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    /// A generator with the given seed.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: AtomicU64::new(seed) }
    }

    /// The next 64-bit output.
    #[inline]
    pub fn next_u64(&self) -> u64 {
        let mut z = self.state.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl RandomSource for SplitMix64 {
    #[inline]
    fn below(&self, n: u64) -> u64 {
        // Lemire's multiply-shift: unbiased enough for scheduling, no division.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The default randomness for `twos`: a xorshift64* generator per thread (no shared state, so
/// picks on different threads never contend), each thread's stream seeded from a fixed seed and
/// the order in which threads first draw.
#[derive(Debug, Default)]
pub struct ThreadRng;

impl RandomSource for ThreadRng {
    #[inline]
    fn below(&self, n: u64) -> u64 {
        use std::cell::Cell;
        static NEXT_STREAM: AtomicU64 = AtomicU64::new(0x6c62_6b69_7420_7477);
        thread_local! {
            static STATE: Cell<u64> = const { Cell::new(0) };
        }
        STATE.with(|s| {
            let mut x = s.get();
            if x == 0 {
                x = NEXT_STREAM.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed) | 1;
            }
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            s.set(x);
            ((u128::from(x.wrapping_mul(0x2545_F491_4F6C_DD1D)) * u128::from(n)) >> 64) as u64
        })
    }
}

/// Everything a scheduler may be configured with. Defaults are IPVS's.
#[derive(Clone, Debug)]
pub struct SchedConfig {
    /// ipvsadm `-b` flags.
    pub flags: SchedFlags,
    /// `sh` table bits (`CONFIG_IP_VS_SH_TAB_BITS`, 4..=20, default 8).
    pub sh_table_bits: u8,
    /// `mh` table size: one of [`crate::mh::PRIMES`] (`CONFIG_IP_VS_MH_TAB_INDEX`, default 4093).
    pub mh_table_size: u32,
    /// `maglev` table size: any prime (default 65537, the paper's and Katran's).
    pub maglev_table_size: u32,
    /// Randomness for `twos` (default: [`ThreadRng`]; inject a [`SplitMix64`] or your own for
    /// reproducible picks).
    pub random: Arc<dyn RandomSource>,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            flags: SchedFlags::default(),
            sh_table_bits: crate::sh::DEFAULT_TAB_BITS,
            mh_table_size: crate::mh::DEFAULT_TABLE_SIZE,
            maglev_table_size: crate::maglev::DEFAULT_TABLE_SIZE,
            random: Arc::new(ThreadRng),
        }
    }
}

/// What changed in the destination list, as the IPVS hooks `add_dest`, `del_dest`, `upd_dest`
/// tell a scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A destination was added at `index` of the new list (always 0: the newest is first).
    Added {
        /// Its position in the new list.
        index: usize,
    },
    /// The destination at `index` of the old list was removed.
    Removed {
        /// Its position in the old list.
        index: usize,
    },
    /// The destination at `index` was edited (weight or thresholds).
    Edited {
        /// Its position (unchanged) in the list.
        index: usize,
    },
}

/// One scheduling algorithm, shaped like the IPVS scheduler hooks: the extension point for a
/// user's own scheduler.
///
/// A scheduler value is immutable apart from the few atomics an algorithm needs (the rr cursor,
/// the wrr mark). It is built by a constructor (a [`crate::registry::Factory`], IPVS's
/// `init_service`) from the destination list, replaced by [`Scheduler::rebuild`] whenever the
/// list changes (`add_dest`, `del_dest`, `upd_dest`), and asked to [`Scheduler::pick`]
/// (`schedule`). Register the constructor with [`crate::registry::Registry::register`], or hand
/// it to [`crate::Service::from_factory`], and it is used wherever a built-in is.
///
/// # What `pick` must guarantee
///
/// * No allocation, no blocking (no lock a writer may hold, no I/O), no panic, for any list
///   (empty, or thousands of destinations, any weights) and any flow (IPv4 or IPv6, any ports).
/// * It may be called from any number of threads at once (`&self`: state that moves, such as a
///   cursor, lives in atomics).
/// * The result is an index into the `dests` it is given (never one past the end), of an
///   *eligible* destination: [`Destination::is_eligible`], weight > 0 and no OVERLOAD.
///   Weights and OVERLOAD are atomics that change without a rebuild (a connection tracker sets
///   OVERLOAD when a destination reaches its upper threshold), so read them at pick time.
/// * `None` only when no destination is eligible, or when the algorithm's table says so: IPVS's
///   `sh`, `dh` and `mh` without `sh-fallback` / `mh-fallback` fail a pick whose bucket holds an
///   ineligible destination rather than move the flow.
///
/// # What `rebuild` must guarantee
///
/// * It returns the scheduler for the new list `dests`; [`Change`] says what changed (the
///   index of the added, removed or edited destination) so an algorithm can update rather than
///   recompute. It may allocate and may fail with a [`SchedError`] (the service then keeps its
///   old state and reports the error).
/// * It carries over the state IPVS carries across `add_dest` / `del_dest` / `upd_dest`: the rr
///   cursor (moved with its destination when one is added or removed before it), the wrr mark
///   (IPVS's `dest_changed`: the list position back to the head, the current weight kept when
///   it still fits the new maximum and step). A stateless algorithm returns a fresh value.
/// * The service publishes the list and the rebuilt scheduler together, atomically: a pick
///   always sees a list and a scheduler that belong together, and never the list of another
///   rebuild.
///
/// # Table schedulers
///
/// A scheduler that picks through a lookup table (`sh`, `dh`, `mh`, `maglev`) exposes it with
/// [`Scheduler::lookup_table`]: each entry an index into the list the scheduler was built for,
/// or `u32::MAX` for an empty slot. Tools and tests read it to measure balance and disruption.
///
/// # Checking a scheduler
///
/// With the cargo feature `conformance`, `lb_sched::conformance::check` runs a user's
/// scheduler through the properties above (eligibility, `None`, edits, no panic, concurrent
/// reconfiguration) and names the first it breaks, with a minimal failing case.
pub trait Scheduler: Send + Sync + fmt::Debug {
    /// The registry name (`"wlc"`, `"mh"`, ...).
    fn name(&self) -> &'static str;

    /// Picks a destination for a new connection of `flow`, as an index into `dests` (the list
    /// this scheduler was built or rebuilt for, in IPVS order: newest first), of an eligible
    /// destination. `None` when no destination is eligible, or when the algorithm's table
    /// says so. No allocation, no blocking, no panic; callable from any thread.
    fn pick(&self, dests: &[Arc<Destination>], flow: &Flow) -> Option<usize>;

    /// The scheduler for the changed list `dests`, carrying over whatever state IPVS carries
    /// (the rr cursor, the wrr mark). May allocate; never called on the pick path.
    fn rebuild(&self, dests: &[Arc<Destination>], change: Change) -> Result<Box<dyn Scheduler>, SchedError>;

    /// For table schedulers (sh, mh, maglev): the lookup table, each entry an index into the
    /// destination list or `u32::MAX` for an empty slot. For tools and tests.
    fn lookup_table(&self) -> Option<&[u32]> {
        None
    }
}

/// Configuration and reconfiguration errors. Picks never fail with an error: they return `None`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    /// No scheduler has that name.
    #[error("unknown scheduler {name:?}; known schedulers: {known}")]
    UnknownScheduler {
        /// The name asked for.
        name: String,
        /// The registry's names, comma separated.
        known: String,
    },
    /// An unknown `-b` flag.
    #[error("unknown scheduler flag {0:?}; known: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3")]
    BadFlag(String),
    /// The table size is not acceptable for the scheduler.
    #[error("bad table size {size} for {sched}: {why}")]
    BadTableSize {
        /// Scheduler name.
        sched: &'static str,
        /// The size given.
        size: u64,
        /// What a valid size is.
        why: &'static str,
    },
    /// More destinations than the scheduler's table can hold (IPVS: -EINVAL).
    #[error("{sched} cannot hold {count} destinations (table size {table})")]
    TooManyDestinations {
        /// Scheduler name.
        sched: &'static str,
        /// Destinations in the service.
        count: usize,
        /// The table size.
        table: u32,
    },
    /// The destination is already in the service.
    #[error("destination {0} already exists")]
    DestExists(String),
    /// No such destination in the service.
    #[error("no destination {0} in the service")]
    NoSuchDest(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipvsadm_flags() {
        assert_eq!(SchedFlags::parse("sh-fallback,sh-port").unwrap().0, 0x18);
        assert!(SchedFlags::parse("mh-port").unwrap().port());
        assert!(!SchedFlags::parse("mh-port").unwrap().fallback());
        assert_eq!(SchedFlags::parse("").unwrap().0, 0);
        assert!(matches!(SchedFlags::parse("sh-bogus"), Err(SchedError::BadFlag(w)) if w == "sh-bogus"));
    }

    #[test]
    fn random_sources_stay_in_range_and_cover_it() {
        let sources: [&dyn RandomSource; 2] = [&SplitMix64::new(1), &ThreadRng];
        for r in sources {
            let mut seen = [0u32; 7];
            for _ in 0..7000 {
                let v = r.below(7);
                assert!(v < 7);
                seen[v as usize] += 1;
            }
            // Roughly uniform: each value within 30 % of its expected 1000.
            assert!(seen.iter().all(|&c| (700..1300).contains(&c)), "{seen:?}");
        }
    }
}
