//! # lb-sched: IPVS schedulers and Maglev behind one trait
//!
//! The lowest crate of lbkit. It defines the two types every other crate uses — the 5-tuple
//! [`Flow`] and the monotonic [`Timestamp`] — and the schedulers of Linux IPVS with their exact
//! semantics (`docs/ipvs.md` §1): `rr wrr lc wlc sed nq fo ovf twos sh dh mh`, plus
//! [`maglev`], the paper's algorithm with Katran's proportional weights, and the families users
//! compare them with: [`ring`] (ketama, Envoy's RING_HASH), [`hrw`] (weighted rendezvous),
//! [`swrr`] (nginx's smooth weighted round robin), [`p2c`] (Envoy's LEAST_REQUEST) and
//! [`random`] (weighted, alias method).
//!
//! Pluggable: a [`registry::Registry`] holds the built-ins and a user's own schedulers
//! ([`registry::Registry::register`]); services, replay's pipeline and rules, and the benches
//! take schedulers from it.
//!
//! ## Contract
//!
//! * A [`Service`] holds destinations in IPVS list order (newest first: tie-breaks and table
//!   fills depend on it) and one [`Scheduler`]. Picks ([`Service::pick`]) are lock-free and
//!   allocation-free and may run on any number of threads while another thread adds, removes
//!   or edits destinations; every change is published atomically (`arc-swap`), and a pick that
//!   begins after a change returned never returns a destination that change removed or
//!   quiesced.
//! * No destination available: `None` and a counter, never a panic.
//! * [`Destination`]s carry IPVS's atomic active / inactive connection counters, thresholds and
//!   OVERLOAD flag; a connection tracker (lb-conntrack) drives them with
//!   [`Destination::bind_conn`], [`Destination::conn_moved`] and [`Destination::unbind_conn`].
//! * Every hash that decides a destination uses fixed keys and is stable across releases.
//!
//! ## Cargo features
//!
//! * `internals` (off by default, **unstable**): the module `internals`, which exposes the
//!   schedulers' building blocks (the fixed hashes, the mh and maglev table builders) for
//!   lbkit's benchmarks and known-answer tests. It follows no semver promise.
//! * `harness` (off by default): the module `harness`, the scheduler quality harness —
//!   balance, weight accuracy, disruption and build time of any scheduler, a built-in or your
//!   own registered in a [`registry::Registry`], with table, JSON and SVG output (adds serde,
//!   serde_json and plotters).
//! * `harness-criterion` (off by default): `harness` plus `harness::bench_pick` and
//!   `harness::bench_rebuild`, criterion helpers that bench a scheduler the way lbkit's own
//!   `sched` bench does (adds criterion).
//! * `conformance` (off by default): the module `conformance`, a property-test kit any
//!   [`Scheduler`] (a user's own too) can be run through: eligibility of every pick, `None`
//!   only when nothing is eligible, quiescing and OVERLOAD honoured after edits, no panic, and
//!   no removed destination picked while another thread reconfigures. It pulls in `proptest`.
//!
//! ```
//! use lb_sched::{DestConfig, Flow, Protocol, SchedConfig, Service};
//! let svc = Service::new("wrr", SchedConfig::default()).unwrap();
//! svc.add(DestConfig::new("10.0.0.2".parse().unwrap(), 80).weight(2)).unwrap();
//! svc.add(DestConfig::new("10.0.0.1".parse().unwrap(), 80).weight(1)).unwrap();
//! let flow = Flow::v4(Protocol::Tcp, "192.0.2.7".parse().unwrap(), 40000, "198.51.100.1".parse().unwrap(), 80);
//! let picks: Vec<_> = (0..300).map(|_| svc.pick(&flow).unwrap().addr().to_string()).collect();
//! assert_eq!(picks.iter().filter(|a| *a == "10.0.0.2").count(), 200);
//! assert_eq!(picks.iter().filter(|a| *a == "10.0.0.1").count(), 100);
//! ```
#![forbid(unsafe_code)]

mod dest;
mod flow;
mod hash;
pub mod registry;
mod sched;
mod service;
mod tcp_flags;
mod time;
mod walk;

#[cfg(feature = "internals")]
pub mod internals;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "harness")]
pub mod harness;

pub mod dh;
pub mod fo;
pub mod hrw;
pub mod lc;
pub mod maglev;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod p2c;
pub mod random;
pub mod ring;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod swrr;
pub mod twos;
pub mod wlc;
pub mod wrr;

pub use dest::{flags, DestConfig, DestId, Destination, ForwardMethod};
pub use flow::{fold_addr, fold_mul, proto, Flow, Protocol};
pub use sched::{Change, RandomSource, SchedConfig, SchedError, SchedFlags, Scheduler, SplitMix64, ThreadRng};
pub use service::{Service, ServiceReader, Snapshot, SnapshotGuard};
pub use tcp_flags::TcpFlags;
pub use time::Timestamp;

/// The README's example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
