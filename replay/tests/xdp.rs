//! replay over AF_XDP, in network namespaces the tests create and remove (scripts/netns.sh):
//!
//! * the peer receives exactly the frames `--out` would have written, byte for byte;
//! * the Linux stack as judge: a real server that owns the captures' server addresses on `lo`
//!   (DR) or the real-server address (NAT) answers every replayed SYN whose checksums were valid
//!   with a SYN-ACK, captured on its side.
//!
//! Needs root, iproute2, dumpcap, tshark and python3; skipped (loudly) without them, and a
//! skip fails under CI=true.

#![cfg(all(feature = "cli", feature = "xdp", target_os = "linux"))]

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lb_replay::capture::Capture;
use support::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ready() -> bool {
    available("root (AF_XDP and network namespaces)", is_root())
        && available("iproute2 (ip)", have("ip", "-V"))
        && available("dumpcap", have("dumpcap", "--version"))
        && available("tshark", have_tshark())
        && available("python3", have("python3", "--version"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/netns.sh")
}

/// A director -> real server link, removed when dropped.
struct Link {
    name: String,
}

impl Link {
    fn up(queues: u32) -> Link {
        let name = format!("lbx{}{}", std::process::id() % 10_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let _ = Command::new(script()).args(["down", &name]).status();
        let out = Command::new(script()).args(["up", &name, &queues.to_string()]).output().expect("netns.sh");
        assert!(out.status.success(), "netns.sh up: {}", String::from_utf8_lossy(&out.stderr));
        Link { name }
    }
    fn director(&self) -> String {
        format!("{}-d", self.name)
    }
    fn ns(&self) -> String {
        format!("{}-rs", self.name)
    }
    fn vip(&self, addrs: &[String]) {
        let mut args = vec!["vip".to_string(), self.name.clone()];
        args.extend(addrs.iter().cloned());
        let st = Command::new(script()).args(&args).status().unwrap();
        assert!(st.success());
    }
    /// Starts a capture on the real server's end; returns it once it is running.
    fn capture(&self, file: &Path, filter: &str) -> Child {
        start_dumpcap(&self.ns(), &format!("{}-r", self.name), file, filter)
    }
    /// Listens on these TCP ports in the real server's namespace.
    fn listen(&self, ports: &[u16]) -> Child {
        let code = "import socket,sys,time\nss=[]\nfor p in sys.argv[1:]:\n  s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('0.0.0.0',int(p))); s.listen(4096); ss.append(s)\nprint('ready',flush=True)\ntime.sleep(120)\n";
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(), "python3", "-c", code]);
        for p in ports {
            c.arg(p.to_string());
        }
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("python3");
        let mut line = String::new();
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        child
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.name]).status();
    }
}

fn stop(mut c: Child) {
    let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// `replay --mode dr` of the bundled sample to the demo VIP, with one backend, over `iface`.
fn dr_over(iface: &str, backend: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_replay"));
    c.args(["--mode", "dr", "--vip", "198.51.100.10:80", "--backend", backend, "--iface", iface]).args(extra);
    c
}

fn replay(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_replay")).args(args).output().expect("replay");
    assert!(out.status.success(), "replay {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lbkit-xdp-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn frames_of(file: &Path) -> Vec<Vec<u8>> {
    let c = Capture::open(file).unwrap();
    c.frames.iter().map(|f| c.frame(f).to_vec()).collect()
}

#[test]
fn the_peer_receives_exactly_what_out_would_have_written() {
    if !ready() {
        return;
    }
    for workers in [1u32, 2] {
        let link = Link::up(workers);
        let dmac = std::fs::read_to_string(format!("/sys/class/net/{}/address", link.director())).unwrap();
        let dmac = dmac.trim();
        // The same replay to a pcap (with the interface's MAC as the director's) and over AF_XDP.
        let out = tmp(&format!("out{workers}.pcap"));
        let common = ["--mode", "dr", "--vip", "198.51.100.10:80", "--backend", "10.77.0.2", "--topspeed"];
        let mut a: Vec<&str> = common.to_vec();
        let rs_mac = Command::new("ip")
            .args(["netns", "exec", &link.ns(), "cat", &format!("/sys/class/net/{}-r/address", link.name)])
            .output()
            .unwrap();
        let neigh = format!("10.77.0.2={}", String::from_utf8_lossy(&rs_mac.stdout).trim());
        a.extend(["--neigh", &neigh, "--director-mac", dmac, "--out", out.to_str().unwrap()]);
        replay(&a);
        let cap_file = tmp(&format!("peer{workers}.pcapng"));
        let cap = link.capture(&cap_file, &format!("ether src {dmac}"));
        let w = workers.to_string();
        let iface = link.director();
        let mut b: Vec<&str> = common.to_vec();
        b.extend(["--iface", &iface, "--workers", &w]);
        let report = replay(&b);
        std::thread::sleep(Duration::from_millis(500));
        stop(cap);
        assert!(report.contains("over AF_XDP"), "{report}");
        let mut want = frames_of(&out);
        let mut got = frames_of(&cap_file);
        assert_eq!(want.len(), 181, "the sample's DR output");
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "{workers} worker(s): frames received vs written");
        assert!(got == want, "{workers} worker(s): the frames differ");
    }
}

/// (client, client port, server, server port) of every SYN in `file` whose IPv4 and TCP
/// checksums tshark finds valid.
fn valid_syns(file: &Path) -> Vec<(String, u16, String, u16)> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-Y",
            "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.checksum.status==1 && ip.checksum.status==1",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.first()?.to_string(), f.get(1)?.parse().ok()?, f.get(2)?.to_string(), f.get(3)?.parse().ok()?))
        })
        .collect()
}

/// (client, client port) of every SYN-ACK the real server sent.
fn syn_acks(file: &Path) -> HashSet<(String, u16)> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", "tcp.flags.syn==1 && tcp.flags.ack==1", "-T", "fields", "-e", "ip.dst", "-e", "tcp.dstport"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.first()?.to_string(), f.get(1)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_real_kernel_answers_every_valid_replayed_syn() {
    if !ready() {
        return;
    }
    for name in ["dpkt-http.pcap", "gopacket-test_ethernet.pcap", "WebattackSQLinj.pcap"] {
        let input = bundled_pcap(name);
        let syns = valid_syns(&input);
        assert!(!syns.is_empty(), "{name}: no valid SYN");
        let mut servers: Vec<String> = syns.iter().map(|s| s.2.clone()).collect();
        servers.sort();
        servers.dedup();
        let mut ports: Vec<u16> = syns.iter().map(|s| s.3).collect();
        ports.sort();
        ports.dedup();
        for mode in ["dr", "nat"] {
            let link = Link::up(1);
            if mode == "dr" {
                // DR: the real server owns the virtual addresses.
                link.vip(&servers);
            }
            let listener = link.listen(&ports);
            let cap_file = tmp(&format!("{name}.{mode}.pcapng"));
            let cap = link.capture(&cap_file, "tcp");
            let report = replay(&[
                input.to_str().unwrap(),
                "--mode",
                mode,
                "--vip",
                "any",
                "--backend",
                "10.77.0.2",
                "--iface",
                &link.director(),
                "--topspeed",
            ]);
            std::thread::sleep(Duration::from_millis(700));
            stop(cap);
            stop(listener);
            let answered = syn_acks(&cap_file);
            let missing: Vec<_> = syns.iter().filter(|s| !answered.contains(&(s.0.clone(), s.1))).collect();
            assert!(
                missing.is_empty(),
                "{name} in {mode}: {} of {} valid SYNs got no SYN-ACK from the real server: {:?}\n{report}",
                missing.len(),
                syns.len(),
                &missing[..missing.len().min(5)]
            );
            eprintln!("{name} in {mode}: {} valid SYNs, each answered by the real server's kernel", syns.len());
        }
    }
}

#[test]
fn clear_errors_for_missing_interfaces_and_neighbours() {
    if !available("root (AF_XDP)", is_root()) {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(["--mode", "dr", "--iface", "lbk-nonexistent0", "--topspeed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lbk-nonexistent0"), "{err}");
    if !available("iproute2", have("ip", "-V")) {
        return;
    }
    let link = Link::up(1);
    let dir = link.director();
    // A backend the kernel has no neighbour entry for.
    let out = dr_over(&dir, "10.77.0.9", &["--topspeed"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("10.77.0.9") && err.contains("neighbour"), "{err}");
    // More workers than TX queues.
    let out = dr_over(&dir, "10.77.0.2", &["--workers", "4"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("numtxqueues 4"), "{err}");
    // A queue that another replay's socket holds: retried for a while (a socket closed just
    // before is released by the kernel a moment later), then refused, saying why.
    let holder = dr_over(&dir, "10.77.0.2", &["--pps", "40"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let t = Instant::now();
    let out = dr_over(&dir, "10.77.0.2", &["--pps", "100000"]).output().unwrap();
    let waited = t.elapsed();
    stop(holder);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("another AF_XDP socket holds this queue"), "{err}");
    assert!(waited >= Duration::from_millis(1500), "refused after {waited:?}, without retrying");
}

#[test]
fn pacing_holds_over_af_xdp() {
    if !ready() {
        return;
    }
    let link = Link::up(1);
    let iface = link.director();
    // The sample spans about 2.4 s: at 4x its own timing about 0.6 s; at 400 packets per second
    // its 304 frames take about 0.75 s. Every frame still goes out.
    for pacing in [["--multiplier", "4"], ["--pps", "400"]] {
        let t = Instant::now();
        let out = dr_over(&iface, "10.77.0.2", &pacing).output().expect("replay");
        assert!(out.status.success(), "{pacing:?}: {}", String::from_utf8_lossy(&out.stderr));
        let report = String::from_utf8_lossy(&out.stdout);
        let took = t.elapsed().as_secs_f64();
        assert!(took > 0.5, "{pacing:?}: took only {took:.2} s");
        assert!(
            report.contains("sent 181 frames over AF_XDP") && report.contains("(181 completed by the kernel)"),
            "{report}"
        );
    }
}
