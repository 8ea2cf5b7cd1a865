//! replay's own flags checked: ranges, `--at` targets, and the flags that have no effect in the
//! configuration given (a warning each). The shared flags are `lb_replay::args`.

use anyhow::{bail, Result};
use lb_replay::config::ServiceSpec;
use lb_sched::ForwardMethod;

use super::Cli;
/// The range of `--multiplier`.
pub(crate) const MULTIPLIER: (f64, f64) = (1e-3, 1e6);
/// The highest `--pps`.
pub(crate) const MAX_PPS: f64 = 1e9;
/// The longest `--maxsleep`, in seconds (a day).
pub(crate) const MAX_SLEEP: f64 = 86_400.0;

/// Refuses a value of replay's own flags out of its range (exit 2, naming the flag and the
/// range); the shared flags are checked by [`lb_replay::args::ServiceArgs::services`].
pub(crate) fn check_ranges(cli: &Cli) -> Result<()> {
    if let Some(pps) = cli.pps {
        if !(pps > 0.0 && pps <= MAX_PPS) {
            bail!("--pps {pps:?}: more than 0 and at most {MAX_PPS:?}");
        }
    }
    if let Some(m) = cli.multiplier {
        if !(MULTIPLIER.0..=MULTIPLIER.1).contains(&m) {
            bail!("--multiplier {m:?}: from {:?} to {:?}", MULTIPLIER.0, MULTIPLIER.1);
        }
    }
    if let Some(s) = cli.maxsleep {
        if !(0.0..=MAX_SLEEP).contains(&s) {
            bail!("--maxsleep {s:?}: from 0 to {MAX_SLEEP:?} seconds");
        }
    }
    Ok(())
}

/// Refuses an `--at` event whose target no service has: drain, weight and remove name a real
/// server of some service, or one an earlier `--at add=` adds.
pub(crate) fn check_event_targets(events: &[lb_replay::run::Event], services: &[ServiceSpec]) -> Result<()> {
    use lb_replay::pipeline::Action;
    let mut known: Vec<std::net::IpAddr> = services.iter().flat_map(|s| s.backends.iter().map(|b| b.addr)).collect();
    let mut ordered: Vec<&lb_replay::run::Event> = events.iter().collect();
    ordered.sort_by_key(|e| e.at);
    for e in ordered {
        match &e.action {
            Action::Add(b) => known.push(b.addr),
            Action::Drain(a) | Action::Weight(a, _) | Action::Remove(a) => {
                if !known.contains(a) {
                    bail!(
                        "--at {:?}: {a} is not a real server of any service (nor added by an earlier --at add=)",
                        e.text
                    );
                }
            }
        }
    }
    Ok(())
}

/// The flags given that change nothing in this configuration, each with why.
pub(crate) fn no_effect(cli: &Cli, services: &[ServiceSpec]) -> Vec<String> {
    let mode = cli.svc.mode.as_deref().and_then(|m| lb_replay::config::parse_mode(m).ok());
    let tun_later = cli.at.iter().any(|a| a.contains("fwd=tun") || a.contains("fwd=ipip"))
        || (mode == Some(ForwardMethod::Tunnel) && !cli.at.is_empty());
    cli.svc.no_effect(services, tun_later)
}
