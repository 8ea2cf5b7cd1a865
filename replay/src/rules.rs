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

mod line_error;
pub use line_error::LineError;

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
    #[error("{path}:{line}: {error}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong. Shown in this error's text, so not its `source()` (which would show it
        /// twice in an error chain).
        error: LineError,
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
        let err = |error| RulesError::Line { path: path.to_path_buf(), line: i + 1, error };
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
/// look names up. `opt` names the option in errors.
fn split_addr_port(
    opt: &str,
    v: &str,
    proto: Protocol,
    services_db: &dyn Fn() -> Option<String>,
) -> Result<Option<(std::net::IpAddr, Option<u16>)>, LineError> {
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
        return Err(LineError::HostName { option: opt.to_string(), value: v.to_string(), host: host.to_string() });
    };
    let Some(port) = port else { return Ok(Some((ip, None))) };
    if let Ok(n) = port.parse::<u16>() {
        return Ok(Some((ip, Some(n))));
    }
    let db = services_db().ok_or_else(|| LineError::NoServicesDatabase {
        option: opt.to_string(),
        value: v.to_string(),
        service: port.to_string(),
    })?;
    let n = service_port(&db, port, proto).ok_or_else(|| LineError::UnknownService {
        option: opt.to_string(),
        value: v.to_string(),
        service: port.to_string(),
        proto,
    })?;
    Ok(Some((ip, Some(n))))
}

fn parse_line(
    line: &str,
    services: &mut Vec<ServiceSpec>,
    registry: &Registry,
    services_db: &dyn Fn() -> Option<String>,
) -> Result<(), LineError> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let mut it = toks.iter().copied().peekable();
    let cmd = it.next().unwrap_or_default();
    let adding_service = match cmd {
        "-A" | "--add-service" => true,
        "-a" | "--add-server" => false,
        "-E" | "--edit-service" | "-e" | "--edit-server" | "-D" | "--delete-service" | "-d" | "--delete-server"
        | "-C" | "--clear" => return Err(LineError::NotSaveOutput { command: cmd.to_string() }),
        other => return Err(LineError::ExpectedCommand { found: other.to_string() }),
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
        let mut value = |expected: &'static str| {
            it.next().ok_or_else(|| LineError::MissingValue { option: opt.to_string(), expected })
        };
        match opt {
            "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                let v = value("VIP:PORT")?;
                let proto = if opt == "-t" || opt == "--tcp-service" { Protocol::Tcp } else { Protocol::Udp };
                let expected_vip_port = || LineError::ExpectedVipPort { option: opt.to_string(), value: v.to_string() };
                let (ip, port) = split_addr_port(opt, v, proto, services_db)?.ok_or_else(expected_vip_port)?;
                let port = port.ok_or_else(expected_vip_port)?;
                vip = Some(Vip::Addr { proto: Some(proto), addr: SocketAddr::new(ip, port) });
                service_proto = proto;
            }
            "-f" | "--fwmark-service" => return Err(LineError::FwmarkService),
            "--sctp-service" => return Err(LineError::SctpService),
            "-s" | "--scheduler" if adding_service => {
                let v = value("scheduler")?;
                registry.get(v).map_err(LineError::UnknownScheduler)?;
                spec.sched = v.to_string();
            }
            "-b" | "--sched-flags" if adding_service => {
                spec.flags = SchedFlags::parse(value("flag list")?).map_err(LineError::UnknownSchedFlag)?;
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
                let (addr, port) = match split_addr_port("-r", v, service_proto, services_db)? {
                    Some(ap) => ap,
                    None => crate::config::parse_addr_port(v).map_err(LineError::RealServerAddress)?,
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
                tun_port = Some(v.parse().map_err(|_| LineError::BadTunPort { value: v.to_string() })?);
            }
            other => {
                let option = other.to_string();
                return Err(if adding_service {
                    LineError::UnsupportedServiceOption { option }
                } else {
                    LineError::UnsupportedServerOption { option }
                });
            }
        }
    }
    let vip = vip.ok_or(LineError::MissingServiceAddress)?;
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
            return Err(LineError::DuplicateService { vip });
        }
        spec.vip = vip;
        services.push(spec);
        return Ok(());
    }
    let mut b = backend.ok_or(LineError::MissingRealServer)?;
    b.fwd = Some(fwd.unwrap_or(ForwardMethod::DirectRoute));
    b.weight = weight.unwrap_or(1);
    b.u_threshold = upper.unwrap_or(0);
    b.l_threshold = lower.unwrap_or(0);
    match (tun_type, b.fwd) {
        (None | Some("ipip"), _) => {}
        (Some("gue"), Some(ForwardMethod::Tunnel)) => b.gue_port = Some(tun_port.ok_or(LineError::GueWithoutPort)?),
        (Some("gue"), _) => return Err(LineError::GueWithoutTunnel),
        (Some(other), _) => return Err(LineError::UnsupportedTunnelType { tun_type: other.to_string() }),
    }
    let svc = services.iter_mut().find(|s| s.vip == vip).ok_or(LineError::UndefinedService { vip })?;
    if let Vip::Addr { addr, .. } = vip {
        if addr.is_ipv4() != b.addr.is_ipv4() && b.fwd != Some(ForwardMethod::Tunnel) {
            return Err(LineError::AddressFamilyMismatch { server: b.addr, vip });
        }
    }
    if svc.backends.iter().any(|x| x.addr == b.addr && x.port == b.port) {
        return Err(LineError::DuplicateRealServer { server: b.addr, port: b.port, vip });
    }
    svc.backends.push(b);
    Ok(())
}

fn number(opt: &str, v: &str) -> Result<u32, LineError> {
    v.parse().map_err(|_| LineError::NotANumber { option: opt.to_string(), value: v.to_string() })
}

/// A netmask as a prefix length: dotted (`255.255.255.0`) for IPv4, a length for either.
fn parse_netmask(m: &str, v6: bool) -> Result<u8, LineError> {
    if let Ok(len) = m.parse::<u8>() {
        let max = if v6 { 128 } else { 32 };
        return if len <= max { Ok(len) } else { Err(LineError::NetmaskTooLong { len, max }) };
    }
    match m.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) if !v6 => {
            let bits = u32::from(a);
            let len = bits.leading_ones();
            if bits.checked_shl(len).unwrap_or(0) != 0 {
                return Err(LineError::NetmaskNotContiguous { netmask: a });
            }
            Ok(len as u8)
        }
        _ => Err(LineError::BadNetmask { netmask: m.to_string() }),
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
            parse_with_services(text, Path::new("x.rules"), Registry::builtin(), db).unwrap_err()
        };
        let e = err("-A -u 192.0.2.10:https\n", &db);
        assert!(matches!(e, RulesError::Line { error: LineError::UnknownService { .. }, .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("\"https\" is not a port number nor a udp service") && e.contains("ipvsadm-save -n"), "{e}");
        let e = err("-A -t www.example.com:80\n", &db);
        assert!(matches!(e, RulesError::Line { error: LineError::HostName { .. }, .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("\"www.example.com\" is a host name") && e.contains("ipvsadm-save -n"), "{e}");
        let e = err("-A -t 192.0.2.10:http\n", &|| None);
        assert!(matches!(e, RulesError::Line { error: LineError::NoServicesDatabase { .. }, .. }), "{e:?}");
        assert!(e.to_string().contains("no /etc/services"), "{e}");
    }

    #[test]
    fn an_empty_rules_file_says_so() {
        for text in ["", "# only a comment\n\n"] {
            let e = p(text).unwrap_err();
            assert!(matches!(e, RulesError::Empty { .. }));
            assert!(e.to_string().contains("no virtual service in the rules file"), "{e}");
        }
    }

    fn line_err(text: &str) -> (usize, LineError) {
        match p(text).unwrap_err() {
            RulesError::Line { line, error, .. } => (line, error),
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
        type Is = fn(&LineError) -> bool;
        let cases: [(&str, &str, Is); 17] = [
            ("-A -f 1 -s rr", "fwmark", |e| matches!(e, LineError::FwmarkService)),
            ("-A -t 192.0.2.10:80 -s lblcr", "unknown scheduler", |e| matches!(e, LineError::UnknownScheduler(_))),
            ("-A -t 192.0.2.10 -s rr", "expected VIP:PORT", |e| matches!(e, LineError::ExpectedVipPort { .. })),
            ("-A -t 192.0.2.12:80 -b sh-bogus", "unknown scheduler flag", |e| {
                matches!(e, LineError::UnknownSchedFlag(_))
            }),
            ("-A -t 192.0.2.12:80 -M 255.0.255.0", "not contiguous", |e| {
                matches!(e, LineError::NetmaskNotContiguous { .. })
            }),
            ("-A -t 192.0.2.12:80 --pe sip", "not supported", |e| {
                matches!(e, LineError::UnsupportedServiceOption { .. })
            }),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -w x", "not a non-negative number", |e| {
                matches!(e, LineError::NotANumber { .. })
            }),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -w", "needs a weight", |e| matches!(e, LineError::MissingValue { .. })),
            ("-a -t 192.0.2.99:80 -r 10.0.0.1", "no earlier -A line", |e| {
                matches!(e, LineError::UndefinedService { .. })
            }),
            ("-a -t 192.0.2.10:80 -w 1", "missing the real server", |e| matches!(e, LineError::MissingRealServer)),
            ("-a -t 192.0.2.10:80 -r 2001:db8::1 -g", "address family", |e| {
                matches!(e, LineError::AddressFamilyMismatch { .. })
            }),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -i --tun-type gre", "not supported", |e| {
                matches!(e, LineError::UnsupportedTunnelType { .. })
            }),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -i --tun-type gue", "--tun-port", |e| {
                matches!(e, LineError::GueWithoutPort)
            }),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -s rr", "not supported for a real server", |e| {
                matches!(e, LineError::UnsupportedServerOption { .. })
            }),
            ("-E -t 192.0.2.10:80 -s rr", "not part of ipvsadm-save", |e| matches!(e, LineError::NotSaveOutput { .. })),
            ("-A -t 192.0.2.10:80", "defined twice", |e| matches!(e, LineError::DuplicateService { .. })),
            ("hello", "expected -A or -a", |e| matches!(e, LineError::ExpectedCommand { .. })),
        ];
        for (line, want, is) in cases {
            let (n, error) = line_err(&format!("{head}\n# comment\n{line}\n"));
            assert_eq!(n, 4, "{line}");
            let msg = error.to_string();
            assert!(msg.contains(want), "{line}: {msg}");
            assert!(is(&error), "{line}: {error:?}");
        }
        let e = p(&format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1\n-a -t 192.0.2.10:80 -r 10.0.0.1\n")).unwrap_err();
        assert_eq!(e.to_string(), "lvs.rules:3: real server 10.0.0.1 is listed twice for tcp 192.0.2.10:80");
        assert!(matches!(e, RulesError::Line { line: 3, error: LineError::DuplicateRealServer { .. }, .. }), "{e:?}");
        let e = read(Path::new("/nonexistent/lvs.rules")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/lvs.rules: cannot read"), "{e}");
    }
}
