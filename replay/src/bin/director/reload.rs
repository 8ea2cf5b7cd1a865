//! SIGHUP: the rules file read again and the differences applied with IPVS's semantics, as
//! `ipvsadm` edits would: an added real server takes new connections, a removed one keeps its
//! connections in the table but their packets are dropped (unless `--expire-nodest-conn`
//! reschedules them), a changed weight applies to new connections (0 drains); an added virtual
//! service takes new connections, a removed one takes none. A file that does not read or parse
//! changes nothing.

use std::path::Path;
use std::time::Duration;

use lb_replay::config::{ServiceSpec, Vip};
use lb_replay::pipeline::{Action, Pipeline};
use lb_sched::registry::Registry;

/// What a reload does: the changes within running services, and the services to add and to
/// remove (which the pipeline takes while no worker runs).
#[derive(Debug, Default)]
pub struct Plan {
    /// Per service index: real servers to add, remove, reweight.
    pub actions: Vec<(usize, Action)>,
    /// Services new in the rules.
    pub added: Vec<ServiceSpec>,
    /// Services gone from the rules.
    pub removed: Vec<Vip>,
}

/// What a reload did: one line per change, and what it could not do.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// The changes applied.
    pub applied: Vec<String>,
    /// Changes refused.
    pub refused: Vec<String>,
}

impl Reloaded {
    /// The report's events, each at `at`.
    pub fn events(self, at: Duration) -> Vec<(Duration, String, Result<String, String>)> {
        let mut v: Vec<_> = self.applied.into_iter().map(|a| (at, "reload".to_string(), Ok(a))).collect();
        v.extend(self.refused.into_iter().map(|a| (at, "reload".to_string(), Err(a))));
        v
    }
}

/// The plan that turns the running services into `new`: per live service (by its virtual
/// address), the real servers to add, to remove and to reweight; the services to add and remove.
pub fn diff(pipe: &Pipeline, new: &[ServiceSpec]) -> Plan {
    let mut plan = Plan::default();
    for spec in new {
        let Some(si) = pipe.services().iter().position(|rt| !rt.is_removed() && rt.vip == spec.vip) else {
            plan.added.push(spec.clone());
            continue;
        };
        let running = pipe.services()[si].svc.destinations();
        for b in &spec.backends {
            match running.iter().find(|d| d.addr() == b.addr) {
                None => plan.actions.push((si, Action::Add(b.clone()))),
                Some(d) if d.weight() != b.weight => plan.actions.push((si, Action::Weight(b.addr, b.weight))),
                Some(_) => {}
            }
        }
        for d in running.iter() {
            if !spec.backends.iter().any(|b| b.addr == d.addr()) {
                plan.actions.push((si, Action::Remove(d.addr())));
            }
        }
    }
    plan.removed = pipe
        .services()
        .iter()
        .filter(|rt| !rt.is_removed() && !new.iter().any(|s| s.vip == rt.vip))
        .map(|rt| rt.vip)
        .collect();
    plan
}

/// Reads `path` again and works out the plan; on a bad file, the error says why.
pub fn plan(pipe: &Pipeline, path: &Path) -> Result<Plan, String> {
    let new = lb_replay::rules::read(path).map_err(|e| e.to_string())?;
    Ok(diff(pipe, &new))
}

/// Applies the changes within running services.
pub fn apply_actions(pipe: &Pipeline, actions: &[(usize, Action)]) -> Reloaded {
    let mut r = Reloaded::default();
    for (si, a) in actions {
        match pipe.apply_in(*si, a) {
            Ok(done) => r.applied.extend(done),
            Err(e) => r.refused.push(format!("{a:?}: {e}")),
        }
    }
    r
}

/// Removes and adds services (no worker may run: `&mut`), the removed first, so a service can
/// be replaced by one of the same address.
pub fn apply_services(pipe: &mut Pipeline, added: &[ServiceSpec], removed: &[Vip]) -> Reloaded {
    let mut r = Reloaded::default();
    for v in removed {
        if pipe.remove_service(v) {
            r.applied.push(format!("service {v} removed"));
        }
    }
    for spec in added {
        match pipe.add_service(spec, Registry::builtin()) {
            Ok(_) => r.applied.push(format!("service {} added ({} real servers)", spec.vip, spec.backends.len())),
            Err(e) => r.refused.push(format!("service {}: {e}", spec.vip)),
        }
    }
    r
}
