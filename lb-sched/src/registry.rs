//! The registry: IPVS scheduler names to constructors (`ip_vs_sched.c`'s list).

use std::sync::Arc;

use crate::{Destination, SchedConfig, SchedError, Scheduler};

/// A scheduler constructor (`init_service`): builds the scheduler for a destination list.
pub type Constructor = fn(&SchedConfig, &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError>;

/// Every scheduler, by name: IPVS's in the order `ipvsadm --help` lists them, then lbkit's own.
pub const SCHEDULERS: &[(&str, Constructor)] = &[
    ("rr", crate::rr::build),
    ("wrr", crate::wrr::build),
    ("lc", crate::lc::build),
    ("wlc", crate::wlc::build),
    ("sed", crate::sed::build),
    ("nq", crate::nq::build),
    ("fo", crate::fo::build),
    ("ovf", crate::ovf::build),
    ("twos", crate::twos::build),
    ("sh", crate::sh::build),
    ("dh", crate::dh::build),
    ("mh", crate::mh::build),
    ("maglev", crate::maglev::build),
    // Beyond IPVS: ketama, rendezvous, nginx smooth wrr, Envoy least-request, alias random.
    ("ring", crate::ring::build),
    ("hrw", crate::hrw::build),
    ("swrr", crate::swrr::build),
    ("p2c", crate::p2c::build),
    ("random", crate::random::build),
];

/// The registry's names.
pub fn names() -> impl Iterator<Item = &'static str> {
    SCHEDULERS.iter().map(|(n, _)| *n)
}

/// The constructor registered under `name`.
pub fn lookup(name: &str) -> Result<Constructor, SchedError> {
    SCHEDULERS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).ok_or_else(|| SchedError::UnknownScheduler {
        name: name.to_string(),
        known: names().collect::<Vec<_>>().join(", "),
    })
}

/// Builds the scheduler `name` for `dests`.
pub fn build(name: &str, cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    lookup(name)?(cfg, dests)
}
