//! Helpers for replay's integration tests: synthetic frames (built with etherparse, an
//! independent library), in-memory captures, a recording driver, and the shared test data.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use etherparse::PacketBuilder;
use lb_replay::capture::Capture;
use lb_replay::pipeline::{Outcome, Pipeline, PipelineConfig, Worker};
use lb_rewrite::FrameBuf;
use lb_sched::Timestamp;

mod host;
#[allow(unused_imports)] // not every test binary asks
pub use host::*;

/// The upstream router the clients' frames come from.
pub const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// The director.
pub const DIRECTOR: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

/// TCP flags for [`tcp`].
pub const SYN: u8 = 0x02;
/// ACK.
pub const ACK: u8 = 0x10;
/// FIN.
pub const FIN: u8 = 0x01;
/// RST.
pub const RST: u8 = 0x04;

/// An Ethernet/IPv4-or-IPv6/TCP frame with valid checksums.
pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let eth = PacketBuilder::ethernet2(ROUTER, DIRECTOR);
    let ip = match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut b = ip.tcp(sport, dport, 1000, 64240);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(1);
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// An Ethernet/IPv4-or-IPv6/UDP frame with a valid checksum.
pub fn udp(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let eth = PacketBuilder::ethernet2(ROUTER, DIRECTOR);
    let b = match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64).udp(sport, dport),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64).udp(sport, dport),
        _ => panic!("mixed families"),
    };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// A classic pcap (nanosecond timestamps, Ethernet) of `(ns, frame)`.
pub fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&262_144u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    for (ts, f) in frames {
        v.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        v.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        v.extend_from_slice(&(f.len() as u32).to_le_bytes());
        v.extend_from_slice(&(f.len() as u32).to_le_bytes());
        v.extend_from_slice(f);
    }
    v
}

/// A capture from frames.
pub fn capture(frames: &[(u64, Vec<u8>)]) -> Capture {
    Capture::from_bytes(Path::new("synthetic.pcap"), &pcap(frames)).unwrap()
}

/// What one input frame became.
#[derive(Debug)]
pub struct Processed {
    /// Its index in the capture.
    pub index: usize,
    /// The input bytes.
    pub input: Vec<u8>,
    /// Outcome.
    pub outcome: Outcome,
    /// The forwarded frame (on `Forwarded`).
    pub output: Option<Vec<u8>>,
    /// Frames handed to the sink (ICMP replies, fragments).
    pub extra: Vec<Vec<u8>>,
}

/// Runs every frame of `cap` through one worker, in order, keeping each input's outputs.
pub fn process_all(pipe: &Pipeline, cap: &Capture) -> Vec<Processed> {
    process_counted(pipe, cap).0
}

/// As [`process_all`], with the worker's counters.
pub fn process_counted(pipe: &Pipeline, cap: &Capture) -> (Vec<Processed>, lb_replay::pipeline::Counters) {
    let mut w = Worker::new(pipe);
    let mut buf = vec![0u8; 128 + 70_000];
    let mut out = Vec::new();
    for (i, f) in cap.frames.iter().enumerate() {
        let data = cap.frame(f);
        buf[128..128 + data.len()].copy_from_slice(data);
        let mut fb = FrameBuf::new(&mut buf, 128, data.len()).unwrap();
        // Timers fire on time: expire before each frame.
        pipe.expire(Timestamp::from_nanos(f.ts_ns));
        let mut extra = Vec::new();
        let outcome = w.process(Timestamp::from_nanos(f.ts_ns), &mut fb, &mut |x: &[u8]| extra.push(x.to_vec()));
        let output = (outcome == Outcome::Forwarded).then(|| fb.frame().to_vec());
        out.push(Processed { index: i, input: data.to_vec(), outcome, output, extra });
    }
    (out, w.counters)
}

/// A pipeline from a configuration.
pub fn pipeline(cfg: &PipelineConfig) -> Pipeline {
    Pipeline::new(cfg, &|_| None).unwrap()
}

/// A capture of the repository's own `testdata/`.
pub fn bundled_pcap(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(name)
}

/// The shared test data directory (`../shared/testdata` from the repository root), if there.
pub fn shared_pcaps() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/pcaps");
    p.is_dir().then_some(p)
}

/// Whether `tshark` runs here.
pub fn have_tshark() -> bool {
    std::process::Command::new("tshark").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Frame numbers (1-based) tshark finds with a bad IPv4, TCP or UDP checksum (the command of
/// ../shared/testdata/README.md).
pub fn tshark_bad_checksums(file: &Path) -> Vec<usize> {
    tshark_frames(file, "ip.checksum.status==Bad || tcp.checksum.status==Bad || udp.checksum.status==Bad")
}

/// Frame numbers (1-based) matching a display filter, with checksum validation on.
pub fn tshark_frames(file: &Path, filter: &str) -> Vec<usize> {
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-Y",
            filter,
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark failed on {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Writes frames to a temporary pcap and returns its path.
pub fn write_temp_pcap(name: &str, frames: &[Vec<u8>]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lbkit-replay-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let stamped: Vec<(u64, Vec<u8>)> =
        frames.iter().enumerate().map(|(i, f)| (1_000_000_000 + i as u64, f.clone())).collect();
    std::fs::write(&path, pcap(&stamped)).unwrap();
    path
}

/// Runs the `replay` binary: (exit code, stdout, stderr).
pub fn replay(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_replay")).args(args).output().expect("run replay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs replay, which must succeed, and parses its JSON report.
pub fn json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = replay(args);
    assert_eq!(code, 0, "replay {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// A number at a dotted path of a JSON report.
pub fn n(v: &serde_json::Value, path: &str) -> u64 {
    path.split('.').fold(v, |v, k| &v[k]).as_u64().unwrap_or_else(|| panic!("{path} missing in {v}"))
}
