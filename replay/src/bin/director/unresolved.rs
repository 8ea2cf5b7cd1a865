//! Real servers whose next hop cannot be resolved: reported, and skipped by the schedulers
//! (quiesced: weight 0, so they take no new connection) until they resolve, when their weight
//! comes back. Checked off the packet path, once a second.

use std::collections::HashMap;
use std::net::IpAddr;

use lb_replay::pipeline::{Action, LiveNextHops, Pipeline};
use lb_replay::xdp::{NextHops, Unresolved};

/// The real servers held at weight 0, with the weight each had.
#[derive(Debug, Default)]
pub struct Held {
    weights: HashMap<(usize, IpAddr), u32>,
}

fn addr_of(u: &Unresolved) -> IpAddr {
    match u {
        Unresolved::NoRoute { addr } | Unresolved::NoNeighbour { addr, .. } => *addr,
    }
}

impl Held {
    /// Checks every real server that has no static next hop (`fixed` says which do): one that
    /// cannot be resolved is reported and quiesced; one held that resolves gets its weight back.
    /// The lines to print.
    pub fn check(&mut self, pipe: &Pipeline, hops: &NextHops, fixed: &dyn Fn(IpAddr) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        let mut addrs: Vec<IpAddr> = pipe
            .services()
            .iter()
            .flat_map(|s| s.svc.destinations())
            .map(|d| d.addr())
            .filter(|a| !fixed(*a))
            .collect();
        addrs.sort();
        addrs.dedup();
        let bad = hops.unresolved(&addrs);
        for (si, rt) in pipe.services().iter().enumerate() {
            for d in rt.svc.destinations() {
                let a = d.addr();
                let why = bad.iter().find(|u| addr_of(u) == a);
                match (why, self.weights.get(&(si, a)).copied()) {
                    (Some(u), None) => {
                        let w = d.weight();
                        if pipe.apply_in(si, &Action::Weight(a, 0)).is_ok() {
                            self.weights.insert((si, a), w);
                            lines.push(format!("{u}; skipped in {} until it resolves", rt.vip));
                        }
                    }
                    // Reweighted by a reload while held: held again, at the new weight.
                    (Some(_), Some(_)) if d.weight() != 0 => {
                        let w = d.weight();
                        if pipe.apply_in(si, &Action::Weight(a, 0)).is_ok() {
                            self.weights.insert((si, a), w);
                        }
                    }
                    (None, Some(w)) if hops.mac_toward(a).is_some() => {
                        self.weights.remove(&(si, a));
                        // The operator may have set a weight meanwhile (a reload): keep theirs.
                        let w = if d.weight() != 0 { d.weight() } else { w };
                        if pipe.apply_in(si, &Action::Weight(a, w)).is_ok() {
                            lines.push(format!("{a} resolved: weight {w} again in {}", rt.vip));
                        }
                    }
                    _ => {}
                }
            }
        }
        lines
    }
}
