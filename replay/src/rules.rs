//! Services from an `ipvsadm-save -n` rules file: LVS users replay against the rules they run.
//!
//! Accepted, in short or long form:
//!
//! ```text
//! -A -t|-u VIP:PORT [-s SCHED] [-b FLAGS] [-p [TIMEOUT]] [-M NETMASK] [-o]
//! -a -t|-u VIP:PORT -r RIP[:PORT] [-g|-m|-i] [-w W] [-x UPPER] [-y LOWER]
//!    [--tun-type ipip|gue] [--tun-port PORT]
//! ```
//!
//! Blank lines and `#` comments are skipped. Anything else (fwmark and SCTP services, `-E`,
//! persistence engines, GRE tunnels, GUE checksum options...) is an error naming the file, the
//! line and the option.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use lb_conntrack::Persistence;
use lb_sched::registry::Registry;
use lb_sched::{ForwardMethod, Protocol, SchedFlags};

use crate::config::{Backend, ServiceSpec, Vip};

/// A rules file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("{path}: cannot read the rules file: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// No service in the file.
    #[error("{path}: no virtual service in the rules file (it is empty or holds only comments; `ipvsadm-save -n` writes -A and -a lines)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line is malformed or asks for something unsupported.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads and parses a rules file.
pub fn read(path: &Path) -> Result<Vec<ServiceSpec>, RulesError> {
    read_with(path, Registry::builtin())
}

/// Reads a rules file whose `-s` names are looked up in `registry` (a user's schedulers beside
/// the built-ins).
pub fn read_with(path: &Path, registry: &Registry) -> Result<Vec<ServiceSpec>, RulesError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RulesError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    parse_with(&text, path, registry)
}

/// Parses rules text (`path` names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<Vec<ServiceSpec>, RulesError> {
    parse_with(text, path, Registry::builtin())
}

/// [`parse`] with the `-s` names looked up in `registry`.
pub fn parse_with(text: &str, path: &Path, registry: &Registry) -> Result<Vec<ServiceSpec>, RulesError> {
    parse_with_services(text, path, registry, &system_services)
}

/// [`parse`] with service names looked up in `services_db` (the text of a services file).
fn parse_with_services(
    text: &str,
    path: &Path,
    registry: &Registry,
    services_db: &dyn Fn() -> Option<String>,
) -> Result<Vec<ServiceSpec>, RulesError> {
    let mut services: Vec<ServiceSpec> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| RulesError::Line { path: path.to_path_buf(), line: i + 1, message };
        parse_line(line, &mut services, registry, services_db).map_err(err)?;
    }
    if services.is_empty() {
        return Err(RulesError::Empty { path: path.to_path_buf() });
    }
    Ok(services)
}

/// The system's services database (`/etc/services`), read once.
fn system_services() -> Option<String> {
    static DB: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DB.get_or_init(|| std::fs::read_to_string("/etc/services").ok()).clone()
}

/// The port of service `name` for `proto` in a services database (`name port/proto aliases...`).
fn service_port(db: &str, name: &str, proto: Protocol) -> Option<u16> {
    db.lines().map(|l| l.split('#').next().unwrap_or("")).find_map(|l| {
        let mut f = l.split_whitespace();
        let (svc, port_proto) = (f.next()?, f.next()?);
        let (port, p) = port_proto.split_once('/')?;
        let named = svc == name || f.any(|alias| alias == name);
        (named && p == proto.as_str()).then(|| port.parse().ok()).flatten()
    })
}

/// `ADDR:NAME` as `ipvsadm-save` without `-n` writes it (a service name for the port) resolved
/// through the services database; `Ok(None)` when `v` is not of that form (a numeric port, or no
/// port: the caller parses it). A host name instead of an address is refused: replay does not
/// look names up.
fn split_addr_port(
    v: &str,
    proto: Protocol,
    services_db: &dyn Fn() -> Option<String>,
) -> Result<Option<(std::net::IpAddr, Option<u16>)>, String> {
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Ok(Some((sa.ip(), Some(sa.port()))));
    }
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
            None => return Ok(None),
        }
    } else if v.matches(':').count() > 1 {
        (v, None)
    } else {
        match v.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (v, None),
        }
    };
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        return Err(format!("{host:?} is a host name; replay reads addresses: write the rules with `ipvsadm-save -n`"));
    };
    let Some(port) = port else { return Ok(Some((ip, None))) };
    if let Ok(n) = port.parse::<u16>() {
        return Ok(Some((ip, Some(n))));
    }
    let db = services_db().ok_or_else(|| {
        format!("{port:?} is a service name and there is no /etc/services to look it up: write the rules with `ipvsadm-save -n`")
    })?;
    let n = service_port(&db, port, proto).ok_or_else(|| {
        format!("{port:?} is not a port number nor a {proto} service in /etc/services: write the rules with `ipvsadm-save -n`")
    })?;
    Ok(Some((ip, Some(n))))
}

fn parse_line(
    line: &str,
    services: &mut Vec<ServiceSpec>,
    registry: &Registry,
    services_db: &dyn Fn() -> Option<String>,
) -> Result<(), String> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let mut it = toks.iter().copied().peekable();
    let cmd = it.next().unwrap_or_default();
    let adding_service = match cmd {
        "-A" | "--add-service" => true,
        "-a" | "--add-server" => false,
        "-E" | "--edit-service" | "-e" | "--edit-server" | "-D" | "--delete-service" | "-d" | "--delete-server"
        | "-C" | "--clear" => {
            return Err(format!("{cmd:?} is not part of ipvsadm-save output; only -A and -a lines are replayed"))
        }
        other => return Err(format!("expected -A or -a at the start of the line, found {other:?}")),
    };
    let mut vip: Option<Vip> = None;
    let mut spec = ServiceSpec::new(Vip::Any { v6: false });
    let mut backend: Option<Backend> = None;
    let mut fwd: Option<ForwardMethod> = None;
    let (mut weight, mut upper, mut lower) = (None, None, None);
    let (mut tun_type, mut tun_port): (Option<&str>, Option<u16>) = (None, None);
    let mut netmask: Option<String> = None;
    // The protocol of the service named on the line (-r's service names are looked up for it);
    // ipvsadm-save writes -t / -u before -r.
    let mut service_proto = Protocol::Tcp;
    while let Some(opt) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{opt} needs a {name}"));
        match opt {
            "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                let v = value("VIP:PORT")?;
                let proto = if opt == "-t" || opt == "--tcp-service" { Protocol::Tcp } else { Protocol::Udp };
                let (ip, port) = split_addr_port(v, proto, services_db)
                    .map_err(|e| format!("{opt} {v:?}: {e}"))?
                    .ok_or_else(|| format!("{opt} {v:?}: expected VIP:PORT ([V6]:PORT)"))?;
                let port = port.ok_or_else(|| format!("{opt} {v:?}: expected VIP:PORT ([V6]:PORT)"))?;
                vip = Some(Vip::Addr { proto: Some(proto), addr: SocketAddr::new(ip, port) });
                service_proto = proto;
            }
            "-f" | "--fwmark-service" => {
                return Err("fwmark services are not supported (replay --vip any is the catch-all service)".into())
            }
            "--sctp-service" => return Err("SCTP services are not supported".into()),
            "-s" | "--scheduler" if adding_service => {
                let v = value("scheduler")?;
                registry.get(v).map_err(|e| e.to_string())?;
                spec.sched = v.to_string();
            }
            "-b" | "--sched-flags" if adding_service => {
                spec.flags = SchedFlags::parse(value("flag list")?).map_err(|e| e.to_string())?;
            }
            "-p" | "--persistent" if adding_service => {
                let mut p = Persistence::default();
                if let Some(t) = it.peek().and_then(|t| t.parse::<u64>().ok()) {
                    it.next();
                    p.timeout = std::time::Duration::from_secs(t);
                }
                spec.persistence = Some(p);
            }
            "-M" | "--netmask" if adding_service => netmask = Some(value("netmask")?.to_string()),
            "-o" | "--ops" if adding_service => spec.one_packet = true,
            "-r" | "--real-server" if !adding_service => {
                let v = value("RIP[:PORT]")?;
                let (addr, port) =
                    match split_addr_port(v, service_proto, services_db).map_err(|e| format!("-r {v:?}: {e}"))? {
                        Some(ap) => ap,
                        None => crate::config::parse_addr_port(v).map_err(|e| format!("-r: {e}"))?,
                    };
                let mut b = Backend::new(addr);
                b.port = port;
                backend = Some(b);
            }
            "-g" | "--gatewaying" if !adding_service => fwd = Some(ForwardMethod::DirectRoute),
            "-m" | "--masquerading" if !adding_service => fwd = Some(ForwardMethod::Masq),
            "-i" | "--ipip" if !adding_service => fwd = Some(ForwardMethod::Tunnel),
            "-w" | "--weight" if !adding_service => weight = Some(number(opt, value("weight")?)?),
            "-x" | "--u-threshold" if !adding_service => upper = Some(number(opt, value("threshold")?)?),
            "-y" | "--l-threshold" if !adding_service => lower = Some(number(opt, value("threshold")?)?),
            "--tun-type" if !adding_service => tun_type = Some(value("tunnel type")?),
            "--tun-port" if !adding_service => {
                let v = value("port")?;
                tun_port = Some(v.parse().map_err(|_| format!("--tun-port {v:?} is not a port"))?);
            }
            other => {
                let what = if adding_service { "a service (-A)" } else { "a real server (-a)" };
                return Err(format!("option {other:?} is not supported for {what}"));
            }
        }
    }
    let vip = vip.ok_or("missing the service address (-t VIP:PORT or -u VIP:PORT)")?;
    if adding_service {
        if let Some(m) = netmask {
            let p = spec.persistence.get_or_insert_with(Persistence::default);
            let v6 = matches!(vip, Vip::Addr { addr: SocketAddr::V6(_), .. });
            let prefix = parse_netmask(&m, v6)?;
            if v6 {
                p.v6_prefix = prefix;
            } else {
                p.v4_prefix = prefix;
            }
        }
        if services.iter().any(|s| s.vip == vip) {
            return Err(format!("service {vip} is defined twice"));
        }
        spec.vip = vip;
        services.push(spec);
        return Ok(());
    }
    let mut b = backend.ok_or("missing the real server (-r RIP[:PORT])")?;
    b.fwd = Some(fwd.unwrap_or(ForwardMethod::DirectRoute));
    b.weight = weight.unwrap_or(1);
    b.u_threshold = upper.unwrap_or(0);
    b.l_threshold = lower.unwrap_or(0);
    match (tun_type, b.fwd) {
        (None | Some("ipip"), _) => {}
        (Some("gue"), Some(ForwardMethod::Tunnel)) => {
            b.gue_port = Some(tun_port.ok_or("--tun-type gue needs --tun-port PORT")?)
        }
        (Some("gue"), _) => return Err("--tun-type gue needs the tunnel method (-i)".into()),
        (Some(other), _) => return Err(format!("tunnel type {other:?} is not supported (ipip or gue)")),
    }
    let svc = services
        .iter_mut()
        .find(|s| s.vip == vip)
        .ok_or_else(|| format!("real server for service {vip}, which no earlier -A line defines"))?;
    if let Vip::Addr { addr, .. } = vip {
        if addr.is_ipv4() != b.addr.is_ipv4() && b.fwd != Some(ForwardMethod::Tunnel) {
            return Err(format!(
                "real server {} is not of the service's address family (only tunnels may mix)",
                b.addr
            ));
        }
    }
    if svc.backends.iter().any(|x| x.addr == b.addr && x.port == b.port) {
        return Err(format!("real server {} is listed twice for {vip}", b.addr));
    }
    svc.backends.push(b);
    Ok(())
}

fn number(opt: &str, v: &str) -> Result<u32, String> {
    v.parse().map_err(|_| format!("{opt} {v:?} is not a non-negative number"))
}

/// A netmask as a prefix length: dotted (`255.255.255.0`) for IPv4, a length for either.
fn parse_netmask(m: &str, v6: bool) -> Result<u8, String> {
    if let Ok(len) = m.parse::<u8>() {
        let max = if v6 { 128 } else { 32 };
        return if len <= max { Ok(len) } else { Err(format!("netmask /{len} is longer than {max}")) };
    }
    match m.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) if !v6 => {
            let bits = u32::from(a);
            let len = bits.leading_ones();
            if bits.checked_shl(len).unwrap_or(0) != 0 {
                return Err(format!("netmask {m} is not contiguous"));
            }
            Ok(len as u8)
        }
        _ => Err(format!("netmask {m:?}: expected a dotted IPv4 mask or a prefix length")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<ServiceSpec>, RulesError> {
        parse(text, Path::new("lvs.rules"))
    }

    const SERVICES: &str = "# a services file\n\
                            domain\t\t53/tcp\t\t\t\t# DNS\n\
                            domain\t\t53/udp\n\
                            http\t\t80/tcp\t\twww\t\t# WWW\n\
                            https\t\t443/tcp\n";

    #[test]
    fn service_names_are_resolved_from_the_services_database() {
        let db = || Some(SERVICES.to_string());
        let s = parse_with_services(
            "-A -t 192.0.2.10:http -s rr\n-a -t 192.0.2.10:www -r 10.0.0.1:https -m\n-A -u [2001:db8::53]:domain\n-a -u [2001:db8::53]:domain -r [2001:db8::1]:domain\n",
            Path::new("named.rules"),
            Registry::builtin(),
            &db,
        )
        .unwrap();
        assert_eq!(s[0].vip, Vip::Addr { proto: Some(Protocol::Tcp), addr: "192.0.2.10:80".parse().unwrap() });
        assert_eq!(s[0].backends[0].port, Some(443));
        assert_eq!(s[1].vip, Vip::Addr { proto: Some(Protocol::Udp), addr: "[2001:db8::53]:53".parse().unwrap() });
        assert_eq!((s[1].backends[0].addr, s[1].backends[0].port), ("2001:db8::1".parse().unwrap(), Some(53)));
        let err = |text: &str, db: &dyn Fn() -> Option<String>| {
            parse_with_services(text, Path::new("x.rules"), Registry::builtin(), db).unwrap_err().to_string()
        };
        let e = err("-A -u 192.0.2.10:https\n", &db);
        assert!(e.contains("\"https\" is not a port number nor a udp service") && e.contains("ipvsadm-save -n"), "{e}");
        let e = err("-A -t www.example.com:80\n", &db);
        assert!(e.contains("\"www.example.com\" is a host name") && e.contains("ipvsadm-save -n"), "{e}");
        let e = err("-A -t 192.0.2.10:http\n", &|| None);
        assert!(e.contains("no /etc/services"), "{e}");
    }

    #[test]
    fn an_empty_rules_file_says_so() {
        for text in ["", "# only a comment\n\n"] {
            let e = p(text).unwrap_err();
            assert!(matches!(e, RulesError::Empty { .. }));
            assert!(e.to_string().contains("no virtual service in the rules file"), "{e}");
        }
    }

    fn line_err(text: &str) -> (usize, String) {
        match p(text).unwrap_err() {
            RulesError::Line { line, message, .. } => (line, message),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn parses_ipvsadm_save_output() {
        let s = p("# ipvsadm-save -n\n\
                   -A -t 192.0.2.10:80 -s wrr -b sh-port -p 600 -M 255.255.255.0\n\
                   -a -t 192.0.2.10:80 -r 10.0.0.1:8080 -m -w 3 -x 100 -y 50\n\
                   -a -t 192.0.2.10:80 -r 10.0.0.2:8080 -g -w 0\n\
                   -A -u [2001:db8::10]:53 -s rr -o\n\
                   -a -u [2001:db8::10]:53 -r [2001:db8::1]:53 -i -w 1 --tun-type gue --tun-port 6080\n\
                   -A --tcp-service 192.0.2.11:443 --scheduler mh --persistent\n")
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].sched, "wrr");
        assert_eq!(s[0].flags, SchedFlags(SchedFlags::SCHED2));
        let per = s[0].persistence.unwrap();
        assert_eq!((per.timeout.as_secs(), per.v4_prefix), (600, 24));
        assert_eq!(s[0].backends.len(), 2);
        let b = &s[0].backends[0];
        assert_eq!(
            (b.port, b.weight, b.u_threshold, b.l_threshold, b.fwd),
            (Some(8080), 3, 100, 50, Some(ForwardMethod::Masq))
        );
        assert_eq!((s[0].backends[1].weight, s[0].backends[1].fwd), (0, Some(ForwardMethod::DirectRoute)));
        assert!(s[1].one_packet);
        assert_eq!(s[1].backends[0].gue_port, Some(6080));
        assert_eq!(s[2].persistence.unwrap().timeout.as_secs(), 300);
        assert!(matches!(s[2].vip, Vip::Addr { proto: Some(Protocol::Tcp), .. }));
    }

    #[test]
    fn every_malformed_line_is_an_error_naming_it() {
        let head = "-A -t 192.0.2.10:80 -s wlc\n";
        let cases = [
            ("-A -f 1 -s rr", "fwmark"),
            ("-A -t 192.0.2.10:80 -s lblcr", "unknown scheduler"),
            ("-A -t 192.0.2.10 -s rr", "expected VIP:PORT"),
            ("-A -t 192.0.2.12:80 -b sh-bogus", "unknown scheduler flag"),
            ("-A -t 192.0.2.12:80 -M 255.0.255.0", "not contiguous"),
            ("-A -t 192.0.2.12:80 --pe sip", "not supported"),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -w x", "not a non-negative number"),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -w", "needs a weight"),
            ("-a -t 192.0.2.99:80 -r 10.0.0.1", "no earlier -A line"),
            ("-a -t 192.0.2.10:80 -w 1", "missing the real server"),
            ("-a -t 192.0.2.10:80 -r 2001:db8::1 -g", "address family"),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -i --tun-type gre", "not supported"),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -i --tun-type gue", "--tun-port"),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -s rr", "not supported for a real server"),
            ("-E -t 192.0.2.10:80 -s rr", "not part of ipvsadm-save"),
            ("-A -t 192.0.2.10:80", "defined twice"),
            ("hello", "expected -A or -a"),
        ];
        for (line, want) in cases {
            let (n, msg) = line_err(&format!("{head}\n# comment\n{line}\n"));
            assert_eq!(n, 4, "{line}");
            assert!(msg.contains(want), "{line}: {msg}");
        }
        let e = p(&format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1\n-a -t 192.0.2.10:80 -r 10.0.0.1\n")).unwrap_err();
        assert_eq!(e.to_string(), "lvs.rules:3: real server 10.0.0.1 is listed twice for tcp 192.0.2.10:80");
        let e = read(Path::new("/nonexistent/lvs.rules")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/lvs.rules: cannot read"), "{e}");
    }
}
