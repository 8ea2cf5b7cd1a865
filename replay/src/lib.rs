//! # lb-replay: the lbkit pipeline, and the `replay` tool built on it
//!
//! Without default features this crate is the sans-IO data path and nothing else:
//!
//! * [`pipeline`]: parse, service lookup, connection tracking, scheduling, rewriting — one
//!   frame in, one [`pipeline::Outcome`] out, every drop counted by a typed
//!   [`pipeline::DropReason`]. Embed it to build a data plane: it owns no clock, socket or
//!   thread (see `examples/embed.rs`).
//! * [`config`]: services and backends as values (and from flags); [`rules`]: services from
//!   `ipvsadm-save -n` rules.
//!
//! Feature `cli` (default) adds what the `replay` binary is made of:
//!
//! * `args`: the command-line flags `replay` and `director` share (services, IPVS's knobs).
//! * `capture`: pcap / pcapng in (every link type turned into Ethernet), pcap out.
//! * `run`: the replay driver (workers, pacing, `--at` events, progress bar) and `report` its
//!   result as text or JSON.
//!
//! Feature `xdp` (default, Linux only) adds `xdp`: AF_XDP sockets (transmit, and receive for
//! the director), the director's own XDP program (raw eBPF loaded through `bpf()`) and its live
//! next hops (routes and neighbours over rtnetlink) — the only module with `unsafe` code (behind a
//! safe API). With both features the package builds a second binary, `director`.
#![deny(unsafe_code)]

#[cfg(feature = "cli")]
pub mod args;
#[cfg(feature = "cli")]
pub mod capture;
pub mod config;
pub mod pipeline;
#[cfg(feature = "cli")]
pub mod report;
pub mod rules;
#[cfg(feature = "cli")]
pub mod run;
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub mod xdp;

/// The README's example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
