//! # lb-conntrack: IPVS's connection tracker, concurrent and bounded
//!
//! A connection table keyed by (protocol, client address and port, virtual address and port),
//! IPv4 and IPv6, with the reverse lookup NAT replies need, driven by IPVS's TCP state machine
//! as const data ([`tcp`]): the normal and secure_tcp tables, each with INPUT, OUTPUT and
//! INPUT-ONLY rows (docs/ipvs.md §2). INPUT-ONLY is used for half connections (DR, TUN,
//! local), where the director sees only client → server packets; an OUTPUT packet turns a half
//! connection into a full one, as IPVS does.
//!
//! ## Contract
//! * Time is always an argument (`now`): the crate never reads a clock.
//! * [`ConnTable::input`] is IPVS's `ip_vs_in` for one packet: lookup, reuse and
//!   removed-destination checks (`conn_reuse_mode`, `expire_nodest_conn`), the creation rules
//!   (SYN creates, RST never, non-SYN only with `sloppy_tcp`, any UDP), persistence templates,
//!   one-packet scheduling, scheduling through an [`lb_sched::Service`], and the state
//!   transition. Every outcome is an [`InVerdict`] variant.
//! * Active / inactive accounting: every insert, state change and removal keeps each
//!   destination's counters ([`lb_sched::Destination::active_conns`], `inactive_conns`) equal to
//!   what the table holds (current kernels: ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK are
//!   active; UDP is always inactive), so lc / wlc / sed / nq see the true load.
//! * Expiry costs what expires ([`ConnTable::expire`] visits queue entries that are due, never
//!   the whole table). Bounded size with a documented eviction policy ([`ConnTable`]).
//! * No global lock; the per-packet path does not allocate (except when a shard's slab or
//!   index grows) and never panics.
//! * Per-worker storage: [`ConnTable::partition`] makes a [`Partition`], the same table owned by
//!   one thread, whose packets take no lock at all; the partitions of a table share its bound
//!   and the destinations' counts ([`ConnTable`], "Partitions").
//!
//! ```
//! use lb_conntrack::{Config, ConnTable, InVerdict, ServiceParams, State};
//! use lb_sched::{DestConfig, Flow, Protocol, SchedConfig, Service, TcpFlags, Timestamp};
//!
//! let svc = Service::new("wlc", SchedConfig::default()).unwrap();
//! svc.add(DestConfig::new("10.0.0.1".parse().unwrap(), 80)).unwrap();
//! let table = ConnTable::new(Config::default());
//! let flow = Flow::v4(Protocol::Tcp, "192.0.2.1".parse().unwrap(), 40000, "198.51.100.1".parse().unwrap(), 80);
//! let t0 = Timestamp::from_secs(1);
//! let InVerdict::Forward(c) = table.input(t0, &flow, TcpFlags::SYN, &svc, &ServiceParams::default()) else { panic!() };
//! assert!(c.created);
//! assert_eq!(c.state, State::SynRecv); // DR (the default method): INPUT-ONLY row
//! assert_eq!(svc.destinations()[0].active_conns(), 1);
//! ```
#![forbid(unsafe_code)]

mod capacity;
mod config;
mod entry;
mod expire;
mod index;
mod inspect;
mod key;
mod lock;
mod shard;
mod table;
pub mod tcp;
mod template;
mod timers;
mod verdict;

pub use config::{Config, Persistence, ServiceParams, TimeoutError, Timeouts, EVICTION_PROBES, MAX_TIMEOUT_SECS};
pub use lock::{Locked, Owned, ShardLock};
pub use table::{ConnTable, Partition};
pub use tcp::State;
pub use verdict::{ConnInfo, ExpireStats, InVerdict, NotScheduled, OutVerdict, Stats};

/// The README's example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
