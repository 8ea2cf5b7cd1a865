//! # lb-replay: the lbkit pipeline, and the `replay` tool built on it
//!
//! * [`pipeline`]: the sans-IO data path — parse, service lookup, connection tracking,
//!   scheduling, rewriting — one frame in, one [`pipeline::Outcome`] out. Embed it to build a
//!   data plane: it owns no clock, socket or thread.
//! * [`rules`]: services from `ipvsadm-save -n` rules; [`config`]: services from flags.
//! * [`capture`]: pcap / pcapng in (every link type turned into Ethernet), pcap out.
//! * [`run`]: the replay driver (workers, pacing, `--at` events) and [`report`] its result.
//! * [`xdp`]: AF_XDP transmit, the only module with `unsafe` code (behind a safe API).
#![deny(unsafe_code)]

pub mod capture;
pub mod config;
pub mod pipeline;
pub mod report;
pub mod rules;
pub mod run;
pub mod xdp;
