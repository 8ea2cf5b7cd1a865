//! The registry: scheduler names to constructors, as IPVS's `register_ip_vs_scheduler` keeps
//! them (`ip_vs_sched.c`). [`Registry::builtin`] holds lbkit's schedulers ([`SCHEDULERS`]); a
//! user's own registers beside them with [`Registry::register`] and is then used by name
//! everywhere a built-in is: [`crate::Service::from_registry`], replay's pipeline and rules, the
//! benches and the quality harness.
//!
//! ```
//! use std::sync::Arc;
//! use lb_sched::registry::Registry;
//! use lb_sched::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler, Service};
//!
//! /// Always the first eligible destination in list order.
//! #[derive(Debug)]
//! struct First;
//! impl Scheduler for First {
//!     fn name(&self) -> &'static str { "first" }
//!     fn pick(&self, dests: &[Arc<Destination>], _: &Flow) -> Option<usize> {
//!         dests.iter().position(|d| d.is_eligible())
//!     }
//!     fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
//!         Ok(Box::new(First))
//!     }
//! }
//!
//! let mut registry = Registry::default();
//! registry.register("first", |_cfg: &SchedConfig, _dests: &[Arc<Destination>]| Ok(Box::new(First) as Box<dyn Scheduler>))?;
//! let svc = Service::from_registry(&registry, "first", SchedConfig::default())?;
//! assert_eq!(&*svc.scheduler_name(), "first");
//! assert!(registry.names().any(|n| n == "wlc"), "the built-ins are there too");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use std::sync::{Arc, OnceLock};

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

/// A scheduler constructor as a registry holds it: a built-in's function or a user's closure.
/// Called when a service is created or its scheduler replaced, never on the pick path.
pub type Factory =
    Arc<dyn Fn(&SchedConfig, &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> + Send + Sync>;

/// The longest scheduler name (IPVS's `IP_VS_SCHEDNAME_MAXLEN` is 16 with its NUL).
pub const MAX_NAME_LEN: usize = 15;

/// Why [`Registry::register`] refused a scheduler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is taken (by a built-in or an earlier registration).
    #[error("a scheduler named {0:?} is already registered")]
    Duplicate(String),
    /// The name is not 1 to 15 lower-case letters, digits, `-` or `_`, starting with a letter.
    #[error("{0:?} is not a scheduler name: 1 to 15 lower-case letters, digits, '-' or '_', starting with a letter")]
    BadName(String),
}

/// Scheduler names and their constructors: the built-ins, and whatever a user registers.
#[derive(Clone)]
pub struct Registry {
    entries: Vec<(Arc<str>, Factory)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Default for Registry {
    /// The built-in schedulers.
    fn default() -> Self {
        Registry::builtin().clone()
    }
}

impl Registry {
    /// The built-in schedulers ([`SCHEDULERS`]), shared.
    pub fn builtin() -> &'static Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| Registry {
            entries: SCHEDULERS.iter().map(|&(n, c)| (Arc::from(n), Arc::new(c) as Factory)).collect(),
        })
    }

    /// A registry with no scheduler at all.
    pub fn empty() -> Self {
        Registry { entries: Vec::new() }
    }

    /// Registers `factory` under `name`.
    pub fn register<F>(&mut self, name: &str, factory: F) -> Result<&mut Self, RegistryError>
    where
        F: Fn(&SchedConfig, &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> + Send + Sync + 'static,
    {
        self.register_factory(name, Arc::new(factory))
    }

    /// Registers an already shared [`Factory`] under `name`.
    pub fn register_factory(&mut self, name: &str, factory: Factory) -> Result<&mut Self, RegistryError> {
        let valid = (1..=MAX_NAME_LEN).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(RegistryError::BadName(name.to_string()));
        }
        if self.entries.iter().any(|(n, _)| &**n == name) {
            return Err(RegistryError::Duplicate(name.to_string()));
        }
        self.entries.push((Arc::from(name), factory));
        Ok(self)
    }

    /// The names, in registration order (the built-ins first).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| &**n)
    }

    /// The constructor registered as `name`; an unknown name lists the known ones.
    pub fn get(&self, name: &str) -> Result<Factory, SchedError> {
        self.entries.iter().find(|(n, _)| &**n == name).map(|(_, f)| Arc::clone(f)).ok_or_else(|| {
            SchedError::UnknownScheduler { name: name.to_string(), known: self.names().collect::<Vec<_>>().join(", ") }
        })
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| &**n == name)
    }

    /// Builds the scheduler `name` for `dests`.
    pub fn build(
        &self,
        name: &str,
        cfg: &SchedConfig,
        dests: &[Arc<Destination>],
    ) -> Result<Box<dyn Scheduler>, SchedError> {
        self.get(name)?(cfg, dests)
    }
}

/// The built-ins' names.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wlc(cfg: &SchedConfig, d: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
        crate::wlc::build(cfg, d)
    }

    #[test]
    fn names_are_checked_and_unique() {
        let mut r = Registry::default();
        assert_eq!(r.register("wlc", wlc).unwrap_err(), RegistryError::Duplicate("wlc".into()));
        for bad in ["", "Wlc", "9lives", "has space", "much-too-long-name", "ünï"] {
            assert_eq!(r.register(bad, wlc).unwrap_err(), RegistryError::BadName(bad.into()), "{bad:?}");
        }
        r.register("my-wlc_2", wlc).unwrap();
        assert!(r.contains("my-wlc_2"));
        assert_eq!(r.names().last(), Some("my-wlc_2"));
        assert!(r.register("my-wlc_2", wlc).is_err(), "twice");
        assert!(!Registry::builtin().contains("my-wlc_2"), "the built-ins are not changed");
    }

    #[test]
    fn unknown_names_list_what_the_registry_holds() {
        let mut r = Registry::empty();
        r.register("mine", wlc).unwrap();
        let e = r.get("wlc").err().unwrap().to_string();
        assert_eq!(e, "unknown scheduler \"wlc\"; known schedulers: mine");
        assert!(Registry::builtin().build("wlc", &SchedConfig::default(), &[]).is_ok());
    }
}
