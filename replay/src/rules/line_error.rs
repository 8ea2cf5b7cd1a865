//! [`LineError`]: what is wrong with one line of a rules file.

use std::net::{IpAddr, Ipv4Addr};

use lb_sched::{Protocol, SchedError};

use crate::config::{SpecError, Vip};

/// What is wrong with one line of a rules file: the error of a [`RulesError::Line`], which adds
/// the file and the line number.
///
/// One variant per kind of problem, carrying the offending option and value as they are written
/// in the file (`option` is the spelling used, `-t` or `--tcp-service`; `value` the text after
/// it). The [`Display`](std::fmt::Display) text is the message `RulesError::Line` shows after
/// `path:line: `.
///
/// [`RulesError::Line`]: super::RulesError::Line
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The line starts with an `ipvsadm` command that `ipvsadm-save` never writes (`-E`, `-e`,
    /// `-D`, `-d`, `-C` or their long forms).
    #[error("{command:?} is not part of ipvsadm-save output; only -A and -a lines are replayed")]
    NotSaveOutput {
        /// The command.
        command: String,
    },
    /// The line starts with something other than `-A` / `-a` (or their long forms).
    #[error("expected -A or -a at the start of the line, found {found:?}")]
    ExpectedCommand {
        /// The first word of the line.
        found: String,
    },
    /// An option is the last word of the line but takes a value.
    #[error("{option} needs a {expected}")]
    MissingValue {
        /// The option.
        option: String,
        /// What the value is (`VIP:PORT`, `scheduler`, `weight`...).
        expected: &'static str,
    },
    /// A `-t` / `-u` address has no port, or is not an address.
    #[error("{option} {value:?}: expected VIP:PORT ([V6]:PORT)")]
    ExpectedVipPort {
        /// `-t`, `-u` or a long form.
        option: String,
        /// The value.
        value: String,
    },
    /// An address is a host name: replay does not look names up.
    #[error(
        "{option} {value:?}: {host:?} is a host name; replay reads addresses: write the rules with `ipvsadm-save -n`"
    )]
    HostName {
        /// `-t`, `-u` or a long form, or `-r` (for every spelling of the real server option).
        option: String,
        /// The value.
        value: String,
        /// The host name in it.
        host: String,
    },
    /// A port is a service name and there is no `/etc/services` to look it up.
    #[error("{option} {value:?}: {service:?} is a service name and there is no /etc/services to look it up: write the rules with `ipvsadm-save -n`")]
    NoServicesDatabase {
        /// `-t`, `-u` or a long form, or `-r` (for every spelling of the real server option).
        option: String,
        /// The value.
        value: String,
        /// The service name in it.
        service: String,
    },
    /// A port is neither a number nor a service of the protocol in `/etc/services`.
    #[error("{option} {value:?}: {service:?} is not a port number nor a {proto} service in /etc/services: write the rules with `ipvsadm-save -n`")]
    UnknownService {
        /// `-t`, `-u` or a long form, or `-r` (for every spelling of the real server option).
        option: String,
        /// The value.
        value: String,
        /// The service name in it.
        service: String,
        /// The protocol of the line's service.
        proto: Protocol,
    },
    /// A `-r` address that is not an address or address:port.
    #[error("-r: {0}")]
    RealServerAddress(SpecError),
    /// A fwmark service (`-f`).
    #[error("fwmark services are not supported (replay --vip any is the catch-all service)")]
    FwmarkService,
    /// An SCTP service (`--sctp-service`).
    #[error("SCTP services are not supported")]
    SctpService,
    /// A `-s` name the registry does not know.
    #[error("{0}")]
    UnknownScheduler(SchedError),
    /// A `-b` flag list that does not parse.
    #[error("{0}")]
    UnknownSchedFlag(SchedError),
    /// A `-w`, `-x` or `-y` value that is not a `u32`.
    #[error("{option} {value:?} is not a non-negative number")]
    NotANumber {
        /// The option.
        option: String,
        /// The value.
        value: String,
    },
    /// A `--tun-port` value that is not a port number.
    #[error("--tun-port {value:?} is not a port")]
    BadTunPort {
        /// The value.
        value: String,
    },
    /// An option that a service line (`-A`) does not take.
    #[error("option {option:?} is not supported for a service (-A)")]
    UnsupportedServiceOption {
        /// The option.
        option: String,
    },
    /// An option that a real server line (`-a`) does not take.
    #[error("option {option:?} is not supported for a real server (-a)")]
    UnsupportedServerOption {
        /// The option.
        option: String,
    },
    /// No `-t` / `-u` on the line.
    #[error("missing the service address (-t VIP:PORT or -u VIP:PORT)")]
    MissingServiceAddress,
    /// A `-M` prefix length longer than the address.
    #[error("netmask /{len} is longer than {max}")]
    NetmaskTooLong {
        /// The prefix length.
        len: u8,
        /// The family's longest (32 or 128).
        max: u8,
    },
    /// A dotted `-M` mask whose ones are not contiguous.
    #[error("netmask {netmask} is not contiguous")]
    NetmaskNotContiguous {
        /// The mask.
        netmask: Ipv4Addr,
    },
    /// A `-M` value that is neither a prefix length nor (for an IPv4 service) a dotted mask.
    #[error("netmask {netmask:?}: expected a dotted IPv4 mask or a prefix length")]
    BadNetmask {
        /// The value.
        netmask: String,
    },
    /// A second `-A` line for the same service.
    #[error("service {vip} is defined twice")]
    DuplicateService {
        /// The service.
        vip: Vip,
    },
    /// An `-a` line without `-r`.
    #[error("missing the real server (-r RIP[:PORT])")]
    MissingRealServer,
    /// `--tun-type gue` without `--tun-port`.
    #[error("--tun-type gue needs --tun-port PORT")]
    GueWithoutPort,
    /// `--tun-type gue` with a method other than tunnelling (`-i`).
    #[error("--tun-type gue needs the tunnel method (-i)")]
    GueWithoutTunnel,
    /// A `--tun-type` other than `ipip` and `gue`.
    #[error("tunnel type {tun_type:?} is not supported (ipip or gue)")]
    UnsupportedTunnelType {
        /// The value.
        tun_type: String,
    },
    /// An `-a` line for a service that no earlier `-A` line defines.
    #[error("real server for service {vip}, which no earlier -A line defines")]
    UndefinedService {
        /// The service.
        vip: Vip,
    },
    /// A real server of the other address family than its service's, not tunnelled.
    #[error("real server {server} is not of the service's address family (only tunnels may mix)")]
    AddressFamilyMismatch {
        /// The real server's address.
        server: IpAddr,
        /// The service.
        vip: Vip,
    },
    /// A second `-a` line for the same real server (address and port) of a service.
    #[error("real server {server} is listed twice for {vip}")]
    DuplicateRealServer {
        /// The real server's address.
        server: IpAddr,
        /// Its port, if the line gives one.
        port: Option<u16>,
        /// The service.
        vip: Vip,
    },
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use lb_sched::registry::Registry;

    use super::super::{parse_with_services, RulesError};
    use super::*;

    /// Each variant's index, so that the test below sees them all (a new variant does not compile
    /// here until it has a case).
    fn index(e: &LineError) -> usize {
        match e {
            LineError::NotSaveOutput { .. } => 0,
            LineError::ExpectedCommand { .. } => 1,
            LineError::MissingValue { .. } => 2,
            LineError::ExpectedVipPort { .. } => 3,
            LineError::HostName { .. } => 4,
            LineError::NoServicesDatabase { .. } => 5,
            LineError::UnknownService { .. } => 6,
            LineError::RealServerAddress(_) => 7,
            LineError::FwmarkService => 8,
            LineError::SctpService => 9,
            LineError::UnknownScheduler(_) => 10,
            LineError::UnknownSchedFlag(_) => 11,
            LineError::NotANumber { .. } => 12,
            LineError::BadTunPort { .. } => 13,
            LineError::UnsupportedServiceOption { .. } => 14,
            LineError::UnsupportedServerOption { .. } => 15,
            LineError::MissingServiceAddress => 16,
            LineError::NetmaskTooLong { .. } => 17,
            LineError::NetmaskNotContiguous { .. } => 18,
            LineError::BadNetmask { .. } => 19,
            LineError::DuplicateService { .. } => 20,
            LineError::MissingRealServer => 21,
            LineError::GueWithoutPort => 22,
            LineError::GueWithoutTunnel => 23,
            LineError::UnsupportedTunnelType { .. } => 24,
            LineError::UndefinedService { .. } => 25,
            LineError::AddressFamilyMismatch { .. } => 26,
            LineError::DuplicateRealServer { .. } => 27,
        }
    }
    const VARIANTS: usize = 28;

    fn s(v: &str) -> String {
        v.to_string()
    }

    fn tcp(addr: &str) -> Vip {
        Vip::Addr { proto: Some(Protocol::Tcp), addr: addr.parse().unwrap() }
    }

    /// One bad line (or more) per kind of line error: the error it gives, and the whole text that
    /// error shows (path, line, message) — the text of the `format!` messages these variants
    /// replaced, byte for byte.
    #[test]
    fn every_line_error_shows_its_full_text() {
        let head = "-A -t 192.0.2.10:80 -s wlc\n";
        let known = "rr, wrr, lc, wlc, sed, nq, fo, ovf, twos, sh, dh, mh, maglev, ring, hrw, swrr, p2c, random";
        let db = "domain 53/tcp\ndomain 53/udp\nhttp 80/tcp www\nhttps 443/tcp\n";
        // (services database, text, line, error, text shown)
        let cases: Vec<(Option<&str>, String, usize, LineError, String)> = vec![
            (
                None,
                s("-E -t 192.0.2.10:80 -s rr"),
                1,
                LineError::NotSaveOutput { command: s("-E") },
                s("lvs.rules:1: \"-E\" is not part of ipvsadm-save output; only -A and -a lines are replayed"),
            ),
            (
                None,
                s("\n  hello world # greeting"),
                2,
                LineError::ExpectedCommand { found: s("hello") },
                s("lvs.rules:2: expected -A or -a at the start of the line, found \"hello\""),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1 -w"),
                2,
                LineError::MissingValue { option: s("-w"), expected: "weight" },
                s("lvs.rules:2: -w needs a weight"),
            ),
            (
                None,
                s("-A -t 192.0.2.10:80 --scheduler"),
                1,
                LineError::MissingValue { option: s("--scheduler"), expected: "scheduler" },
                s("lvs.rules:1: --scheduler needs a scheduler"),
            ),
            (
                None,
                s("-A -t 192.0.2.10 -s rr"),
                1,
                LineError::ExpectedVipPort { option: s("-t"), value: s("192.0.2.10") },
                s("lvs.rules:1: -t \"192.0.2.10\": expected VIP:PORT ([V6]:PORT)"),
            ),
            (
                None,
                s("-A --udp-service [2001:db8::1"),
                1,
                LineError::ExpectedVipPort { option: s("--udp-service"), value: s("[2001:db8::1") },
                s("lvs.rules:1: --udp-service \"[2001:db8::1\": expected VIP:PORT ([V6]:PORT)"),
            ),
            (
                None,
                s("-A -t www.example.com:80"),
                1,
                LineError::HostName { option: s("-t"), value: s("www.example.com:80"), host: s("www.example.com") },
                s("lvs.rules:1: -t \"www.example.com:80\": \"www.example.com\" is a host name; replay reads addresses: write the rules with `ipvsadm-save -n`"),
            ),
            (
                None,
                format!("{head}-a --tcp-service 192.0.2.10:80 --real-server backend.example:8080"),
                2,
                LineError::HostName { option: s("-r"), value: s("backend.example:8080"), host: s("backend.example") },
                s("lvs.rules:2: -r \"backend.example:8080\": \"backend.example\" is a host name; replay reads addresses: write the rules with `ipvsadm-save -n`"),
            ),
            (
                None,
                s("-A -t 192.0.2.10:http"),
                1,
                LineError::NoServicesDatabase { option: s("-t"), value: s("192.0.2.10:http"), service: s("http") },
                s("lvs.rules:1: -t \"192.0.2.10:http\": \"http\" is a service name and there is no /etc/services to look it up: write the rules with `ipvsadm-save -n`"),
            ),
            (
                Some(db),
                s("-A -u 192.0.2.10:https"),
                1,
                LineError::UnknownService {
                    option: s("-u"),
                    value: s("192.0.2.10:https"),
                    service: s("https"),
                    proto: Protocol::Udp,
                },
                s("lvs.rules:1: -u \"192.0.2.10:https\": \"https\" is not a port number nor a udp service in /etc/services: write the rules with `ipvsadm-save -n`"),
            ),
            (
                Some(db),
                s("-A -t 192.0.2.10:http\n-a -t 192.0.2.10:80 -r 10.0.0.1:gopher"),
                2,
                LineError::UnknownService {
                    option: s("-r"),
                    value: s("10.0.0.1:gopher"),
                    service: s("gopher"),
                    proto: Protocol::Tcp,
                },
                s("lvs.rules:2: -r \"10.0.0.1:gopher\": \"gopher\" is not a port number nor a tcp service in /etc/services: write the rules with `ipvsadm-save -n`"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r [foo"),
                2,
                LineError::RealServerAddress(SpecError::Address(s("[foo"))),
                s("lvs.rules:2: -r: \"[foo\" is not an address or address:port (IPv6 as [2001:db8::1]:80)"),
            ),
            (
                None,
                s("-A -f 1 -s rr"),
                1,
                LineError::FwmarkService,
                s("lvs.rules:1: fwmark services are not supported (replay --vip any is the catch-all service)"),
            ),
            (
                None,
                s("-A --sctp-service 192.0.2.10:80"),
                1,
                LineError::SctpService,
                s("lvs.rules:1: SCTP services are not supported"),
            ),
            (
                None,
                s("-A -t 192.0.2.12:80 -s lblcr"),
                1,
                LineError::UnknownScheduler(SchedError::UnknownScheduler { name: s("lblcr"), known: s(known) }),
                format!("lvs.rules:1: unknown scheduler \"lblcr\"; known schedulers: {known}"),
            ),
            (
                None,
                s("-A -t 192.0.2.12:80 -b sh-port,sh-bogus"),
                1,
                LineError::UnknownSchedFlag(SchedError::BadFlag(s("sh-bogus"))),
                s("lvs.rules:1: unknown scheduler flag \"sh-bogus\"; known: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1 -w x"),
                2,
                LineError::NotANumber { option: s("-w"), value: s("x") },
                s("lvs.rules:2: -w \"x\" is not a non-negative number"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1 --u-threshold -1"),
                2,
                LineError::NotANumber { option: s("--u-threshold"), value: s("-1") },
                s("lvs.rules:2: --u-threshold \"-1\" is not a non-negative number"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1 -i --tun-port 70000"),
                2,
                LineError::BadTunPort { value: s("70000") },
                s("lvs.rules:2: --tun-port \"70000\" is not a port"),
            ),
            (
                None,
                s("-A -t 192.0.2.12:80 --pe sip"),
                1,
                LineError::UnsupportedServiceOption { option: s("--pe") },
                s("lvs.rules:1: option \"--pe\" is not supported for a service (-A)"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1 -s rr"),
                2,
                LineError::UnsupportedServerOption { option: s("-s") },
                s("lvs.rules:2: option \"-s\" is not supported for a real server (-a)"),
            ),
            (
                None,
                s("-A -s rr"),
                1,
                LineError::MissingServiceAddress,
                s("lvs.rules:1: missing the service address (-t VIP:PORT or -u VIP:PORT)"),
            ),
            (
                None,
                s("-A -t 192.0.2.12:80 -M 33"),
                1,
                LineError::NetmaskTooLong { len: 33, max: 32 },
                s("lvs.rules:1: netmask /33 is longer than 32"),
            ),
            (
                None,
                s("-A -t [2001:db8::12]:80 -M 129"),
                1,
                LineError::NetmaskTooLong { len: 129, max: 128 },
                s("lvs.rules:1: netmask /129 is longer than 128"),
            ),
            (
                None,
                s("-A -t 192.0.2.12:80 -M 255.0.255.0"),
                1,
                LineError::NetmaskNotContiguous { netmask: Ipv4Addr::new(255, 0, 255, 0) },
                s("lvs.rules:1: netmask 255.0.255.0 is not contiguous"),
            ),
            (
                None,
                s("-A -t 192.0.2.12:80 -M ffff::"),
                1,
                LineError::BadNetmask { netmask: s("ffff::") },
                s("lvs.rules:1: netmask \"ffff::\": expected a dotted IPv4 mask or a prefix length"),
            ),
            (
                None,
                s("-A -t [2001:db8::12]:80 -M 255.255.255.0"),
                1,
                LineError::BadNetmask { netmask: s("255.255.255.0") },
                s("lvs.rules:1: netmask \"255.255.255.0\": expected a dotted IPv4 mask or a prefix length"),
            ),
            (
                None,
                format!("{head}-A -t 192.0.2.10:80"),
                2,
                LineError::DuplicateService { vip: tcp("192.0.2.10:80") },
                s("lvs.rules:2: service tcp 192.0.2.10:80 is defined twice"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -w 1"),
                2,
                LineError::MissingRealServer,
                s("lvs.rules:2: missing the real server (-r RIP[:PORT])"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1 -i --tun-type gue"),
                2,
                LineError::GueWithoutPort,
                s("lvs.rules:2: --tun-type gue needs --tun-port PORT"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1 -m --tun-type gue --tun-port 6080"),
                2,
                LineError::GueWithoutTunnel,
                s("lvs.rules:2: --tun-type gue needs the tunnel method (-i)"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1 -i --tun-type gre"),
                2,
                LineError::UnsupportedTunnelType { tun_type: s("gre") },
                s("lvs.rules:2: tunnel type \"gre\" is not supported (ipip or gue)"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.99:80 -r 10.0.0.1"),
                2,
                LineError::UndefinedService { vip: tcp("192.0.2.99:80") },
                s("lvs.rules:2: real server for service tcp 192.0.2.99:80, which no earlier -A line defines"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 2001:db8::1 -g"),
                2,
                LineError::AddressFamilyMismatch { server: "2001:db8::1".parse().unwrap(), vip: tcp("192.0.2.10:80") },
                s("lvs.rules:2: real server 2001:db8::1 is not of the service's address family (only tunnels may mix)"),
            ),
            (
                None,
                format!("{head}-a -t 192.0.2.10:80 -r 10.0.0.1:8080\n-a -t 192.0.2.10:80 -r 10.0.0.1:8080 -w 2"),
                3,
                LineError::DuplicateRealServer {
                    server: "10.0.0.1".parse().unwrap(),
                    port: Some(8080),
                    vip: tcp("192.0.2.10:80"),
                },
                s("lvs.rules:3: real server 10.0.0.1 is listed twice for tcp 192.0.2.10:80"),
            ),
        ];
        let mut seen = [false; VARIANTS];
        for (services, text, line, error, shown) in cases {
            seen[index(&error)] = true;
            let db = || services.map(str::to_string);
            let e = parse_with_services(&text, Path::new("lvs.rules"), Registry::builtin(), &db).unwrap_err();
            assert_eq!(
                e,
                RulesError::Line { path: PathBuf::from("lvs.rules"), line, error: error.clone() },
                "{text:?}"
            );
            assert_eq!(e.to_string(), shown, "{text:?}");
            // The line error's own text is the message after `path:line: `.
            assert_eq!(format!("lvs.rules:{line}: {error}"), shown, "{text:?}");
            // Shown once: not also the error's source (anyhow's `{:#}` would print it twice).
            assert!(std::error::Error::source(&e).is_none(), "{text:?}");
        }
        let missing: Vec<usize> = (0..VARIANTS).filter(|&i| !seen[i]).collect();
        assert!(missing.is_empty(), "variants without a case: {missing:?}");
    }
}
