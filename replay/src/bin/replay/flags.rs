//! The command line's values checked and turned into services: ranges, the flags that have no
//! effect in the configuration given (a warning each), and the services of `--vip` / `--backend`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use lb_conntrack::Persistence;
use lb_replay::config::{parse_addr_port, parse_backend, Backend, ServiceSpec, Vip};
use lb_sched::{ForwardMethod, SchedFlags};

use super::{Cli, DEMO_BACKENDS, DEMO_VIP};

/// The scheduler when `--sched` is not given (ipvsadm's default).
pub(crate) const DEFAULT_SCHED: &str = "wlc";
/// The largest connection table (`--max-connections`).
pub(crate) const MAX_CONNECTIONS: usize = 1 << 28;
/// The longest persistence (`--persistent`), in seconds: IPVS's limit for timeouts.
pub(crate) const MAX_PERSISTENT: u64 = lb_conntrack::MAX_TIMEOUT_SECS;
/// The range of `--multiplier`.
pub(crate) const MULTIPLIER: (f64, f64) = (1e-3, 1e6);
/// The highest `--pps`.
pub(crate) const MAX_PPS: f64 = 1e9;
/// The longest `--maxsleep`, in seconds (a day).
pub(crate) const MAX_SLEEP: f64 = 86_400.0;

/// Refuses a value out of its range (exit 2, naming the flag and the range).
pub(crate) fn check_ranges(cli: &Cli, services: &[ServiceSpec]) -> Result<()> {
    if !(1..=MAX_CONNECTIONS).contains(&cli.max_connections) {
        bail!("--max-connections {}: from 1 to {MAX_CONNECTIONS}", cli.max_connections);
    }
    if cli.conn_reuse_mode > 3 {
        bail!(
            "--conn-reuse-mode {}: 0 to 3 (bit 1: reuse TIME_WAIT / CLOSE; bit 2: FIN_WAIT of half connections)",
            cli.conn_reuse_mode
        );
    }
    if let Some(p) = cli.persistent {
        if !(1..=MAX_PERSISTENT).contains(&p) {
            bail!("--persistent {p}: from 1 to {MAX_PERSISTENT} seconds");
        }
    }
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
    if let Some(mtu) = cli.mtu {
        let v6 = services.iter().any(|s| match s.vip {
            Vip::Addr { addr, .. } => addr.is_ipv6(),
            Vip::Any { v6 } => v6,
        });
        let min = if v6 { 1280 } else { 68 };
        if mtu < min {
            bail!(
                "--mtu {mtu}: at least {min} ({})",
                if v6 {
                    "IPv6's minimum link MTU, RFC 8200; an IPv6 service is configured"
                } else {
                    "IPv4's minimum, RFC 791"
                }
            );
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
    let mut w = Vec::new();
    if cli.rules.is_some() {
        let all_have_fwd = services.iter().flat_map(|s| &s.backends).all(|b| b.fwd.is_some());
        if cli.mode.is_some() && all_have_fwd {
            w.push(
                "--mode has no effect with --rules: the rules file gives each real server's method (-g, -m, -i)"
                    .to_string(),
            );
        }
        for (given, flag) in [
            (cli.sched.is_some(), "--sched"),
            (cli.sched_flags.is_some(), "--sched-flags"),
            (cli.persistent.is_some(), "--persistent"),
            (cli.netmask.is_some(), "--netmask"),
            (cli.one_packet, "--one-packet"),
        ] {
            if given {
                w.push(format!("{flag} has no effect with --rules: the rules file's -A lines decide"));
            }
        }
    } else {
        if cli.netmask.is_some() && cli.persistent.is_none() {
            w.push("--netmask has no effect without --persistent (it sets the granularity of persistence)".to_string());
        }
        if let (Some(m), true) = (cli.netmask.as_deref().and_then(|m| m.parse::<u8>().ok()), cli.persistent.is_some()) {
            let v4 = services.iter().any(|s| match s.vip {
                Vip::Addr { addr, .. } => addr.is_ipv4(),
                Vip::Any { v6 } => !v6,
            });
            if m > 32 && v4 {
                w.push(format!("--netmask {m} is longer than an IPv4 address: IPv4 clients are grouped by /32"));
            }
        }
    }
    if !cli.tun_src.is_empty() {
        let mode = cli.mode.as_deref().and_then(|m| lb_replay::config::parse_mode(m).ok());
        let tun = services.iter().flat_map(|s| &s.backends).any(|b| b.fwd.or(mode) == Some(ForwardMethod::Tunnel))
            || cli.at.iter().any(|a| a.contains("fwd=tun") || a.contains("fwd=ipip"))
            || (mode == Some(ForwardMethod::Tunnel) && !cli.at.is_empty());
        if !tun {
            w.push("--tun-src has no effect: no real server is forwarded by TUN".to_string());
        }
    }
    w
}

/// The services `--vip` and `--backend` give (the demo service when neither is given).
pub(crate) fn services(cli: &Cli, flags: SchedFlags) -> Result<Vec<ServiceSpec>> {
    let (vip, backends): (String, Vec<String>) = match (&cli.vip, cli.backends.is_empty()) {
        (None, true) => (DEMO_VIP.into(), DEMO_BACKENDS.iter().map(|s| s.to_string()).collect()),
        (None, false) => bail!("--backend needs --vip ADDR:PORT (or --vip any)"),
        (Some(_), true) => bail!("--vip needs at least one --backend"),
        (Some(v), false) => (v.clone(), cli.backends.clone()),
    };
    let backends: Vec<Backend> =
        backends.iter().map(|b| parse_backend(b).map_err(anyhow::Error::from)).collect::<Result<_>>()?;
    let mut persistence =
        cli.persistent.map(|t| Persistence { timeout: Duration::from_secs(t), ..Persistence::default() });
    // -M only refines -p (ipvsadm): alone it has no effect (a warning says so).
    if let (Some(m), Some(p)) = (&cli.netmask, persistence.as_mut()) {
        let (v4, v6) = netmask_prefixes(m)?;
        p.v4_prefix = v4;
        p.v6_prefix = v6;
    }
    let make = |vip: Vip| ServiceSpec {
        vip,
        sched: cli.sched.clone().unwrap_or_else(|| DEFAULT_SCHED.to_string()),
        flags,
        persistence,
        one_packet: cli.one_packet,
        backends: backends.clone(),
    };
    if vip == "any" {
        return Ok(vec![make(Vip::Any { v6: false }), make(Vip::Any { v6: true })]);
    }
    let (addr, port) = parse_addr_port(&vip)?;
    let port = port.context("--vip needs a port: ADDR:PORT (port 0 takes every port)")?;
    Ok(vec![make(Vip::Addr { proto: None, addr: (addr, port).into() })])
}

/// `--netmask` as (IPv4, IPv6) prefix lengths: a length applies to both families (capped at
/// each one's width), a dotted mask to IPv4 only.
pub(crate) fn netmask_prefixes(m: &str) -> Result<(u8, u8)> {
    if let Ok(n) = m.parse::<u8>() {
        if n > 128 {
            bail!("--netmask {n}: a prefix length is at most 128 (32 for IPv4)");
        }
        return Ok((n.min(32), n));
    }
    let a: std::net::Ipv4Addr =
        m.parse().with_context(|| format!("--netmask {m:?}: a dotted mask or a prefix length"))?;
    let bits = u32::from(a);
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        bail!("--netmask {m}: not a contiguous mask");
    }
    Ok((len as u8, 128))
}

#[cfg(test)]
mod tests {
    use super::netmask_prefixes;

    #[test]
    fn netmasks_as_prefix_lengths_or_dotted_masks() {
        assert_eq!(netmask_prefixes("24").unwrap(), (24, 24));
        assert_eq!(netmask_prefixes("64").unwrap(), (32, 64), "a length applies to both families, capped");
        assert_eq!(netmask_prefixes("255.255.255.0").unwrap(), (24, 128));
        assert!(netmask_prefixes("255.0.255.0").unwrap_err().to_string().contains("not a contiguous mask"));
        assert!(netmask_prefixes("mask").is_err());
    }
}
