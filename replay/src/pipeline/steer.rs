//! Steering: which worker a frame belongs to, so that each worker owns its connections.
//!
//! [`Pipeline::steer`] finds a frame's client side (the source of a request to a virtual
//! service, the destination of a reply from one; for an ICMP error, the connection of the
//! packet it quotes) and returns the worker that owns it. Every packet of a connection, in both
//! directions, and every ICMP error about it, reaches the same worker. With workers that own
//! their connections ([`Worker::owning`](super::Worker::owning): a partition of the table each,
//! no lock) that is what makes them correct; with workers on the shared table it is for speed:
//! the worker is the one that owns the client's lock shard of the table
//! ([`lb_conntrack::ConnTable::shard_of`], shard `s` belongs to worker `s % workers`), so no lock
//! or table cache line moves between their cores (any worker may process any frame correctly).
//!
//! A service with persistence keeps a client on one worker: its frames are steered by the
//! client's address under the persistence netmask, port 0, so its template and all its
//! connections are met by one worker. Frames no service claims by address (a catch-all
//! `--vip any` service, which tells a reply from a request only by the table) go by a symmetric
//! hash of their flow (both directions together), which keeps a connection on one worker but
//! not a client: a persistent catch-all service cannot be partitioned
//! ([`Pipeline::can_partition`]). When there are more workers than shards, a symmetric hash of
//! the client side stands in for the shard.

use std::net::IpAddr;

use lb_rewrite::parse;
use lb_sched::{fold_mul, Flow};

use super::Pipeline;

impl Pipeline {
    /// The worker, of `workers`, that owns the connection `frame` belongs to (see the module's
    /// notes). A frame that does not parse goes to worker 0. Does not allocate or lock.
    pub fn steer(&self, frame: &[u8], workers: usize) -> usize {
        if workers <= 1 {
            return 0;
        }
        let Ok(p) = parse(frame) else { return 0 };
        // ICMP errors go with the connection they quote.
        let flow = p.quote(frame).map_or(p.flow(), |q| *q.flow());
        let shards = self.table.shard_count();
        match self.client_side(&flow) {
            Some(f) => match self.table.shard_of(&f) {
                Some(shard) if shards >= workers => shard % workers,
                _ => (symmetric_hash(&f) % workers as u64) as usize,
            },
            None => (symmetric_hash(&flow) % workers as u64) as usize,
        }
    }

    /// Whether [`Pipeline::steer`] keeps every connection and every persistent client on one
    /// worker, so that workers may own their connections ([`Worker::owning`](super::Worker::owning)):
    /// true unless a catch-all service (`--vip any`) has persistence (its clients are told from
    /// the addresses they talk to only by the table).
    pub fn can_partition(&self) -> bool {
        !self.any.iter().flatten().any(|&i| self.services[i].params.persistence.is_some())
    }

    /// `flow` as its client sent it (client → virtual service), when a service claims it by
    /// address: a request as it is, a reply reversed; for a persistent service, from the
    /// client's persistence-masked address and port 0.
    fn client_side(&self, flow: &Flow) -> Option<Flow> {
        let (si, mut f) = self.service_flow(flow)?;
        if let Some(p) = self.services[si].params.persistence {
            f.src = masked(f.src, p.v4_prefix, p.v6_prefix);
            f.src_port = 0;
        }
        Some(f)
    }

    /// The service that claims `flow` by address, and `flow` as its client sends it (a request
    /// as it is, a reply reversed).
    #[inline]
    pub(super) fn service_flow(&self, flow: &Flow) -> Option<(usize, Flow)> {
        if let Some(si) = self.lookup_vip(flow.proto, flow.dst, flow.dst_port) {
            Some((si, *flow))
        } else {
            self.lookup_vip(flow.proto, flow.src, flow.src_port).map(|si| (si, flow.reversed()))
        }
    }
}

/// `a` with only its first `v4` (IPv4) or `v6` (IPv6) bits kept.
fn masked(a: IpAddr, v4: u8, v6: u8) -> IpAddr {
    match a {
        IpAddr::V4(x) => {
            let m = if v4 == 0 { 0 } else { u32::MAX << (32 - u32::from(v4.min(32))) };
            IpAddr::V4((u32::from(x) & m).into())
        }
        IpAddr::V6(x) => {
            let m = if v6 == 0 { 0 } else { u128::MAX << (128 - u32::from(v6.min(128))) };
            IpAddr::V6((u128::from(x) & m).into())
        }
    }
}

/// A hash of `flow` that is the same for both of its directions.
fn symmetric_hash(flow: &Flow) -> u64 {
    let word = |a: IpAddr| match a {
        IpAddr::V4(x) => u128::from(u32::from(x)),
        IpAddr::V6(x) => u128::from(x),
    };
    let a = (word(flow.src), flow.src_port);
    let b = (word(flow.dst), flow.dst_port);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let x = fold_mul(lo.0 as u64 ^ (hi.0 >> 64) as u64, (lo.0 >> 64) as u64 ^ hi.0 as u64 ^ 0x9e37_79b9_7f4a_7c15);
    fold_mul(
        x ^ (u64::from(lo.1) << 32 | u64::from(hi.1) << 16 | u64::from(flow.proto.number())),
        0x2545_f491_4f6c_dd1d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_sched::Protocol;

    #[test]
    fn the_symmetric_hash_is_the_same_both_ways_and_spreads() {
        let f = |s: u32, sp: u16| Flow::v4(Protocol::Tcp, s.into(), sp, 0xc000_020a.into(), 80);
        let mut per = [0u32; 4];
        for i in 0..4000u32 {
            let a = f(0xcb00_7100 + i, 10_000 + i as u16);
            assert_eq!(symmetric_hash(&a), symmetric_hash(&a.reversed()));
            per[(symmetric_hash(&a) % 4) as usize] += 1;
        }
        assert!(per.iter().all(|&n| (800..1200).contains(&n)), "{per:?}");
    }

    #[test]
    fn masking_keeps_the_prefix() {
        assert_eq!(masked("198.51.100.77".parse().unwrap(), 24, 128), "198.51.100.0".parse::<IpAddr>().unwrap());
        assert_eq!(masked("2001:db8::1".parse().unwrap(), 32, 32), "2001:db8::".parse::<IpAddr>().unwrap());
        assert_eq!(masked("198.51.100.77".parse().unwrap(), 0, 0), "0.0.0.0".parse::<IpAddr>().unwrap());
    }
}
