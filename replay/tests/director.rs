//! `director` on a network: namespaces the tests create and remove (scripts/director-netns.sh: a
//! bridge, a client, the director with `ip_forward=0`, two real servers serving HTTP), real TCP
//! connections from the client's curl through lbkit to the servers.
//!
//! Needs root, iproute2, ethtool, python3 and curl; skipped (loudly) without them, and a skip
//! fails under CI=true.

#![cfg(all(feature = "cli", feature = "xdp", target_os = "linux"))]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

static NEXT: AtomicU32 = AtomicU32::new(0);
const VIP: &str = "10.8.0.100";
const S1: &str = "10.7.0.11";
const S2: &str = "10.7.0.12";

fn ready() -> bool {
    available("root (AF_XDP, XDP programs and network namespaces)", is_root())
        && available("iproute2 (ip)", have("ip", "-V"))
        && available("ethtool", have("ethtool", "--version"))
        && available("python3", have("python3", "--version"))
        && available("curl", have("curl", "--version"))
        && available("ping (iputils-ping)", have("ping", "-V"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/director-netns.sh")
}

/// The command line of a VIP:80 service over `backends` (ADDR[:PORT]) with rr in `mode`, and
/// `more` flags.
fn rr_service(mode: &str, backends: &[&str], more: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["--mode", mode, "--sched", "rr", "--vip", &format!("{VIP}:80")].map(String::from).into();
    for b in backends {
        a.extend(["--backend".to_string(), b.to_string()]);
    }
    a.extend(more.iter().map(|m| m.to_string()));
    a
}

/// The namespaces, removed when dropped.
struct Net {
    p: String,
}

impl Net {
    fn up(mode: &str) -> Net {
        Self::up_with(mode, 1)
    }
    /// With `queues` RX / TX queues on the director's interface.
    fn up_with(mode: &str, queues: u32) -> Net {
        let p = format!("lbd{}{}", std::process::id() % 10_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let _ = Command::new(script()).args(["down", &p]).status();
        let out = Command::new(script())
            .args(["up", &p, mode])
            .env("DIRECTOR_QUEUES", queues.to_string())
            .output()
            .expect("director-netns.sh");
        let net = Net { p };
        assert!(out.status.success(), "director-netns.sh up: {}", String::from_utf8_lossy(&out.stderr));
        net
    }
    fn ns(&self, h: &str) -> String {
        format!("{}-{h}", self.p)
    }
    /// Runs a command in namespace `h`.
    fn exec(&self, h: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.ns(h)]).args(args).output().expect("ip netns exec")
    }
    /// The client's `curl` of `path` on the VIP: the body, or the failure.
    fn get(&self, path: &str) -> Result<String, String> {
        let url = format!("http://{VIP}{path}");
        let o = self.exec("cl", &["curl", "-s", "-S", "-m", "5", "--retry", "0", &url]);
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into())
        }
    }
    /// The requests for `path` real server `i` (1 or 2) logged.
    fn served(&self, i: u32, path: &str) -> usize {
        let log = std::fs::read_to_string(format!("/tmp/{}-s{i}.log", self.p)).unwrap_or_default();
        log.lines().filter(|l| l.contains(&format!("\"GET {path} "))).count()
    }
    /// Whether an XDP program is on the director's interface.
    fn xdp_attached(&self) -> bool {
        let o = self.exec("dir", &["ip", "-d", "link", "show", "eth0"]);
        let s = String::from_utf8_lossy(&o.stdout);
        s.contains("prog/xdp") || s.contains(" xdp")
    }
    /// Starts the director in its namespace with `args`; returns once it said `ready`.
    fn director<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Director {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns("dir"), env!("CARGO_BIN_EXE_director"), "--iface", "eth0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("director");
        let err = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let e = Arc::clone(&err);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = e.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let start = Instant::now();
        loop {
            if err.lock().unwrap().lines().any(|l| l == "ready") {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("director exited ({st}) before ready: {}", err.lock().unwrap());
            }
            assert!(start.elapsed() < Duration::from_secs(15), "director not ready: {}", err.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
        Director { child, err }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.p]).status();
    }
}

struct Director {
    child: Child,
    err: Arc<Mutex<String>>,
}

impl Director {
    fn signal(&self, sig: &str) {
        let st = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(st.success());
    }
    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }
    /// SIGHUP; returns once the director's standard error says `expect` (at most 5 s).
    fn reload(&self, expect: &str) {
        self.signal("-HUP");
        let start = Instant::now();
        while !self.stderr().contains(expect) {
            assert!(start.elapsed() < Duration::from_secs(5), "no {expect:?} after SIGHUP: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    /// SIGINT; the exit status and the report on standard output.
    fn stop(mut self) -> (i32, String) {
        self.signal("-INT");
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                let mut out = String::new();
                self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
                return (st.code().unwrap_or(-1), out);
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("director did not stop on SIGINT: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The connections the report says a real server got.
fn report_connections(report: &serde_json::Value, addr: &str) -> u64 {
    report["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["address"] == addr)
        .map(|d| d["connections"].as_u64().unwrap())
        .sum()
}

/// DR and NAT: 100 HTTP requests from the client all complete with a server's body, 50 on each
/// (rr); the report's per-destination counts are what the servers logged; the director's own
/// address answers ping while it runs; after SIGINT the report is printed, the status is 0 and
/// no XDP program is left on the interface.
#[test]
fn dr_and_nat_carry_http_through_the_director() {
    if !ready() {
        return;
    }
    for mode in ["dr", "nat"] {
        let net = Net::up(mode);
        let d = net.director(&rr_service(mode, &[&format!("{S1}:80"), &format!("{S2}:80")], &["--json"]));
        assert!(net.xdp_attached(), "{mode}: no XDP program on the director's interface");
        let mut bodies = Vec::new();
        for i in 0..100 {
            match net.get("/") {
                Ok(b) => bodies.push(b),
                Err(e) => panic!("{mode}: request {i} failed: {e}\ndirector: {}", d.stderr()),
            }
        }
        let ping = net.exec("cl", &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.8.0.1"]);
        assert!(ping.status.success(), "{mode}: the director's own address does not answer ping");
        let (code, out) = d.stop();
        assert_eq!(code, 0, "{mode}: {out}");
        let ones = bodies.iter().filter(|b| *b == "s1").count();
        let twos = bodies.iter().filter(|b| *b == "s2").count();
        assert_eq!((ones, twos), (50, 50), "{mode}: rr over two servers: {bodies:?}");
        assert_eq!((net.served(1, "/"), net.served(2, "/")), (50, 50), "{mode}: what the servers logged");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(report_connections(&report, S1), 50, "{mode}: {report}");
        assert_eq!(report_connections(&report, S2), 50, "{mode}: {report}");
        assert!(!net.xdp_attached(), "{mode}: the XDP program is still attached after SIGINT");
    }
}

/// Without the capabilities, one line says which are missing, and nothing runs.
#[test]
fn without_capabilities_the_missing_ones_are_named() {
    if !available("root (to drop the capabilities)", is_root())
        || !available("setpriv (util-linux)", have("setpriv", "--version"))
    {
        return;
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(env!("CARGO_BIN_EXE_director"))
        .args(["--iface", "lo", "--mode", "dr", "--vip", "10.8.0.100:80", "--backend", "10.7.0.11"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for cap in ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"] {
        assert!(err.contains(cap), "{cap} not named: {err}");
    }
}

/// The established TCP connections to port 80 in real server `i`'s namespace.
fn established(net: &Net, i: u32) -> usize {
    let o = net.exec(&format!("s{i}"), &["ss", "-Htn", "state", "established", "( sport = :80 )"]);
    String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}

/// SIGHUP, as a health checker drives IPVS (DR, default knobs), while a long transfer runs to
/// one server: a rules file that does not parse changes nothing; weight 0 drains it (new
/// connections go to the other, the transfer goes on); removing it leaves the transfer's
/// connection in the table but its packets dropped (IPVS with `expire_nodest_conn` = 0); adding
/// it back revives the same destination and the transfer completes, every byte.
#[test]
fn sighup_drains_removes_and_revives_a_server_under_a_transfer() {
    if !ready() {
        return;
    }
    let net = Net::up("dr");
    let rules = std::env::temp_dir().join(format!("{}.rules", net.p));
    let write = |servers: &[(&str, u32)]| {
        let mut t = format!("-A -t {VIP}:80 -s rr\n");
        for (s, w) in servers {
            t.push_str(&format!("-a -t {VIP}:80 -r {s}:80 -g -w {w}\n"));
        }
        std::fs::write(&rules, t).unwrap();
    };
    write(&[(S1, 1), (S2, 1)]);
    let d = net.director(&["--rules", rules.to_str().unwrap(), "--json"]);
    // A slow download of the 8 MiB file (about 8 s at 1 MB/s), through a small receive buffer
    // so the client keeps acknowledging as it reads (it cannot take the file in at once and go
    // quiet while the server is removed).
    let o = net.exec("cl", &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 16384 65536"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let long = Command::new("ip")
        .args(["netns", "exec", &net.ns("cl"), "curl", "-s", "-S", "-m", "40", "--limit-rate", "1M"])
        .args(["-o", "/dev/null", "-w", "%{size_download} %{http_code}", &format!("http://{VIP}/big")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let busy = loop {
        match (established(&net, 1), established(&net, 2)) {
            (1, 0) => break 1,
            (0, 1) => break 2,
            _ => {}
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the long transfer did not start: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    let (x, y, y_i) = if busy == 1 { (S1, S2, 2) } else { (S2, S1, 1) };
    let only_y = |what: &str| {
        let before = net.served(y_i, "/");
        for i in 0..10 {
            let body = net.get("/").unwrap_or_else(|e| panic!("{what}: request {i}: {e}"));
            assert_eq!(body, format!("s{y_i}"), "{what}: request {i}");
        }
        assert_eq!(net.served(y_i, "/"), before + 10, "{what}");
    };
    std::fs::write(&rules, "-A -t nonsense\n").unwrap();
    d.reload("the running configuration is kept");
    write(&[(x, 0), (y, 1)]);
    d.reload(&format!("{x} weight 1 -> 0"));
    only_y("drained");
    write(&[(y, 1)]);
    d.reload(&format!("{x} removed"));
    only_y("removed");
    std::thread::sleep(Duration::from_millis(500));
    write(&[(x, 1), (y, 1)]);
    d.reload(&format!("{x} added"));
    let out = long.wait_with_output().unwrap();
    let (code, report) = d.stop();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "8388608 200",
        "the transfer: {}\nreport: {report}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let dropped = report["packets"]["dropped"]["destination_removed"].as_u64().unwrap_or(0);
    eprintln!("packets dropped while the server was removed: {dropped}");
    assert!(dropped > 0, "nothing dropped while removed: {report}");
    let dests = report["destinations"].as_array().unwrap();
    assert_eq!(dests.len(), 2, "the revived server is one destination: {report}");
    assert!(dests.iter().all(|x| x["removed"] == false), "{report}");
    let _ = std::fs::remove_file(&rules);
}

/// `/metrics` is Prometheus text (every sample line `name{labels} value`, every family with HELP
/// and TYPE), and its counts are the report's.
#[test]
fn metrics_parse_and_match_the_report() {
    if !ready() {
        return;
    }
    let net = Net::up("nat");
    let d = net.director(&rr_service(
        "nat",
        &[&format!("{S1}:80"), &format!("{S2}:80")],
        &["--json", "--metrics", "127.0.0.1:9108", "--stats", "1"],
    ));
    for _ in 0..6 {
        net.get("/").unwrap();
    }
    // The workers publish every 200 ms.
    std::thread::sleep(Duration::from_millis(600));
    let o = net.exec("dir", &["curl", "-s", "-S", "-m", "5", "http://127.0.0.1:9108/metrics"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let missing = net.exec("dir", &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:9108/x"]);
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "404");
    // --stats 1: a one-line summary a second.
    let start = Instant::now();
    while !d.stderr().lines().any(|l| l.starts_with("director: ") && l.contains(" received, ")) {
        assert!(start.elapsed() < Duration::from_secs(3), "no --stats line: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, report) = d.stop();
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    // Every line: a comment of HELP or TYPE, or a sample.
    let mut samples = std::collections::HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split(' ');
            let name = w.next().unwrap();
            assert!(matches!(w.next(), Some("counter" | "gauge")), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a value: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty(),
            "bad metric name: {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "labels: {line:?}");
                for pair in labels[1..labels.len() - 1].split(',') {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("label {pair:?} in {line:?}"));
                    assert!(!k.is_empty() && v.starts_with('"') && v.ends_with('"'), "label {pair:?}");
                }
            }
        }
        assert!(typed.contains(name), "{name} has no TYPE line before it");
        samples.insert(series.to_string(), value);
    }
    let get = |k: &str| *samples.get(k).unwrap_or_else(|| panic!("{k} missing in\n{text}"));
    for addr in [S1, S2] {
        let l = format!("service=\"{VIP}:80\",address=\"{addr}\",port=\"80\"");
        assert_eq!(
            get(&format!("lbkit_destination_connections_total{{{l}}}")) as u64,
            report_connections(&report, addr)
        );
        let dest = report["destinations"].as_array().unwrap().iter().find(|x| x["address"] == addr).unwrap();
        for (dir, key) in [("in", "packets_in"), ("out", "packets_out")] {
            assert_eq!(
                get(&format!("lbkit_destination_packets_total{{{l},direction=\"{dir}\"}}")) as u64,
                dest[key].as_u64().unwrap(),
                "{addr} {dir}"
            );
        }
    }
    assert_eq!(
        get("lbkit_packets_total{verdict=\"forwarded\"}") as u64,
        report["packets"]["forwarded"].as_u64().unwrap()
    );
    assert_eq!(report_connections(&report, S1) + report_connections(&report, S2), 6);
}

/// A real server that cannot be resolved (no host has its address) is reported and skipped:
/// every request goes to the one that can (rr over both would send every other one nowhere).
#[test]
fn an_unresolvable_server_is_reported_and_skipped() {
    if !ready() {
        return;
    }
    let net = Net::up("dr");
    let d = net.director(&rr_service("dr", &["10.7.0.99:80", &format!("{S1}:80")], &[]));
    let start = Instant::now();
    while !d.stderr().contains("10.7.0.99 cannot be resolved") {
        assert!(start.elapsed() < Duration::from_secs(5), "not reported: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.stderr().contains("skipped in"), "{}", d.stderr());
    for i in 0..10 {
        let body = net.get("/").unwrap_or_else(|e| panic!("request {i}: {e}\n{}", d.stderr()));
        assert_eq!(body, "s1", "request {i}");
    }
    let (code, _) = d.stop();
    assert_eq!(code, 0);
}

/// Starts dumpcap on `h`'s eth0 into `file`; returns once it writes.
fn capture(net: &Net, h: &str, file: &Path, filter: &str) -> Child {
    start_dumpcap(&net.ns(h), "eth0", file, filter)
}

fn stop_capture(mut c: Child) {
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
    let _ = c.wait();
}

/// The frames of a capture file (dumpcap writes pcapng), read by replay's own reader.
fn frames(file: &Path) -> Vec<Vec<u8>> {
    use lb_replay::capture::{CaptureReader, Source};
    let mut r = CaptureReader::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while r.next_frame(&mut buf).is_some() {
        out.push(std::mem::take(&mut buf));
    }
    out
}

/// TUN: these kernels have no ipip module, so the real servers cannot decapsulate. Captured at
/// the servers' interfaces, every packet the client sent arrives encapsulated exactly as IPVS
/// builds it: an outer IPv4 header (protocol 4, from `--tun-src`, to the real server, the inner
/// TTL and DF, a valid checksum, tshark as the judge) in front of the client's packet, byte for
/// byte but for the TTL IPVS decrements (and the header checksum with it). Where the module
/// exists, real TCP through the tunnel as well.
#[test]
fn tun_encapsulates_every_client_packet_exactly() {
    if !ready() || !available("dumpcap", have("dumpcap", "--version")) || !available("tshark", have_tshark()) {
        return;
    }
    let net = Net::up("dr");
    // Where the kernel can decapsulate (an ipip module), the servers do, and TCP completes.
    let _ = Command::new("modprobe").arg("ipip").status();
    let ipip = (1..=2).all(|i| {
        let s = format!("s{i}");
        net.exec(&s, &["ip", "link", "set", "tunl0", "up"]).status.success()
            && net.exec(&s, &["sysctl", "-qw", "net.ipv4.conf.tunl0.rp_filter=0"]).status.success()
    });
    let dir = std::env::temp_dir();
    let files: Vec<PathBuf> =
        ["cl", "s1", "s2"].iter().map(|h| dir.join(format!("{}-capture-{h}.pcapng", net.p))).collect();
    let caps = vec![
        capture(&net, "cl", &files[0], "tcp port 80 and src host 10.8.0.2"),
        capture(&net, "s1", &files[1], "ip proto 4"),
        capture(&net, "s2", &files[2], "ip proto 4"),
    ];
    let d = net.director(&rr_service("tun", &[S1, S2], &["--tun-src", "10.7.0.1", "--json"]));
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let o = net.exec("cl", &["curl", "-s", "-m", "2", &format!("http://{VIP}/")]);
        bodies.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    let (code, report) = d.stop();
    assert_eq!(code, 0);
    for c in caps {
        stop_capture(c);
    }
    if ipip {
        assert_eq!(bodies, ["s2", "s1", "s2", "s1"], "real TCP through the tunnel");
    } else {
        eprintln!("NOTE: no ipip module here: the real servers cannot decapsulate; the frames are checked");
    }
    let sent = frames(&files[0]);
    assert!(sent.len() >= 4, "the client sent {} packets", sent.len());
    let mut arrived: Vec<(Vec<u8>, u8)> = Vec::new();
    for (i, f) in files[1..].iter().enumerate() {
        assert!(tshark_bad_checksums(f).is_empty(), "bad checksums at s{}: {:?}", i + 1, tshark_bad_checksums(f));
        for fr in frames(f) {
            assert!(fr.len() >= 14 + 20 + 20, "short frame");
            let (outer, inner) = (&fr[14..34], &fr[34..]);
            assert_eq!(&fr[12..14], &[0x08, 0x00]);
            assert_eq!(outer[0], 0x45, "outer version and length");
            assert_eq!(outer[9], 4, "outer protocol: IPIP");
            assert_eq!(&outer[12..16], &[10, 7, 0, 1], "outer source: --tun-src");
            assert_eq!(&outer[16..20], &[10, 7, 0, 11 + i as u8], "outer destination: the real server");
            assert_eq!(outer[8], inner[8], "outer TTL: the inner one");
            assert_eq!(outer[6] & 0x40, inner[6] & 0x40, "DF copied");
            assert_eq!(usize::from(u16::from_be_bytes([outer[2], outer[3]])), 20 + inner.len(), "outer length");
            arrived.push((inner.to_vec(), i as u8));
        }
    }
    // Every packet the client sent arrived inside its tunnel, as IPVS forwards it: unchanged
    // but for the TTL, one less (the director forwards it), and so the header checksum.
    for s in &sent {
        let mut ip = s[14..].to_vec();
        ip[8] -= 1;
        ip[10..12].copy_from_slice(&[0, 0]);
        let sum = ip[..20].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let ip = &ip[..];
        let same_port: Vec<_> = arrived.iter().filter(|(a, _)| a.get(20..22) == ip.get(20..22)).collect();
        assert!(
            arrived.iter().any(|(a, _)| a == ip),
            "a client packet did not arrive encapsulated ({} sent, {} arrived; {report}): {ip:02x?}\n\
             arrived with its port: {same_port:02x?}",
            sent.len(),
            arrived.len()
        );
    }
    assert!(arrived.iter().any(|(_, i)| *i == 0) && arrived.iter().any(|(_, i)| *i == 1), "rr used one server");
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

/// `--workers 2` on an interface with two queues: one AF_XDP socket per queue, NAT connections
/// through whichever queue their packets arrive on (the connection table is shared); more
/// workers than queues is refused, naming the queues.
#[test]
fn two_workers_on_two_queues() {
    if !ready() {
        return;
    }
    let net = Net::up_with("nat", 2);
    let args = |w: &str| rr_service("nat", &[&format!("{S1}:80"), &format!("{S2}:80")], &["--json", "--workers", w]);
    let mut refused = vec![env!("CARGO_BIN_EXE_director").to_string(), "--iface".into(), "eth0".into()];
    refused.extend(args("3"));
    let o = net.exec("dir", &refused.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("eth0 has 2 RX queue(s)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let d = net.director(&args("2"));
    for i in 0..40 {
        let b = net.get("/").unwrap_or_else(|e| panic!("request {i}: {e}\n{}", d.stderr()));
        assert!(b == "s1" || b == "s2", "{b}");
    }
    let (code, out) = d.stop();
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report_connections(&report, S1) + report_connections(&report, S2), 40, "{report}");
}

/// SIGHUP with services added and removed (ipvsadm -A / -D in the rules): a new virtual service
/// takes connections (the workers pause while the pipeline takes it), a removed one takes none
/// (its address goes back to the kernel, which refuses the connection), the others go on.
#[test]
fn sighup_adds_and_removes_virtual_services() {
    if !ready() {
        return;
    }
    let net = Net::up("dr");
    const VIP2: &str = "10.8.0.101";
    for (h, dev) in [("dir", "eth0"), ("s1", "lo"), ("s2", "lo")] {
        let o = net.exec(h, &["ip", "addr", "add", &format!("{VIP2}/32"), "dev", dev]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let rules = std::env::temp_dir().join(format!("{}-services.rules", net.p));
    let one = format!("-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r {S1}:80 -g -w 1\n-a -t {VIP}:80 -r {S2}:80 -g -w 1\n");
    let two = format!("-A -t {VIP2}:80 -s rr\n-a -t {VIP2}:80 -r {S2}:80 -g -w 1\n");
    std::fs::write(&rules, &one).unwrap();
    let d = net.director(&["--rules", rules.to_str().unwrap(), "--json"]);
    let get = |vip: &str| {
        let o = net.exec("cl", &["curl", "-s", "-S", "-m", "3", &format!("http://{vip}/")]);
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).to_string())
        }
    };
    assert!(get(VIP2).is_err(), "no service for {VIP2} yet");
    std::fs::write(&rules, format!("{one}{two}")).unwrap();
    d.reload(&format!("service tcp {VIP2}:80 added"));
    for i in 0..4 {
        assert_eq!(get(VIP2).unwrap_or_else(|e| panic!("{VIP2} request {i}: {e}\n{}", d.stderr())), "s2");
        assert!(get(VIP).is_ok(), "{VIP} request {i}");
    }
    std::fs::write(&rules, &two).unwrap();
    d.reload(&format!("service tcp {VIP}:80 removed"));
    let refused = get(VIP).expect_err("a removed service still answers");
    assert!(refused.contains("connect") || refused.contains("refused") || refused.contains("reset"), "{refused}");
    assert_eq!(get(VIP2).unwrap(), "s2");
    let (code, out) = d.stop();
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dests = report["destinations"].as_array().unwrap();
    let of = |svc: &str, addr: &str| {
        dests
            .iter()
            .find(|x| x["service"] == svc && x["address"] == addr)
            .unwrap_or_else(|| panic!("{svc} {addr}: {report}"))
    };
    assert_eq!(of(&format!("tcp {VIP2}:80"), S2)["connections"], 5);
    assert_eq!(of(&format!("tcp {VIP}:80"), S1)["removed"], true);
    assert_eq!(of(&format!("tcp {VIP}:80"), S2)["removed"], true);
    let _ = std::fs::remove_file(&rules);
}
