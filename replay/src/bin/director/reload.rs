//! SIGHUP: the rules file read again and the differences applied with IPVS's semantics, as
//! `ipvsadm` edits would: an added real server takes new connections, a removed one keeps its
//! established connections (unless `--expire-nodest-conn`), a changed weight applies to new
//! connections (0 drains). A file that does not read or parse changes nothing.

use std::path::Path;

use lb_replay::config::{ServiceSpec, Vip};
use lb_replay::pipeline::{Action, Pipeline};

/// What a reload did: one line per change, and what it could not do.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// The changes applied.
    pub applied: Vec<String>,
    /// Changes refused or not possible while running.
    pub refused: Vec<String>,
}

/// The actions that turn the running services into `new`: per service (by its virtual
/// address), the real servers to add, to remove and to reweight. Services that appear or go
/// away are returned apart (`(added, removed)`): the set of services is fixed while the director
/// runs.
pub fn diff(pipe: &Pipeline, new: &[ServiceSpec]) -> (Vec<(usize, Action)>, Vec<Vip>, Vec<Vip>) {
    let mut actions = Vec::new();
    let mut added = Vec::new();
    for spec in new {
        let Some(si) = pipe.services().iter().position(|rt| rt.vip == spec.vip) else {
            added.push(spec.vip);
            continue;
        };
        let running = pipe.services()[si].svc.destinations();
        for b in &spec.backends {
            match running.iter().find(|d| d.addr() == b.addr) {
                None => actions.push((si, Action::Add(b.clone()))),
                Some(d) if d.weight() != b.weight => actions.push((si, Action::Weight(b.addr, b.weight))),
                Some(_) => {}
            }
        }
        for d in running.iter() {
            if !spec.backends.iter().any(|b| b.addr == d.addr()) {
                actions.push((si, Action::Remove(d.addr())));
            }
        }
    }
    let removed = pipe.services().iter().filter(|rt| !new.iter().any(|s| s.vip == rt.vip)).map(|rt| rt.vip).collect();
    (actions, added, removed)
}

/// Reads `path` again and applies the differences to `pipe`; on a bad file, nothing changes
/// and the error says why.
pub fn reload(pipe: &Pipeline, path: &Path) -> Result<Reloaded, String> {
    let new = lb_replay::rules::read(path).map_err(|e| e.to_string())?;
    let (actions, added, removed) = diff(pipe, &new);
    let mut r = Reloaded::default();
    for (si, a) in &actions {
        match pipe.apply_in(*si, a) {
            Ok(done) => r.applied.extend(done),
            Err(e) => r.refused.push(format!("{a:?}: {e}")),
        }
    }
    for v in added {
        r.refused.push(format!("service {v} is new in the rules: restart the director to take it"));
    }
    for v in removed {
        r.refused.push(format!("service {v} is gone from the rules: restart the director to drop it"));
    }
    Ok(r)
}
