//! Every real capture (the repository's `testdata/`, and `../shared/testdata/pcaps` when it is
//! there) through `parse` and every mode: no panic,
//! every frame accounted for (a verdict or a typed error), and on every forwarded frame the
//! checksum rule checked by etherparse against the input (the captures hold real packets with
//! bad checksums: they must stay exactly as bad).

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use lb_rewrite::{
    build_time_exceeded, build_too_big, dnat, dr, nat_icmp_in, nat_icmp_out, parse, snat, tun, Encap, FrameBuf,
    MacAddr, NextHop, Packet, ReplySource, RewriteError, Tunnel, Verdict,
};
use support::checks;

/// The shared test data, or `None` (with the reason printed) when it is absent. Under `CI=true`
/// an absent directory fails the test instead: CI has the data.
fn pcap_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/pcaps");
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!("SKIPPED: {} not found (the shared test data lives next to the repository)", dir.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}; CI=true requires it");
    }
    eprintln!("{msg}");
    None
}

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;

/// Frames of a classic pcap or a pcapng file, as (linktype, bytes).
fn read_capture(data: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let magic = data.get(..4).ok_or("short file")?;
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => read_pcap(data, true),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => read_pcap(data, false),
        [0x0a, 0x0d, 0x0d, 0x0a] => read_pcapng(data),
        m => Err(format!("unknown capture magic {m:02x?}")),
    }
}

fn u32_at(d: &[u8], at: usize, le: bool) -> Result<u32, String> {
    let b: [u8; 4] = d.get(at..at + 4).ok_or("truncated capture")?.try_into().unwrap();
    Ok(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
}

fn read_pcap(d: &[u8], le: bool) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let linktype = u32_at(d, 20, le)? & 0x0FFF_FFFF;
    let mut at = 24;
    let mut out = Vec::new();
    while at < d.len() {
        let incl = u32_at(d, at + 8, le)? as usize;
        let data = d.get(at + 16..at + 16 + incl).ok_or("truncated record")?;
        out.push((linktype, data.to_vec()));
        at += 16 + incl;
    }
    Ok(out)
}

fn read_pcapng(d: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let le = match d.get(8..12) {
        Some([0x4d, 0x3c, 0x2b, 0x1a]) => true,
        Some([0x1a, 0x2b, 0x3c, 0x4d]) => false,
        _ => return Err("bad pcapng byte-order magic".into()),
    };
    let mut linktypes = Vec::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= d.len() {
        let ty = u32_at(d, at, le)?;
        let len = u32_at(d, at + 4, le)? as usize;
        if len < 12 || at + len > d.len() {
            return Err("bad pcapng block length".into());
        }
        match ty {
            0x0A0D_0D0A => linktypes.clear(),
            1 => linktypes.push(u32_at(d, at + 8, le)? & 0xFFFF),
            6 => {
                let iface = u32_at(d, at + 8, le)? as usize;
                let cap = u32_at(d, at + 20, le)? as usize;
                let data = d.get(at + 28..at + 28 + cap).ok_or("truncated EPB")?;
                out.push((*linktypes.get(iface).ok_or("EPB before its IDB")?, data.to_vec()));
            }
            3 => {
                let orig = u32_at(d, at + 8, le)? as usize;
                let cap = orig.min(len - 16);
                out.push((*linktypes.first().ok_or("SPB before an IDB")?, d[at + 12..at + 12 + cap].to_vec()));
            }
            _ => {}
        }
        at += len;
    }
    Ok(out)
}

/// A Linux cooked (SLL) frame as an Ethernet frame: the link-layer source address becomes the
/// source MAC and the protocol the ethertype.
fn sll_to_ethernet(f: &[u8]) -> Option<Vec<u8>> {
    let h = f.get(..16)?;
    let mut e = vec![0u8; 6];
    e.extend_from_slice(&h[6..12]);
    e.extend_from_slice(&h[14..16]);
    e.extend_from_slice(&f[16..]);
    Some(e)
}

#[derive(Default)]
struct Tally {
    frames: usize,
    parse_ok: usize,
    outcomes: BTreeMap<String, usize>,
    accounted: usize,
    oracle_checked: usize,
    oracle_skipped: usize,
    bad_in: usize,
    bad_out: usize,
}

impl Tally {
    fn count(&mut self, key: String) {
        *self.outcomes.entry(key).or_default() += 1;
    }
}

const MODES: [&str; 7] = ["dnat", "snat", "dr", "tun_ipip_v4", "tun_gue_v6", "nat_icmp_in", "nat_icmp_out"];
/// The modes run a second time with the largest MTU, under the etherparse checksum oracle.
const ORACLE_MODES: [&str; 3] = ["dnat", "snat", "dr"];
const RUNS: usize = MODES.len() + ORACLE_MODES.len();

fn rs_for(a: &IpAddr) -> SocketAddr {
    match a {
        IpAddr::V4(_) => "10.0.0.2:8080".parse().unwrap(),
        IpAddr::V6(_) => "[fd00::2]:8080".parse().unwrap(),
    }
}

/// Runs one mode on one frame and counts the outcome. With `oracle`, the MTU is the largest
/// there is (captures hold offloaded frames far above 1500 bytes, and those carry the bad
/// checksums) and forwarded NAT / DR frames are judged by etherparse.
fn run_mode(mode: &str, frame: &[u8], pkt: &Packet, t: &mut Tally, oracle: bool) {
    let mtu = if oracle { u16::MAX } else { 1500 };
    let hop = NextHop { src_mac: MacAddr([2, 0, 0, 0, 0, 1]), dst_mac: MacAddr([2, 0, 0, 0, 0, 2]), mtu };
    let mut buf = vec![0u8; 128 + frame.len()];
    buf[128..].copy_from_slice(frame);
    let mut fb = FrameBuf::new(&mut buf, 128, frame.len()).unwrap();
    let mut frags = 0usize;
    let mut sink = |f: &[u8]| {
        assert!(parse(f).is_ok() || f.len() > 14, "fragment frames are Ethernet frames");
        frags += 1;
    };
    let target = rs_for(&pkt.flow().src);
    let r = match mode {
        "dnat" => dnat(&mut fb, pkt, &hop, target, &mut sink),
        "snat" => snat(&mut fb, pkt, &hop, target, &mut sink),
        "dr" => dr(&mut fb, pkt, &hop, &mut sink),
        "tun_ipip_v4" => {
            let tunnel = Tunnel {
                src: "10.0.0.254".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                encap: Encap::Ipip,
                ident: 1,
            };
            tun(&mut fb, pkt, &hop, &tunnel, &mut sink)
        }
        "tun_gue_v6" => {
            let tunnel = Tunnel {
                src: "fd00::fe".parse().unwrap(),
                dst: "fd00::2".parse().unwrap(),
                encap: Encap::Gue { port: 6080 },
                ident: 1,
            };
            tun(&mut fb, pkt, &hop, &tunnel, &mut sink)
        }
        "nat_icmp_in" => nat_icmp_in(&mut fb, pkt, &hop, target, &mut sink),
        "nat_icmp_out" => nat_icmp_out(&mut fb, pkt, &hop, target, &mut sink),
        _ => unreachable!(),
    };
    let key = match r {
        Ok(Verdict::Forward) => "forward".to_string(),
        Ok(Verdict::Fragmented { count }) => {
            assert_eq!(usize::from(count), frags);
            "fragmented".to_string()
        }
        Ok(Verdict::TimeExceeded) => {
            assert_eq!(fb.frame(), frame, "time exceeded leaves the frame alone");
            reply_check(frame, pkt, true, 0, t);
            "time_exceeded".to_string()
        }
        Ok(Verdict::TooBig { mtu }) => {
            reply_check(fb.frame(), pkt, false, mtu, t);
            "too_big".to_string()
        }
        Err(e) => {
            assert_eq!(fb.frame(), frame, "{mode}: an error ({e}) leaves the frame alone");
            format!("error:{e}")
        }
    };
    t.count(format!("{}{mode}:{key}", if oracle { "mtu_max:" } else { "" }));
    t.accounted += 1;

    // The checksum rule on forwarded NAT / DR frames, judged by etherparse.
    if oracle && r == Ok(Verdict::Forward) {
        match (checks(frame), checks(fb.frame())) {
            (Ok(before), Ok(after)) => {
                t.oracle_checked += 1;
                let errs = |c: &support::Checks| {
                    [c.ip.map(|x| x.error()), if c.udp_none { None } else { c.l4.map(|x| x.error()) }]
                };
                let (b, a) = (errs(&before), errs(&after));
                assert_eq!(b[0], a[0], "{mode}: IPv4 header checksum error changed");
                if before.udp_none && mode != "dr" {
                    let l4 = after.l4.unwrap();
                    assert_eq!(l4.stored, l4.computed, "zero UDP checksum computed in full");
                } else if !pkt.is_first_fragment() {
                    assert_eq!(b[1], a[1], "{mode}: transport checksum error changed");
                }
                if b.iter().any(|e| e.is_some_and(|e| e != 0)) {
                    t.bad_in += 1;
                }
                if a.iter().any(|e| e.is_some_and(|e| e != 0)) {
                    t.bad_out += 1;
                }
            }
            _ => t.oracle_skipped += 1,
        }
    }
}

fn reply_check(frame: &[u8], pkt: &Packet, ttl: bool, mtu: u16, t: &mut Tally) {
    let from = ReplySource {
        addr: match pkt.flow().src {
            IpAddr::V4(_) => "198.51.100.254".parse().unwrap(),
            IpAddr::V6(_) => "2001:db8::fe".parse().unwrap(),
        },
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        ident: 9,
    };
    let mut out = [0u8; 1400];
    let r = if ttl {
        build_time_exceeded(frame, pkt, &from, &mut out)
    } else {
        build_too_big(frame, pkt, mtu, &from, &mut out)
    };
    match r {
        Ok(n) => {
            let c = checks(&out[..n]).expect("reply parses");
            assert!(c.ip.is_none_or(|x| x.stored == x.computed));
            assert!(c.l4.is_some_and(|x| x.stored == x.computed));
            t.count("reply:built".into());
        }
        Err(RewriteError::IcmpReplyForbidden) => t.count("reply:forbidden".into()),
        Err(e) => panic!("reply builder failed: {e}"),
    }
}

fn run_file(name: &str, data: &[u8]) -> Tally {
    let mut t = Tally::default();
    let frames = read_capture(data).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (linktype, raw) in frames {
        t.frames += 1;
        let eth = match linktype {
            LINKTYPE_ETHERNET => raw,
            LINKTYPE_LINUX_SLL => match sll_to_ethernet(&raw) {
                Some(e) => e,
                None => {
                    t.count("capture:short_sll".into());
                    t.accounted += RUNS;
                    continue;
                }
            },
            other => panic!("{name}: linktype {other} not handled by this test"),
        };
        match parse(&eth) {
            Ok(pkt) => {
                t.parse_ok += 1;
                for mode in MODES {
                    run_mode(mode, &eth, &pkt, &mut t, false);
                }
                for mode in ORACLE_MODES {
                    run_mode(mode, &eth, &pkt, &mut t, true);
                }
            }
            Err(e) => {
                t.count(format!("parse:{e}"));
                t.accounted += RUNS;
            }
        }
    }
    t
}

/// Runs every file, checking what holds for any capture; returns the totals by file name.
fn run_files(files: Vec<PathBuf>) -> BTreeMap<String, Tally> {
    let mut totals = BTreeMap::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let t = run_file(&name, &std::fs::read(&path).unwrap());
        assert_eq!(t.accounted, t.frames * RUNS, "{name}: every frame accounted for in every mode");
        eprintln!(
            "{name}: {} frames, {} parsed; oracle checked {} (skipped {}); bad checksums in {} out {}",
            t.frames, t.parse_ok, t.oracle_checked, t.oracle_skipped, t.bad_in, t.bad_out
        );
        for (k, v) in &t.outcomes {
            eprintln!("    {k}: {v}");
        }
        assert_eq!(t.bad_in, t.bad_out, "{name}: bad checksums stay bad, good ones stay good");
        totals.insert(name, t);
    }
    totals
}

/// The capture files of a directory, sorted.
fn files_of(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_bundled_capture_through_every_mode() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let files = files_of(&dir);
    assert!(files.len() >= 9, "expected the repository's captures in {}", dir.display());
    let totals = run_files(files);
    // Facts about the data (testdata/README.md) the run must reproduce.
    let http = &totals["dpkt-http.pcap"];
    assert_eq!(http.parse_ok, http.frames, "dpkt-http: every frame is Ethernet/IPv4/TCP or UDP");
    let vlan = &totals["dpkt-http-vlan.pcap"];
    assert_eq!((vlan.frames, vlan.parse_ok), (http.frames, http.frames), "the tagged copy parses as its original");
    assert_eq!(vlan.outcomes, http.outcomes, "and is rewritten the same way");
    let trunc = &totals["dpkt-truncated_dns.pcap"];
    assert!(trunc.outcomes.keys().any(|k| k.starts_with("parse:truncated")), "{:?}", trunc.outcomes);
    // README: 7 packets with bad checksums in WebattackSQLinj; each NAT / DR mode keeps them.
    assert_eq!(totals["WebattackSQLinj.pcap"].bad_in, 3 * 7);
    // PPPoE sessions (ethertype 0x8864) are not for a layer-4 director.
    assert_eq!(totals["dpkt-nb6-http.pcap"].outcomes.get("parse:unsupported_ethertype"), Some(&52));
    let tunnels = &totals["6in4tunnel.pcap"];
    assert!(tunnels.outcomes.contains_key("parse:unsupported_protocol"), "6in4 frames are tunnels");
}

#[test]
fn every_shared_capture_through_every_mode() {
    let Some(dir) = pcap_dir() else { return };
    let files = files_of(&dir);
    assert!(files.len() >= 10, "expected the shared captures in {}", dir.display());
    let totals = run_files(files);
    // Facts about the data (../shared/testdata/README.md) the run must reproduce.
    let reddit = &totals["reddit.pcap"];
    assert!(reddit.parse_ok * 100 >= reddit.frames * 99, "reddit: IPv6 TCP parses");
    // README: 1,157 reddit packets have bad checksums on input; each NAT / DR mode keeps them.
    assert_eq!(reddit.bad_in, 3 * 1157, "reddit: bad checksums found by the oracle, per mode");
    // README: 11 in KakaoTalk_chat.
    assert_eq!(totals["KakaoTalk_chat.pcap"].bad_in, 3 * 11);
}
