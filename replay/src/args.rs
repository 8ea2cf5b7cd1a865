//! The command-line flags `replay` and `director` share: the services (`--vip` / `--backend` or
//! `--rules`), the forwarding method and scheduler, IPVS's knobs and the connection table, parsed
//! and range-checked by one piece of code, so both tools take and refuse the same things.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lb_conntrack::Persistence;
use lb_sched::{ForwardMethod, SchedFlags};

use crate::config::{
    check_unicast_mac, parse_addr_port, parse_backend, parse_mac, parse_mode, Backend, ServiceSpec, Vip,
};

/// The scheduler when `--sched` is not given (ipvsadm's default).
pub const DEFAULT_SCHED: &str = "wlc";
/// The largest connection table (`--max-connections`).
pub const MAX_CONNECTIONS: usize = 1 << 28;
/// The longest persistence (`--persistent`), in seconds: IPVS's limit for timeouts.
pub const MAX_PERSISTENT: u64 = lb_conntrack::MAX_TIMEOUT_SECS;

/// The services, forwarding, scheduling and connection-table flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServiceArgs {
    /// Forwarding method: nat, dr or tun (required unless --rules gives it).
    #[arg(long)]
    pub mode: Option<String>,
    /// Scheduler: rr wrr lc wlc sed nq fo ovf twos sh dh mh (IPVS), maglev ring hrw swrr p2c random
    /// [default: wlc].
    #[arg(long)]
    pub sched: Option<String>,
    /// The virtual service, ADDR:PORT (TCP and UDP), or `any`: every TCP and UDP destination.
    #[arg(long)]
    pub vip: Option<String>,
    /// A real server, `ADDR[:PORT][,weight=W][,mac=MAC]` (also x=UPPER, y=LOWER, fwd=, gue=PORT).
    #[arg(long = "backend")]
    pub backends: Vec<String>,
    /// ipvsadm-save -n rules instead of --vip/--backend.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// A static neighbour, ADDR=MAC: the next hop of any backend without mac=.
    #[arg(long = "neigh")]
    pub neigh: Vec<String>,
    /// ipvsadm's -b: sh-fallback, sh-port, mh-fallback, mh-port.
    #[arg(long)]
    pub sched_flags: Option<String>,
    /// The director's address on the real servers' side (one per family): the source of the
    /// ICMP errors it sends a NAT real server about a reply (default: the virtual address).
    #[arg(long = "director-ip")]
    pub director_ip: Vec<IpAddr>,
    /// Outer source address for TUN (one per family).
    #[arg(long = "tun-src")]
    pub tun_src: Vec<IpAddr>,
    /// IP MTU of the egress link (default 1500; with an interface, the interface's).
    #[arg(long)]
    pub mtu: Option<u16>,
    /// IPVS sloppy_tcp: a non-SYN packet may create a connection.
    #[arg(long)]
    pub sloppy_tcp: bool,
    /// IPVS secure_tcp: the secure state table.
    #[arg(long)]
    pub secure_tcp: bool,
    /// IPVS conn_reuse_mode.
    #[arg(long, default_value_t = 1)]
    pub conn_reuse_mode: u8,
    /// IPVS expire_nodest_conn.
    #[arg(long)]
    pub expire_nodest_conn: bool,
    /// IPVS expire_quiescent_template.
    #[arg(long)]
    pub expire_quiescent_template: bool,
    /// Persistence timeout in seconds for --vip services (ipvsadm -p).
    #[arg(long)]
    pub persistent: Option<u64>,
    /// Persistence netmask for --vip services (ipvsadm -M): a dotted mask or a prefix length.
    #[arg(long)]
    pub netmask: Option<String>,
    /// One-packet scheduling of UDP for --vip services (ipvsadm -o).
    #[arg(long)]
    pub one_packet: bool,
    /// A state timeout, STATE=SECS (established, syn_recv, fin_wait, time_wait, close, udp, ...).
    #[arg(long = "timeout")]
    pub timeouts: Vec<String>,
    /// Connection table size.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_connections: usize,
}

/// A service to use when none is given (replay's demo service for its bundled sample).
#[derive(Clone, Copy, Debug)]
pub struct Demo<'a> {
    /// `--vip`.
    pub vip: &'a str,
    /// `--backend`s.
    pub backends: &'a [&'a str],
}

impl ServiceArgs {
    /// `--mode`, parsed.
    pub fn mode(&self) -> Result<Option<ForwardMethod>> {
        Ok(self.mode.as_deref().map(parse_mode).transpose()?)
    }

    /// `--sched-flags`, parsed.
    pub fn sched_flags(&self) -> Result<SchedFlags> {
        Ok(match &self.sched_flags {
            Some(f) => SchedFlags::parse(f)?,
            None => SchedFlags::default(),
        })
    }

    /// The services: `--rules`, or `--vip` with `--backend`, or `demo` when neither is given
    /// (`None`: refused). Every value is range-checked.
    pub fn services(&self, demo: Option<Demo<'_>>) -> Result<Vec<ServiceSpec>> {
        lb_sched::registry::lookup(self.sched.as_deref().unwrap_or(DEFAULT_SCHED))?;
        let services = match &self.rules {
            Some(path) => {
                if self.vip.is_some() || !self.backends.is_empty() {
                    bail!("--rules replaces --vip and --backend: give one or the other");
                }
                crate::rules::read(path)?
            }
            None => {
                if self.vip.is_none() && demo.is_none() {
                    bail!("no virtual service: give --vip ADDR:PORT (or --vip any) with --backend, or --rules");
                }
                self.flag_services(self.sched_flags()?, demo)?
            }
        };
        self.check_ranges(&services)?;
        Ok(services)
    }

    /// Refuses services whose backends' forwarding method is not known (no `--mode`, and no
    /// method given per backend).
    pub fn require_mode(&self, services: &[ServiceSpec]) -> Result<()> {
        if self.mode()?.is_none() && services.iter().flat_map(|s| &s.backends).any(|b| b.fwd.is_none()) {
            bail!("--mode nat|dr|tun is required (the rules file or --backend fwd= can give it per backend)");
        }
        Ok(())
    }

    /// `--neigh`, checked: every MAC unicast.
    pub fn neighbours(&self) -> Result<HashMap<IpAddr, lb_rewrite::MacAddr>> {
        let mut neigh = HashMap::new();
        for n in &self.neigh {
            let (a, m) = n.split_once('=').with_context(|| format!("--neigh {n:?}: expected ADDR=MAC"))?;
            let a: IpAddr = a.parse().with_context(|| format!("--neigh {n:?}: {a:?} is not an address"))?;
            let m = parse_mac(m)?;
            check_unicast_mac(&m, &format!("--neigh {n:?}:"))?;
            neigh.insert(a, m);
        }
        Ok(neigh)
    }

    /// The connection table's configuration: IPVS's knobs and `--timeout`s.
    pub fn conntrack(&self) -> Result<lb_conntrack::Config> {
        let mut conntrack = lb_conntrack::Config {
            max_connections: self.max_connections,
            sloppy_tcp: self.sloppy_tcp,
            secure_tcp: self.secure_tcp,
            conn_reuse_mode: self.conn_reuse_mode,
            expire_nodest_conn: self.expire_nodest_conn,
            expire_quiescent_template: self.expire_quiescent_template,
            ..lb_conntrack::Config::default()
        };
        for t in &self.timeouts {
            conntrack.timeouts.parse_assignment(t).map_err(|e| anyhow::anyhow!("--{e}"))?;
        }
        Ok(conntrack)
    }

    /// Refuses a value out of its range (naming the flag and the range).
    fn check_ranges(&self, services: &[ServiceSpec]) -> Result<()> {
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            bail!("--max-connections {}: from 1 to {MAX_CONNECTIONS}", self.max_connections);
        }
        if self.conn_reuse_mode > 3 {
            bail!(
                "--conn-reuse-mode {}: 0 to 3 (bit 1: reuse TIME_WAIT / CLOSE; bit 2: FIN_WAIT of half connections)",
                self.conn_reuse_mode
            );
        }
        if let Some(p) = self.persistent {
            if !(1..=MAX_PERSISTENT).contains(&p) {
                bail!("--persistent {p}: from 1 to {MAX_PERSISTENT} seconds");
            }
        }
        if let Some(mtu) = self.mtu {
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

    /// The flags given that change nothing in this configuration, each with why.
    /// `tun_later`: a real server forwarded by TUN may come later (an `--at add=` event).
    pub fn no_effect(&self, services: &[ServiceSpec], tun_later: bool) -> Vec<String> {
        let mut w = Vec::new();
        if self.rules.is_some() {
            let all_have_fwd = services.iter().flat_map(|s| &s.backends).all(|b| b.fwd.is_some());
            if self.mode.is_some() && all_have_fwd {
                w.push(
                    "--mode has no effect with --rules: the rules file gives each real server's method (-g, -m, -i)"
                        .to_string(),
                );
            }
            for (given, flag) in [
                (self.sched.is_some(), "--sched"),
                (self.sched_flags.is_some(), "--sched-flags"),
                (self.persistent.is_some(), "--persistent"),
                (self.netmask.is_some(), "--netmask"),
                (self.one_packet, "--one-packet"),
            ] {
                if given {
                    w.push(format!("{flag} has no effect with --rules: the rules file's -A lines decide"));
                }
            }
        } else {
            if self.netmask.is_some() && self.persistent.is_none() {
                w.push(
                    "--netmask has no effect without --persistent (it sets the granularity of persistence)".to_string(),
                );
            }
            if let (Some(m), true) =
                (self.netmask.as_deref().and_then(|m| m.parse::<u8>().ok()), self.persistent.is_some())
            {
                let v4 = services.iter().any(|s| match s.vip {
                    Vip::Addr { addr, .. } => addr.is_ipv4(),
                    Vip::Any { v6 } => !v6,
                });
                if m > 32 && v4 {
                    w.push(format!("--netmask {m} is longer than an IPv4 address: IPv4 clients are grouped by /32"));
                }
            }
        }
        if !self.tun_src.is_empty() {
            let mode = self.mode.as_deref().and_then(|m| parse_mode(m).ok());
            let tun = services.iter().flat_map(|s| &s.backends).any(|b| b.fwd.or(mode) == Some(ForwardMethod::Tunnel))
                || tun_later;
            if !tun {
                w.push("--tun-src has no effect: no real server is forwarded by TUN".to_string());
            }
        }
        w
    }

    /// The services `--vip` and `--backend` give (`demo` when neither is given).
    fn flag_services(&self, flags: SchedFlags, demo: Option<Demo<'_>>) -> Result<Vec<ServiceSpec>> {
        let (vip, backends): (String, Vec<String>) = match (&self.vip, self.backends.is_empty(), demo) {
            (None, true, Some(d)) => (d.vip.into(), d.backends.iter().map(|s| s.to_string()).collect()),
            (None, true, None) => bail!("no virtual service: give --vip ADDR:PORT (or --vip any) with --backend"),
            (None, false, _) => bail!("--backend needs --vip ADDR:PORT (or --vip any)"),
            (Some(_), true, _) => bail!("--vip needs at least one --backend"),
            (Some(v), false, _) => (v.clone(), self.backends.clone()),
        };
        let backends: Vec<Backend> =
            backends.iter().map(|b| parse_backend(b).map_err(anyhow::Error::from)).collect::<Result<_>>()?;
        let mut persistence =
            self.persistent.map(|t| Persistence { timeout: Duration::from_secs(t), ..Persistence::default() });
        // -M only refines -p (ipvsadm): alone it has no effect (a warning says so).
        if let (Some(m), Some(p)) = (&self.netmask, persistence.as_mut()) {
            let (v4, v6) = netmask_prefixes(m)?;
            p.v4_prefix = v4;
            p.v6_prefix = v6;
        }
        let make = |vip: Vip| ServiceSpec {
            vip,
            sched: self.sched.clone().unwrap_or_else(|| DEFAULT_SCHED.to_string()),
            flags,
            persistence,
            one_packet: self.one_packet,
            backends: backends.clone(),
        };
        if vip == "any" {
            return Ok(vec![make(Vip::Any { v6: false }), make(Vip::Any { v6: true })]);
        }
        let (addr, port) = parse_addr_port(&vip)?;
        let port = port.context("--vip needs a port: ADDR:PORT (port 0 takes every port)")?;
        Ok(vec![make(Vip::Addr { proto: None, addr: (addr, port).into() })])
    }
}

/// `--netmask` as (IPv4, IPv6) prefix lengths: a length applies to both families (capped at
/// each one's width), a dotted mask to IPv4 only.
pub fn netmask_prefixes(m: &str) -> Result<(u8, u8)> {
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
