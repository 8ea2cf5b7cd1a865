//! The director's XDP program, loaded into the kernel and run with BPF_PROG_TEST_RUN on crafted
//! frames (built with etherparse, or by hand): which rule fired is read from the program's
//! verdict counters, the action from the test run. One test binds a real AF_XDP socket on a veth
//! pair it creates (and removes) to see XDP_REDIRECT itself, and attaches the program to it.
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN) and, for the veth test, iproute2; skipped (loudly)
//! without them, and a skip fails under CI=true.

#![cfg(all(feature = "cli", feature = "xdp", target_os = "linux"))]

mod support;

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use etherparse::{IpNumber, PacketBuilder};
use lb_replay::xdp::{AttachMode, Counter, Endpoint, ProgramLimits, XdpProgram};
use support::*;

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

const VIP: &str = "10.0.0.1";
const VIP6: &str = "2001:db8::1";
const UDP_ALL_PORTS: &str = "10.0.0.2";
const DIRECTOR_IP: &str = "10.0.0.254";
const DIRECTOR_IP6: &str = "2001:db8::fe";
const BACKEND: &str = "10.1.0.10";
const CLIENT: &str = "192.0.2.7";
const CLIENT6: &str = "2001:db8:c::7";

fn ready() -> bool {
    available("root (loading an XDP program needs CAP_BPF and CAP_NET_ADMIN)", is_root())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(addr: &str, port: u16, proto: u8) -> Endpoint {
    Endpoint { addr: ip(addr), port, proto }
}

/// The program with two TCP services (IPv4 port 80, IPv6 port 443), a UDP service on every port,
/// one NAT backend and the director's own addresses.
fn program() -> XdpProgram {
    let p = XdpProgram::load(ProgramLimits::default()).unwrap_or_else(|e| panic!("{e}"));
    p.set_own(&[ip(DIRECTOR_IP), ip(DIRECTOR_IP6)]).unwrap();
    p.set_services(&[ep(VIP, 80, 6), ep(VIP6, 443, 6), ep(UDP_ALL_PORTS, 0, 17)]).unwrap();
    p.set_backends(&[ep(BACKEND, 8080, 6)]).unwrap();
    p
}

/// Runs one frame: the action and the one counter that moved.
fn run(p: &XdpProgram, frame: &[u8]) -> (u32, Counter) {
    let before = p.counters().unwrap();
    let action = p.test_run(frame).unwrap_or_else(|e| panic!("{e}"));
    let after = p.counters().unwrap();
    let moved: Vec<usize> = (0..before.len()).filter(|&i| after[i] != before[i]).collect();
    assert_eq!(moved.len(), 1, "counters {before:?} -> {after:?}");
    assert_eq!(after[moved[0]], before[moved[0]] + 1);
    let c = Counter::ALL[moved[0]];
    (action, c)
}

/// The verdict of a frame with no socket in the map: to the socket is then XDP_PASS too.
fn verdict(p: &XdpProgram, frame: &[u8]) -> Counter {
    let (action, c) = run(p, frame);
    assert_eq!(action, XDP_PASS, "no socket is in the map: every action is XDP_PASS");
    c
}

fn syn(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    tcp(src, sport, dst, dport, SYN, &[])
}

/// An IP frame with protocol `proto` and `payload` after the IP header.
fn ip_frame(src: &str, dst: &str, proto: u8, payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(ROUTER, DIRECTOR);
    let b = match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut out = Vec::new();
    b.write(&mut out, IpNumber(proto), payload).unwrap();
    out
}

/// An IPv6 frame whose next header is `next` (an extension header etherparse would want to
/// write itself), with `payload` after the fixed header.
fn ipv6_next(src: &str, dst: &str, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ip_frame(src, dst, 17, payload);
    f[14 + 6] = next;
    f
}

/// An ICMP (IPv4) or ICMPv6 message of `ty` quoting `inner` (an IP packet).
fn icmp(src: &str, dst: &str, ty: u8, inner: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(ROUTER, DIRECTOR);
    let mut out = Vec::new();
    match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eth.ipv4(s.octets(), d.octets(), 64).icmpv4_raw(ty, 0, [0; 4]).write(&mut out, inner).unwrap()
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eth.ipv6(s.octets(), d.octets(), 64).icmpv6_raw(ty, 0, [0; 4]).write(&mut out, inner).unwrap()
        }
        _ => panic!("mixed families"),
    }
    out
}

/// `frame` with VLAN tags (TPID, VID) inserted after the MAC addresses.
fn tagged(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    for &(tpid, vid) in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&vid.to_be_bytes());
    }
    out.extend_from_slice(&frame[12..]);
    out
}

fn arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&ROUTER);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&ROUTER);
    f.extend_from_slice(&[192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1]);
    f
}

#[test]
fn services_go_to_the_socket_and_the_rest_passes() {
    if !ready() {
        return;
    }
    let p = program();
    assert_eq!(verdict(&p, &syn(CLIENT, 40000, VIP, 80)), Counter::ToSocket);
    assert_eq!(verdict(&p, &syn(CLIENT, 40000, VIP, 81)), Counter::NoService);
    assert_eq!(verdict(&p, &udp(CLIENT, 40000, VIP, 80, b"x")), Counter::NoService, "TCP service, UDP packet");
    assert_eq!(verdict(&p, &syn(CLIENT, 40000, "10.0.0.9", 80)), Counter::NoService);
    assert_eq!(verdict(&p, &syn(CLIENT, 40000, DIRECTOR_IP, 22)), Counter::Own);
    assert_eq!(verdict(&p, &syn(CLIENT6, 40000, DIRECTOR_IP6, 22)), Counter::Own);
    assert_eq!(verdict(&p, &arp()), Counter::NotIp);
    // A port-0 service takes every port of its protocol.
    assert_eq!(verdict(&p, &udp(CLIENT, 5, UDP_ALL_PORTS, 53, b"q")), Counter::ToSocket);
    assert_eq!(verdict(&p, &udp(CLIENT, 5, UDP_ALL_PORTS, 9999, b"q")), Counter::ToSocket);
    assert_eq!(verdict(&p, &syn(CLIENT, 5, UDP_ALL_PORTS, 53)), Counter::NoService);
    // IPv6.
    assert_eq!(verdict(&p, &syn(CLIENT6, 40000, VIP6, 443)), Counter::ToSocket);
    assert_eq!(verdict(&p, &syn(CLIENT6, 40000, VIP6, 80)), Counter::NoService);
    // Another protocol (GRE) to a service address: no port-0 GRE service, so it passes.
    assert_eq!(verdict(&p, &ip_frame(CLIENT, VIP, 47, &[0; 8])), Counter::NoService);
}

#[test]
fn vlan_tags_are_skipped() {
    if !ready() {
        return;
    }
    let p = program();
    let f = syn(CLIENT, 40000, VIP, 80);
    assert_eq!(verdict(&p, &tagged(&f, &[(0x8100, 100)])), Counter::ToSocket);
    assert_eq!(verdict(&p, &tagged(&f, &[(0x88a8, 7), (0x8100, 100)])), Counter::ToSocket);
    assert_eq!(verdict(&p, &tagged(&syn(CLIENT6, 1, VIP6, 443), &[(0x8100, 5)])), Counter::ToSocket);
    assert_eq!(verdict(&p, &tagged(&syn(CLIENT, 40000, VIP, 81), &[(0x8100, 100)])), Counter::NoService);
    // Three tags: more than the program walks.
    assert_eq!(verdict(&p, &tagged(&f, &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)])), Counter::NotIp);
    assert_eq!(verdict(&p, &tagged(&arp(), &[(0x8100, 100)])), Counter::NotIp);
}

#[test]
fn icmp_errors_to_a_service_go_to_the_socket_echo_passes() {
    if !ready() {
        return;
    }
    let p = program();
    // The quoted packet: a reply from the VIP that a router could not deliver.
    let quoted = &syn(VIP, 80, CLIENT, 40000)[14..];
    assert_eq!(verdict(&p, &icmp("198.51.100.1", VIP, 3, quoted)), Counter::ToSocket, "dest unreachable");
    assert_eq!(verdict(&p, &icmp("198.51.100.1", VIP, 11, quoted)), Counter::ToSocket, "time exceeded");
    assert_eq!(verdict(&p, &icmp("198.51.100.1", VIP, 12, quoted)), Counter::ToSocket, "parameter problem");
    assert_eq!(verdict(&p, &icmp(CLIENT, VIP, 8, &[0; 8])), Counter::NoService, "echo request");
    assert_eq!(verdict(&p, &icmp(CLIENT, VIP, 5, quoted)), Counter::NoService, "redirect");
    assert_eq!(verdict(&p, &icmp("198.51.100.1", "10.0.0.9", 3, quoted)), Counter::NoService, "not a VIP");
    assert_eq!(verdict(&p, &icmp(CLIENT, DIRECTOR_IP, 8, &[0; 8])), Counter::Own, "ping the director");
    // ICMPv6: types 1-4 are errors, 128 is echo.
    let quoted6 = &syn(VIP6, 443, CLIENT6, 40000)[14..];
    for ty in 1..=4 {
        assert_eq!(verdict(&p, &icmp("2001:db8:ff::1", VIP6, ty, quoted6)), Counter::ToSocket, "ICMPv6 type {ty}");
    }
    assert_eq!(verdict(&p, &icmp(CLIENT6, VIP6, 128, &[0; 8])), Counter::NoService, "ICMPv6 echo");
    assert_eq!(verdict(&p, &icmp(CLIENT6, VIP6, 135, &[0; 24])), Counter::NoService, "neighbour solicitation");
}

#[test]
fn fragments_to_a_service_address_go_to_the_socket() {
    if !ready() {
        return;
    }
    let p = program();
    // IPv4: MF set (a first fragment), or an offset (a later one, with no TCP header).
    let mut first = syn(CLIENT, 40000, VIP, 81);
    first[14 + 6] = 0x20;
    assert_eq!(verdict(&p, &first), Counter::ToSocket, "first fragment (any port: the address decides)");
    let mut later = ip_frame(CLIENT, VIP, 6, &[0xab; 16]);
    later[14 + 6..14 + 8].copy_from_slice(&185u16.to_be_bytes());
    assert_eq!(verdict(&p, &later), Counter::ToSocket, "later fragment");
    let mut elsewhere = later.clone();
    elsewhere[14 + 16..14 + 20].copy_from_slice(&[10, 0, 0, 9]);
    assert_eq!(verdict(&p, &elsewhere), Counter::NoService);
    // IPv6: a fragment header right after the fixed header.
    let mut frag6 = vec![6, 0, 0, 0x01, 0, 0, 0, 42];
    frag6.extend_from_slice(&[0xab; 16]);
    assert_eq!(verdict(&p, &ipv6_next(CLIENT6, VIP6, 44, &frag6)), Counter::ToSocket);
    assert_eq!(verdict(&p, &ipv6_next(CLIENT6, "2001:db8::9", 44, &frag6)), Counter::NoService);
    // A hop-by-hop header is not walked.
    assert_eq!(verdict(&p, &ipv6_next(CLIENT6, VIP6, 0, &[6, 0, 1, 4, 0, 0, 0, 0])), Counter::NoService);
}

#[test]
fn nat_replies_from_backends_go_to_the_socket() {
    if !ready() {
        return;
    }
    let p = program();
    let reply = tcp(BACKEND, 8080, CLIENT, 40000, SYN | ACK, &[]);
    assert_eq!(verdict(&p, &reply), Counter::ToSocket);
    assert_eq!(verdict(&p, &tcp("10.1.0.11", 8080, CLIENT, 40000, SYN | ACK, &[])), Counter::NoService);
    assert_eq!(verdict(&p, &tcp(BACKEND, 9090, CLIENT, 40000, SYN | ACK, &[])), Counter::NoService);
    assert_eq!(verdict(&p, &udp(BACKEND, 8080, CLIENT, 40000, b"x")), Counter::NoService);
    // An ICMP error from the backend's address (about a packet the director sent it).
    let quoted = &syn(CLIENT, 40000, BACKEND, 8080)[14..];
    assert_eq!(verdict(&p, &icmp(BACKEND, CLIENT, 3, quoted)), Counter::ToSocket);
    assert_eq!(verdict(&p, &icmp(BACKEND, CLIENT, 0, &[0; 8])), Counter::NoService, "echo reply");
}

#[test]
fn vip_any_takes_every_unicast_packet_but_the_directors_own() {
    if !ready() {
        return;
    }
    let p = program();
    let elsewhere = syn(CLIENT, 40000, "10.0.0.9", 80);
    assert_eq!(verdict(&p, &elsewhere), Counter::NoService);
    p.set_any(true).unwrap();
    assert_eq!(verdict(&p, &elsewhere), Counter::ToSocket);
    assert_eq!(verdict(&p, &syn(CLIENT6, 1, "2001:db8::9", 80)), Counter::ToSocket);
    assert_eq!(verdict(&p, &icmp(CLIENT, "10.0.0.9", 8, &[0; 8])), Counter::ToSocket);
    assert_eq!(verdict(&p, &syn(CLIENT, 40000, DIRECTOR_IP, 22)), Counter::Own);
    assert_eq!(verdict(&p, &syn(CLIENT6, 40000, DIRECTOR_IP6, 22)), Counter::Own);
    assert_eq!(verdict(&p, &udp(CLIENT, 5353, "224.0.0.251", 5353, b"m")), Counter::NoService, "multicast");
    assert_eq!(verdict(&p, &udp(CLIENT, 67, "255.255.255.255", 68, b"b")), Counter::NoService, "broadcast");
    assert_eq!(verdict(&p, &udp(CLIENT6, 5353, "ff02::fb", 5353, b"m")), Counter::NoService, "IPv6 multicast");
    assert_eq!(verdict(&p, &arp()), Counter::NotIp);
    p.set_any(false).unwrap();
    assert_eq!(verdict(&p, &elsewhere), Counter::NoService);
}

#[test]
fn truncated_frames_pass_and_never_reach_the_socket() {
    if !ready() {
        return;
    }
    let p = program();
    p.set_any(true).unwrap();
    let quoted = &syn(VIP, 80, CLIENT, 40000)[14..];
    let frames = [
        syn(CLIENT, 40000, VIP, 80),
        tcp(CLIENT, 40000, VIP, 80, ACK, b"some payload"),
        udp(CLIENT, 5, UDP_ALL_PORTS, 53, b"query"),
        syn(CLIENT6, 40000, VIP6, 443),
        tagged(&syn(CLIENT, 40000, VIP, 80), &[(0x88a8, 7), (0x8100, 100)]),
        icmp("198.51.100.1", VIP, 3, quoted),
        tcp(BACKEND, 8080, CLIENT, 40000, SYN | ACK, &[]),
    ];
    for f in &frames {
        assert_eq!(verdict(&p, f), Counter::ToSocket, "the whole frame");
        for len in 0..f.len() {
            let prefix = &f[..len];
            if len < 14 {
                // BPF_PROG_TEST_RUN takes no frame shorter than an Ethernet header.
                assert!(p.test_run(prefix).is_err(), "{len} bytes");
                continue;
            }
            let (action, c) = run(&p, prefix);
            assert_eq!(action, XDP_PASS, "prefix of {len} bytes of {f:02x?}");
            assert_eq!(c, Counter::Malformed, "prefix of {len} bytes of {f:02x?}");
        }
    }
    // Bad IPv4 version and header length.
    let mut bad = syn(CLIENT, 40000, VIP, 80);
    bad[14] = 0x44;
    assert_eq!(verdict(&p, &bad), Counter::Malformed);
    bad[14] = 0x55;
    assert_eq!(verdict(&p, &bad), Counter::Malformed);
    // Random bytes never crash the program, and every frame is counted once.
    let mut seed = 0x1234_5678_9abc_def0u64;
    for _ in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 20 + (seed % 120) as usize;
        let mut f: Vec<u8> = (0..len).map(|i| (seed >> (i % 57)) as u8).collect();
        if seed & 1 == 0 {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
        }
        run(&p, &f);
    }
}

#[test]
fn set_services_replaces_the_whole_set() {
    if !ready() {
        return;
    }
    let p = program();
    let quoted = &syn(VIP, 80, CLIENT, 40000)[14..];
    p.set_services(&[ep("10.0.0.3", 80, 6)]).unwrap();
    assert_eq!(verdict(&p, &syn(CLIENT, 40000, VIP, 80)), Counter::NoService);
    assert_eq!(verdict(&p, &syn(CLIENT6, 40000, VIP6, 443)), Counter::NoService);
    assert_eq!(verdict(&p, &icmp("198.51.100.1", VIP, 3, quoted)), Counter::NoService, "stale address entry");
    assert_eq!(verdict(&p, &syn(CLIENT, 40000, "10.0.0.3", 80)), Counter::ToSocket);
    assert_eq!(verdict(&p, &icmp("198.51.100.1", "10.0.0.3", 3, quoted)), Counter::ToSocket);
    p.set_backends(&[]).unwrap();
    assert_eq!(verdict(&p, &tcp(BACKEND, 8080, CLIENT, 40000, SYN | ACK, &[])), Counter::NoService);
    p.set_own(&[]).unwrap();
    assert_eq!(verdict(&p, &syn(CLIENT, 40000, DIRECTOR_IP, 22)), Counter::NoService);
    // Protocol 0 is reserved for the address entries; more than the limit is refused.
    assert!(p.set_services(&[ep(VIP, 80, 0)]).is_err());
    let small = XdpProgram::load(ProgramLimits { services: 1, backends: 1, own: 1, queues: 1 }).unwrap();
    assert!(small.set_services(&[ep(VIP, 80, 6), ep(VIP, 81, 6)]).is_err());
    small.set_services(&[ep(VIP, 80, 6)]).unwrap();
    assert!(small.set_own(&[ip(DIRECTOR_IP), ip(DIRECTOR_IP6)]).is_err());
    // Queue 1 of a one-queue program is refused before the kernel sees the fd; stdin is not an
    // AF_XDP socket, which the kernel refuses.
    let stdin = std::io::stdin();
    assert!(small.insert_socket(1, stdin.as_fd()).is_err(), "queue beyond the limit");
    assert!(small.insert_socket(0, stdin.as_fd()).is_err(), "not an AF_XDP socket");
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A veth pair with two queues in this namespace, with a unique name, removed when dropped.
struct Veth {
    name: String,
}

impl Veth {
    fn new() -> Veth {
        let name = format!("lbp{}{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let peer = format!("{name}p");
        let _ = Command::new("ip").args(["link", "del", &name]).stderr(Stdio::null()).status();
        let st = Command::new("ip")
            .args(["link", "add", &name, "numtxqueues", "2", "numrxqueues", "2", "type", "veth", "peer", "name", &peer])
            .args(["numtxqueues", "2", "numrxqueues", "2"])
            .status();
        assert!(st.is_ok_and(|s| s.success()), "ip link add {name}");
        for dev in [&name, &peer] {
            let st = Command::new("ip").args(["link", "set", dev, "up"]).status();
            assert!(st.is_ok_and(|s| s.success()), "ip link set {dev} up");
        }
        Veth { name }
    }

    fn show(&self) -> String {
        let out = Command::new("ip").args(["-d", "link", "show", &self.name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into()
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).status();
    }
}

fn have_ip() -> bool {
    Command::new("ip").arg("-V").stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

#[test]
fn a_bound_af_xdp_socket_gets_the_redirect_and_attach_detaches_on_drop() {
    if !ready() || !available("iproute2 (ip)", have_ip()) {
        return;
    }
    let p = program();
    let veth = Veth::new();
    let link = p.attach(&veth.name, AttachMode::Skb).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(link.iface(), veth.name);
    let shown = veth.show();
    assert!(shown.contains("xdpgeneric") && shown.contains("prog/xdp id"), "{shown}");
    // A second program cannot take the interface while the link holds it.
    let other = program();
    assert!(other.attach(&veth.name, AttachMode::Skb).is_err());

    // A real AF_XDP socket, bound to queue 1 of the (two-queue) veth.
    let umem = xdp::Umem::map(
        xdp::umem::UmemCfgBuilder { frame_size: xdp::umem::FrameSize::TwoK, frame_count: 64, ..Default::default() }
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut builder = xdp::socket::XdpSocketBuilder::new().unwrap();
    let rings =
        xdp::RingConfigBuilder { rx_count: 64, tx_count: 0, fill_count: 64, completion_count: 64 }.build().unwrap();
    let (_rings, flags) = builder.build_rings(&umem, rings).unwrap();
    let nic = xdp::nic::NicIndex::lookup_by_name(&std::ffi::CString::new(veth.name.clone()).unwrap()).unwrap().unwrap();
    let sock = builder.bind(nic, 1, flags).unwrap_or_else(|e| panic!("bind: {e}"));

    let f = syn(CLIENT, 40000, VIP, 80);
    let on = |queue: u32, frame: &[u8]| p.test_run_on(frame, &veth.name, queue).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run(&p, &f), (XDP_PASS, Counter::ToSocket), "no socket yet: the fallback");
    p.insert_xdp_socket(1, &sock).unwrap();
    let before = p.counters().unwrap();
    assert_eq!(on(1, &f), XDP_REDIRECT, "received on queue 1, whose socket is in the map");
    assert_eq!(on(0, &f), XDP_PASS, "received on queue 0, which has no socket");
    assert_eq!(p.test_run(&f).unwrap(), XDP_PASS, "no interface: queue 0");
    let after = p.counters().unwrap();
    assert_eq!(after[Counter::ToSocket as usize], before[Counter::ToSocket as usize] + 3);
    assert_eq!(on(1, &syn(CLIENT, 40000, VIP, 81)), XDP_PASS);
    assert_eq!(on(1, &syn(CLIENT, 40000, DIRECTOR_IP, 22)), XDP_PASS);
    assert_eq!(on(1, &arp()), XDP_PASS);
    assert_eq!(on(1, &tcp(BACKEND, 8080, CLIENT, 40000, SYN | ACK, &[])), XDP_REDIRECT, "NAT reply");
    p.remove_socket(1).unwrap();
    assert_eq!(on(1, &f), XDP_PASS, "socket removed");

    drop(link);
    let shown = veth.show();
    assert!(!shown.contains("prog/xdp"), "still attached after the link was dropped: {shown}");
    // Now the other program may attach, natively this time (veth has XDP in its driver).
    let link = other.attach(&veth.name, AttachMode::Driver).unwrap_or_else(|e| panic!("{e}"));
    let shown = veth.show();
    assert!(shown.contains("prog/xdp id") && !shown.contains("xdpgeneric"), "{shown}");
    drop(link);
    assert!(!veth.show().contains("prog/xdp"));
    drop(sock);
}

#[test]
fn errors_name_what_failed() {
    if !ready() {
        return;
    }
    let p = program();
    let e = p.attach("no-such-if0", AttachMode::Skb).unwrap_err().to_string();
    assert!(e.contains("no-such-if0"), "{e}");
    let e = p.test_run(&[0; 10]).unwrap_err().to_string();
    assert!(e.contains("10 bytes"), "{e}");
    assert!(p.instructions() > 100);
}

/// Whether `cond` becomes true within `limit`.
fn within(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

#[test]
fn a_killed_process_leaves_no_program_behind() {
    const CHILD: &str = "LBKIT_XDP_PROG_TEST_ATTACH_TO";
    if let Ok(iface) = std::env::var(CHILD) {
        // The child: attach, then wait to be killed.
        let p = program();
        let _link = p.attach(&iface, AttachMode::Skb).unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(std::time::Duration::from_secs(60));
        return;
    }
    if !ready() || !available("iproute2 (ip)", have_ip()) {
        return;
    }
    let veth = Veth::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_killed_process_leaves_no_program_behind", "--test-threads=1"])
        .env(CHILD, &veth.name)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let attached = within(std::time::Duration::from_secs(20), || veth.show().contains("prog/xdp id"));
    // SIGKILL: no destructor runs; the kernel closes the link's fd with the process.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(attached, "the child never attached: {}", veth.show());
    assert!(
        within(std::time::Duration::from_secs(5), || !veth.show().contains("prog/xdp")),
        "still attached after the process was killed: {}",
        veth.show()
    );
}
