//! What a replay runs against: virtual services, their real servers, and the director's knobs.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use lb_conntrack::Persistence;
use lb_rewrite::MacAddr;
use lb_sched::{ForwardMethod, Protocol, SchedFlags};

/// Which packets a virtual service takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vip {
    /// One address and port; `proto` `None` takes TCP and UDP (as `--vip` does), `Some` one
    /// protocol (as `ipvsadm -A -t|-u` does).
    Addr {
        /// Protocol, or both.
        proto: Option<Protocol>,
        /// Virtual address and port (port 0: every port, like a port-0 IPVS service).
        addr: SocketAddr,
    },
    /// Every TCP and UDP destination of one address family (`--vip any`, like a fwmark
    /// service): `v6` says which family.
    Any {
        /// IPv6 (true) or IPv4.
        v6: bool,
    },
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Vip::Addr { proto: Some(p), addr } => write!(f, "{p} {addr}"),
            Vip::Addr { proto: None, addr } => write!(f, "{addr}"),
            Vip::Any { v6: false } => f.write_str("any IPv4"),
            Vip::Any { v6: true } => f.write_str("any IPv6"),
        }
    }
}

/// A real server as configured (`--backend` or an `-a` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Address.
    pub addr: IpAddr,
    /// Port; `None` = the virtual port (for `--vip any`: the packet's destination port).
    pub port: Option<u16>,
    /// Weight (ipvsadm's default 1).
    pub weight: u32,
    /// Upper connection threshold (`-x`), 0 = none.
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`), 0 = none.
    pub l_threshold: u32,
    /// Forwarding method; `None` = the replay's `--mode`.
    pub fwd: Option<ForwardMethod>,
    /// Next-hop MAC (`mac=`); `None` = from `--neigh` (or, with `--iface`, the kernel).
    pub mac: Option<MacAddr>,
    /// TUN only: GUE to this UDP port (`gue=PORT`, ipvsadm `--tun-type gue --tun-port PORT`)
    /// instead of plain IPIP.
    pub gue_port: Option<u16>,
}

impl Backend {
    /// A backend with ipvsadm's defaults.
    pub fn new(addr: IpAddr) -> Self {
        Backend { addr, port: None, weight: 1, u_threshold: 0, l_threshold: 0, fwd: None, mac: None, gue_port: None }
    }
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// What it takes.
    pub vip: Vip,
    /// Scheduler name (registry).
    pub sched: String,
    /// `-b` flags.
    pub flags: SchedFlags,
    /// `-p [TIMEOUT]` and `-M NETMASK`.
    pub persistence: Option<Persistence>,
    /// `-o`.
    pub one_packet: bool,
    /// Real servers in the order they were added (the newest ends up first in IPVS order).
    pub backends: Vec<Backend>,
}

impl ServiceSpec {
    /// A service with the default scheduler (wlc, as ipvsadm) and no backends.
    pub fn new(vip: Vip) -> Self {
        ServiceSpec {
            vip,
            sched: "wlc".into(),
            flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            backends: Vec::new(),
        }
    }
}

/// A MAC address, address, backend spec or forwarding mode that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Not six bytes.
    #[error("{0:?} is not a MAC address (want six hex bytes like 02:00:00:00:00:01)")]
    MacLength(String),
    /// A byte that is not hex.
    #[error("{text:?} is not a MAC address: {byte:?} is not a hex byte")]
    MacByte {
        /// The whole text.
        text: String,
        /// The bad byte.
        byte: String,
    },
    /// Neither an address nor an address and port.
    #[error("{0:?} is not an address or address:port (IPv6 as [2001:db8::1]:80)")]
    Address(String),
    /// Not a forwarding method.
    #[error("unknown forwarding mode {0:?} (nat, dr or tun)")]
    Mode(String),
    /// A backend option without `=`.
    #[error("backend {spec:?}: {item:?} is not KEY=VALUE")]
    NotKeyValue {
        /// The backend spec.
        spec: String,
        /// The option.
        item: String,
    },
    /// A backend option whose value is not a number.
    #[error("backend {spec:?}: {key}={value:?} is not a number")]
    NotNumber {
        /// The backend spec.
        spec: String,
        /// The option.
        key: String,
        /// Its value.
        value: String,
    },
    /// `gue=` with a value that is not a port.
    #[error("backend {spec:?}: gue={value:?} is not a UDP port")]
    NotPort {
        /// The backend spec.
        spec: String,
        /// The value.
        value: String,
    },
    /// An unknown backend option.
    #[error("backend {spec:?}: unknown option {key:?} (known: weight, mac, x, y, fwd, gue)")]
    UnknownOption {
        /// The backend spec.
        spec: String,
        /// The option.
        key: String,
    },
    /// A backend's next-hop MAC that no host can have: broadcast, multicast or all zeros.
    #[error("{what} {mac}: a real server's MAC must be a unicast address (not broadcast, multicast or all zeros)")]
    NotUnicastMac {
        /// Where it was given (`backend "..."` or `--neigh ...`).
        what: String,
        /// The MAC.
        mac: String,
    },
    /// A backend option whose value is a bad MAC or mode.
    #[error("backend {spec:?}: {error}")]
    InBackend {
        /// The backend spec.
        spec: String,
        /// What is wrong with the value.
        error: Box<SpecError>,
    },
}

/// Parses `AA:BB:CC:DD:EE:FF` (or with `-`).
pub fn parse_mac(s: &str) -> Result<MacAddr, SpecError> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(SpecError::MacLength(s.to_string()));
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| SpecError::MacByte { text: s.to_string(), byte: p.to_string() })?;
    }
    Ok(MacAddr(m))
}

/// Refuses a MAC that cannot be a host's next hop (broadcast, multicast, all zeros); `what`
/// names where it was given.
pub fn check_unicast_mac(m: &MacAddr, what: &str) -> Result<(), SpecError> {
    if m.0 == [0; 6] || m.0[0] & 1 != 0 {
        return Err(SpecError::NotUnicastMac { what: what.to_string(), mac: fmt_mac(m) });
    }
    Ok(())
}

/// Formats a MAC address.
pub fn fmt_mac(m: &MacAddr) -> String {
    let b = m.0;
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
}

/// Parses `ADDR` or `ADDR:PORT` (IPv6 as `[ADDR]:PORT` or a bare address).
pub fn parse_addr_port(s: &str) -> Result<(IpAddr, Option<u16>), SpecError> {
    if let Ok(sa) = SocketAddr::from_str(s) {
        return Ok((sa.ip(), Some(sa.port())));
    }
    if let Ok(ip) = IpAddr::from_str(s.trim_start_matches('[').trim_end_matches(']')) {
        return Ok((ip, None));
    }
    Err(SpecError::Address(s.to_string()))
}

/// Parses a `--backend ADDR[:PORT][,weight=W][,mac=MAC]` spec (also `fwd=nat|dr|tun`,
/// `x=UPPER`, `y=LOWER`, `gue=PORT`).
pub fn parse_backend(s: &str) -> Result<Backend, SpecError> {
    let mut parts = s.split(',');
    let (addr, port) = parse_addr_port(parts.next().unwrap_or_default().trim())?;
    let mut b = Backend::new(addr);
    b.port = port;
    let spec = || s.to_string();
    let inner = |e: SpecError| SpecError::InBackend { spec: spec(), error: Box::new(e) };
    for kv in parts {
        let (k, v) = kv.split_once('=').ok_or_else(|| SpecError::NotKeyValue { spec: spec(), item: kv.to_string() })?;
        let num = |v: &str| {
            v.parse::<u32>().map_err(|_| SpecError::NotNumber {
                spec: spec(),
                key: k.to_string(),
                value: v.to_string(),
            })
        };
        match k.trim() {
            "weight" | "w" => b.weight = num(v)?,
            "mac" => {
                let m = parse_mac(v).map_err(inner)?;
                check_unicast_mac(&m, &format!("backend {s:?}:"))?;
                b.mac = Some(m);
            }
            "x" | "upper" => b.u_threshold = num(v)?,
            "y" | "lower" => b.l_threshold = num(v)?,
            "fwd" | "mode" => b.fwd = Some(parse_mode(v).map_err(inner)?),
            "gue" => {
                b.gue_port = Some(v.parse().map_err(|_| SpecError::NotPort { spec: spec(), value: v.to_string() })?)
            }
            other => return Err(SpecError::UnknownOption { spec: spec(), key: other.to_string() }),
        }
    }
    Ok(b)
}

/// Parses `nat`, `dr` or `tun` (also ipvsadm's words: masq, route/gate/gatewaying, ipip).
pub fn parse_mode(s: &str) -> Result<ForwardMethod, SpecError> {
    match s.to_ascii_lowercase().as_str() {
        "nat" | "masq" | "masquerading" => Ok(ForwardMethod::Masq),
        "dr" | "route" | "gate" | "gatewaying" => Ok(ForwardMethod::DirectRoute),
        "tun" | "ipip" | "tunnel" => Ok(ForwardMethod::Tunnel),
        other => Err(SpecError::Mode(other.to_string())),
    }
}

/// The name replay uses for a forwarding method.
pub fn mode_name(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Masq => "nat",
        ForwardMethod::DirectRoute => "dr",
        ForwardMethod::Tunnel => "tun",
        ForwardMethod::Local => "local",
    }
}

/// A static neighbour table: next-hop MACs by address.
pub type Neighbours = HashMap<IpAddr, MacAddr>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_specs() {
        let b = parse_backend("10.0.0.1:8080,weight=3,mac=02:00:00:00:00:01").unwrap();
        assert_eq!((b.addr, b.port, b.weight), ("10.0.0.1".parse().unwrap(), Some(8080), 3));
        assert_eq!(b.mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
        let b = parse_backend("[2001:db8::1]:443,x=10,y=5,fwd=nat").unwrap();
        assert_eq!((b.u_threshold, b.l_threshold, b.fwd), (10, 5, Some(ForwardMethod::Masq)));
        let b = parse_backend("2001:db8::2").unwrap();
        assert_eq!((b.port, b.weight), (None, 1));
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert_eq!(fmt_mac(&parse_mac("02-AA-00-00-00-0f").unwrap()), "02:aa:00:00:00:0f");
    }

    #[test]
    fn a_backend_mac_must_be_unicast() {
        for bad in ["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:fb", "33:33:00:00:00:01", "00:00:00:00:00:00"] {
            let e = parse_backend(&format!("10.0.0.1,mac={bad}")).unwrap_err();
            assert!(matches!(e, SpecError::NotUnicastMac { .. }), "{bad}");
            assert!(e.to_string().contains("must be a unicast address"), "{e}");
        }
        assert!(parse_backend("10.0.0.1,mac=02:00:00:00:00:01").is_ok());
        assert!(parse_backend("10.0.0.1,mac=00:1b:21:00:00:01").is_ok());
    }

    /// Every error, with the text users have always seen.
    #[test]
    fn spec_errors_say_what_is_wrong() {
        let text = |r: Result<Backend, SpecError>| r.unwrap_err().to_string();
        assert_eq!(
            text(parse_backend("10.0.0.1,weight=x")),
            r#"backend "10.0.0.1,weight=x": weight="x" is not a number"#
        );
        assert_eq!(
            text(parse_backend("10.0.0.1,color=red")),
            r#"backend "10.0.0.1,color=red": unknown option "color" (known: weight, mac, x, y, fwd, gue)"#
        );
        assert_eq!(text(parse_backend("10.0.0.1,weight")), r#"backend "10.0.0.1,weight": "weight" is not KEY=VALUE"#);
        assert_eq!(text(parse_backend("10.0.0.1,gue=x")), r#"backend "10.0.0.1,gue=x": gue="x" is not a UDP port"#);
        assert_eq!(
            text(parse_backend("nope")),
            r#""nope" is not an address or address:port (IPv6 as [2001:db8::1]:80)"#
        );
        assert_eq!(
            text(parse_backend("10.0.0.1,mac=zz:00:00:00:00:01")),
            r#"backend "10.0.0.1,mac=zz:00:00:00:00:01": "zz:00:00:00:00:01" is not a MAC address: "zz" is not a hex byte"#
        );
        assert_eq!(
            text(parse_backend("10.0.0.1,fwd=fast")),
            r#"backend "10.0.0.1,fwd=fast": unknown forwarding mode "fast" (nat, dr or tun)"#
        );
        assert_eq!(
            parse_mac("02:00").unwrap_err().to_string(),
            r#""02:00" is not a MAC address (want six hex bytes like 02:00:00:00:00:01)"#
        );
    }
}
