//! The sans-IO pipeline: one frame in, one verdict out.
//!
//! ```text
//! parse ─► service lookup (VIP, port, protocol) ─► request or reply?
//!   request: conntrack input (hit: state transition; miss: may it open a connection? schedule,
//!            insert) ─► rewrite for the connection's method (NAT dnat / DR / TUN)
//!   reply:   DR/TUN: the director never sees it (replies_skipped); NAT: conntrack output with
//!            the real server's tuple, then SNAT back to the virtual service
//!   ICMP error about a connection: NAT rewrites its quoted header; DR/TUN forward it
//! ```
//!
//! The pipeline owns no clock, socket or thread: the caller gives `now` (a capture's timestamp
//! or a monotonic clock) and a frame buffer with headroom, and gets an [`Outcome`]. Every frame
//! ends in exactly one outcome; every drop has a reason. ICMP errors the director builds (time
//! exceeded, fragmentation needed / packet too big) and IPv4 fragments go to the caller's sink.
//!
//! The shared part ([`Pipeline`]: services, connection table, next hops) is `Sync`; each worker
//! thread processes through its own [`Worker`], whose counters are merged at the end.
//! [`Pipeline::steer`] says which worker a frame belongs to, so that each worker owns its
//! connections (both directions of each, and the ICMP errors about it).
//!
//! Read in call order: the [`Counters`] and [`DropReason`] (what is counted), the
//! service set ([`Pipeline`]: built from a [`PipelineConfig`], looked up per packet, changed by
//! [`Action`]s), and the [`Worker`] (one frame through it all).

mod burst;
mod counters;
mod drop;
mod reconfig;
mod services;
mod steer;
mod worker;

pub use burst::{recycle_burst, BurstOutput, BURST, WARM_FROM};
pub use counters::{Counters, DestCounters};
pub use drop::{DropCounts, DropReason, OutputError};
pub use services::{Action, ApplyError, ConfigError, LiveNextHops, Pipeline, PipelineConfig, RtService};
pub use worker::Worker;

/// What happened to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Rewritten in place: send the buffer's frame.
    Forwarded,
    /// Forwarded as IPv4 fragments, already handed to the sink.
    Fragmented(u16),
    /// A reply of a DR/TUN connection: the director never sees those.
    ReplySkipped,
    /// Dropped, for this reason (an ICMP reply may have gone to the sink).
    Dropped(DropReason),
}
