//! `xdp::NextHops` against the kernel, in network namespaces the tests create and remove: two
//! namespaces joined by a veth (director side `nla`: 10.66.0.1/24, fd00:66::1/64; peer side
//! `nlb`: 10.66.0.2/24, fd00:66::2/64, MAC [`PEER`]).
//!
//! The test process is in the root namespace, so each outer test re-executes this binary inside
//! the director's namespace (`ip netns exec NS <this binary> --exact inner_... --ignored`) with
//! [`INNER`] set; the inner tests are `#[ignore]`d so that they run only that way, and return
//! at once without [`INNER`] (they change the namespace they run in).
//!
//! Needs root and iproute2; skipped (loudly) without them, and a skip fails under CI=true.

#![cfg(all(feature = "xdp", target_os = "linux"))]

#[path = "support/host.rs"]
mod host;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lb_replay::pipeline::LiveNextHops;
use lb_replay::xdp::{NextHops, Unresolved};
use lb_rewrite::MacAddr;

/// Set (to the peer namespace's name) for the inner runs.
const INNER: &str = "LBK_NETLINK_INNER";
/// The director's interface, inside its namespace.
const IF: &str = "nla";
/// The peer's MAC.
const PEER: MacAddr = MacAddr([0x02, 0x4c, 0x42, 0, 0, 0x02]);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Counts the allocations of the measuring thread, to show that `mac_toward` (hit or miss)
/// allocates nothing.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY (of the impl's contract): every call is passed on to the system allocator unchanged;
// the counter is a const-initialised thread-local `Cell`, which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's layout, as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: as given by the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn try_send_on_a_bounded_channel_does_not_allocate() {
    // The counter counts.
    assert_eq!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 8]))), 1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<IpAddr>(4);
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    let n = allocations_in(|| {
        for _ in 0..100 {
            let _ = tx.try_send(a); // 4 accepted, then Full
        }
    });
    assert_eq!(n, 0);
    assert_eq!(rx.try_iter().count(), 4);
}

use host::{available, is_root};

fn ready() -> bool {
    let ip = Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
    available("root (network namespaces)", is_root()) && available("iproute2 (ip)", ip.is_ok_and(|s| s.success()))
}

/// Runs `ip ARGS`, asserting it succeeded.
fn ip(args: &str) {
    let out = Command::new("ip").args(args.split_whitespace()).output().expect("ip");
    assert!(out.status.success(), "ip {args}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces and the veth between them, removed when dropped (even by a failing test).
struct Namespaces {
    director: String,
    peer: String,
}

impl Namespaces {
    fn up() -> Namespaces {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("lbknl{}-{k}", std::process::id());
        let ns = Namespaces { director: format!("{base}-d"), peer: format!("{base}-p") };
        let (d, p) = (&ns.director, &ns.peer);
        ip(&format!("netns add {d}"));
        ip(&format!("netns add {p}"));
        ip(&format!("-n {d} link add {IF} address 02:4c:42:00:00:01 type veth peer name nlb netns {p}"));
        ip(&format!("-n {p} link set nlb address {PEER}"));
        for (n, dev, last) in [(d, IF, 1), (p, "nlb", 2)] {
            ip(&format!("-n {n} addr add 10.66.0.{last}/24 dev {dev}"));
            ip(&format!("-n {n} addr add fd00:66::{last}/64 dev {dev} nodad"));
            ip(&format!("-n {n} link set {dev} up"));
            ip(&format!("-n {n} link set lo up"));
        }
        // Until the kernel's link watch has seen the carrier (up to a second after `up`), the
        // veth drops what it is given: the first neighbour solicitation would be lost.
        for (n, dev) in [(d, IF), (p, "nlb")] {
            let t0 = Instant::now();
            while !Command::new("ip")
                .args(["-n", n, "-o", "link", "show", dev])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("state UP"))
            {
                assert!(t0.elapsed() < Duration::from_secs(5), "{dev} in {n} not up after 5 s");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        ns
    }

    /// Runs the inner test `name` in the director's namespace; asserts it ran and passed.
    fn run(&self, name: &str) {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.director])
            .arg(exe)
            .args(["--exact", name, "--nocapture", "--ignored", "--test-threads", "1"])
            .env(INNER, &self.peer)
            .output()
            .expect("ip netns exec");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{name} failed in {}:\n{stdout}\n{stderr}", self.director);
        assert!(stdout.contains("test result: ok. 1 passed"), "{name} did not run:\n{stdout}\n{stderr}");
        eprintln!("{stderr}");
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in [&self.director, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", n]).stderr(Stdio::null()).status();
        }
    }
}

fn outer(inner: &str) {
    if !ready() {
        return;
    }
    Namespaces::up().run(inner);
}

/// Whether this is an inner run (in the director's namespace).
fn inner() -> bool {
    let yes = std::env::var_os(INNER).is_some();
    if !yes {
        eprintln!("an inner test: runs only inside the namespace its outer test makes");
    }
    yes
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Polls `f` every 5 ms for up to `limit`: its first `Some`, and when it came.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some((v, t0.elapsed()));
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn open() -> NextHops {
    NextHops::open(IF).expect("NextHops::open")
}

#[test]
fn static_neighbours_are_followed_through_notifications() {
    outer("inner_static_neighbours");
}

#[test]
#[ignore = "runs inside a namespace: see static_neighbours_are_followed_through_notifications"]
fn inner_static_neighbours() {
    if !inner() {
        return;
    }
    // One before open: in the first dump, visible at once.
    ip(&format!("neigh add 10.66.0.51 lladdr 02:00:00:00:00:51 dev {IF} nud permanent"));
    let nh = open();
    assert_eq!(nh.resolved(addr("10.66.0.51")), Some((addr("10.66.0.51"), MacAddr([2, 0, 0, 0, 0, 0x51]))));
    for (a, mac) in [("10.66.0.50", [2, 0, 0, 0, 0, 0x50]), ("fd00:66::50", [2, 0, 0, 0, 0, 0x60])] {
        let (a, mac) = (addr(a), MacAddr(mac));
        assert_eq!(nh.resolved(a), None, "{a} before it is added");
        ip(&format!("neigh add {a} lladdr {mac} dev {IF} nud permanent"));
        let (_, took) = poll(Duration::from_secs(1), || (nh.mac_toward(a) == Some(mac)).then_some(()))
            .unwrap_or_else(|| panic!("{a} not visible a second after `ip neigh add`"));
        assert_eq!(nh.resolved(a), Some((a, mac)));
        eprintln!("{a}: added, visible after {took:?}");
        ip(&format!("neigh del {a} dev {IF}"));
        let (_, took) = poll(Duration::from_secs(1), || nh.resolved(a).is_none().then_some(()))
            .unwrap_or_else(|| panic!("{a} still there a second after `ip neigh del`"));
        eprintln!("{a}: deleted, gone after {took:?}");
    }
    assert!(nh.stats().notifications >= 4, "{:?}", nh.stats());
    // The thread stops within about its 100 ms tick.
    let t0 = Instant::now();
    drop(nh);
    assert!(t0.elapsed() < Duration::from_millis(400), "drop took {:?}", t0.elapsed());
}

#[test]
fn routes_via_a_gateway_resolve_to_its_mac() {
    outer("inner_gateway_routes");
}

#[test]
#[ignore = "runs inside a namespace: see routes_via_a_gateway_resolve_to_its_mac"]
fn inner_gateway_routes() {
    if !inner() {
        return;
    }
    let nh = open();
    for (gw, net, inside, mac) in [
        ("10.66.0.254", "203.0.113.0/24", "203.0.113.7", [2, 0, 0, 0, 0, 0xfe]),
        ("fd00:66::fe", "2001:db8:66::/64", "2001:db8:66::7", [2, 0, 0, 0, 0, 0xff]),
    ] {
        let (gw, inside, mac) = (addr(gw), addr(inside), MacAddr(mac));
        assert_eq!(nh.unresolved(&[inside]), [Unresolved::NoRoute { addr: inside }]);
        ip(&format!("neigh add {gw} lladdr {mac} dev {IF} nud permanent"));
        ip(&format!("route add {net} via {gw} dev {IF}"));
        let (_, took) = poll(Duration::from_secs(1), || (nh.mac_toward(inside) == Some(mac)).then_some(()))
            .unwrap_or_else(|| panic!("{inside} not routed via {gw} a second after `ip route add`"));
        assert_eq!(nh.resolved(inside), Some((gw, mac)));
        assert_eq!(nh.unresolved(&[inside, gw]), []);
        eprintln!("{inside}: via {gw} ({mac}) after {took:?}");
        ip(&format!("route del {net} via {gw} dev {IF}"));
        poll(Duration::from_secs(1), || nh.resolved(inside).is_none().then_some(()))
            .unwrap_or_else(|| panic!("{inside} still routed a second after `ip route del`"));
        // The gateway itself is still a neighbour.
        assert_eq!(nh.mac_toward(gw), Some(mac));
    }
}

#[test]
fn a_missing_neighbour_is_resolved_after_a_miss() {
    outer("inner_resolve_after_miss");
}

#[test]
#[ignore = "runs inside a namespace: see a_missing_neighbour_is_resolved_after_a_miss"]
fn inner_resolve_after_miss() {
    if !inner() {
        return;
    }
    let nh = open();
    for peer in [addr("10.66.0.2"), addr("fd00:66::2")] {
        assert_eq!(nh.resolved(peer), None, "a fresh namespace has no entry for {peer}");
        assert_eq!(nh.mac_toward(peer), None, "the first packet toward {peer} misses");
        let (mac, took) = poll(Duration::from_secs(2), || nh.mac_toward(peer))
            .unwrap_or_else(|| panic!("{peer} not resolved 2 s after a miss: {:?}", nh.stats()));
        assert_eq!(mac, PEER);
        eprintln!("{peer}: resolved after {took:?}");
    }
    assert!(nh.stats().resolutions >= 2, "{:?}", nh.stats());
    // Through a route via the peer: the same MAC.
    ip("route add 198.18.0.0/16 via 10.66.0.2");
    poll(Duration::from_secs(1), || (nh.mac_toward(addr("198.18.3.4")) == Some(PEER)).then_some(()))
        .expect("198.18.0.0/16 via the peer");
}

#[test]
fn unresolved_backends_are_reported_then_resolved() {
    outer("inner_unresolved_backends");
}

#[test]
#[ignore = "runs inside a namespace: see unresolved_backends_are_reported_then_resolved"]
fn inner_unresolved_backends() {
    if !inner() {
        return;
    }
    let nh = open();
    let (p4, p6, nowhere) = (addr("10.66.0.2"), addr("fd00:66::2"), addr("198.51.100.1"));
    // Nobody at .77 (or .100 to .199): stays unresolved (asked for, never answered).
    let ghost = addr("10.66.0.77");
    let backends = [p4, p6, nowhere, ghost];
    assert_eq!(
        nh.unresolved(&backends),
        [
            Unresolved::NoNeighbour { addr: p4, next_hop: p4 },
            Unresolved::NoNeighbour { addr: p6, next_hop: p6 },
            Unresolved::NoRoute { addr: nowhere },
            Unresolved::NoNeighbour { addr: ghost, next_hop: ghost },
        ]
    );
    // Lookups allocate nothing: hits, no route, and misses that ask for resolution (a hundred
    // next hops, more than the queue takes in one go). After a warm-up: arc-swap sets up this
    // thread's slot on its first load.
    let _ = nh.mac_toward(p6);
    let many: Vec<IpAddr> = (100..200).map(|i| addr(&format!("10.66.0.{i}"))).collect();
    let n = allocations_in(|| {
        for _ in 0..100 {
            for &a in many.iter().chain(&backends) {
                std::hint::black_box(nh.mac_toward(std::hint::black_box(a)));
            }
        }
    });
    assert_eq!(n, 0, "allocations in 10,400 lookups");
    assert!(nh.stats().dropped_requests > 0 || nh.stats().resolutions > 0, "{:?}", nh.stats());
    let want = [Unresolved::NoRoute { addr: nowhere }, Unresolved::NoNeighbour { addr: ghost, next_hop: ghost }];
    poll(Duration::from_secs(2), || {
        let _ = nh.mac_toward(p4); // keeps asking, at most once a second
        (nh.unresolved(&backends) == want).then_some(())
    })
    .unwrap_or_else(|| panic!("still unresolved after 2 s: {:?}", nh.unresolved(&backends)));
    assert_eq!(nh.resolved(p6), Some((p6, PEER)));
    let msg = want[1].to_string();
    assert!(msg.contains("10.66.0.77") && msg.contains("cannot be resolved"), "{msg}");
}

#[test]
fn addresses_without_a_route_out_of_the_interface_have_no_next_hop() {
    outer("inner_no_route");
}

#[test]
#[ignore = "runs inside a namespace: see addresses_without_a_route_out_of_the_interface_have_no_next_hop"]
fn inner_no_route() {
    if !inner() {
        return;
    }
    // Another interface with a neighbour of its own: not ours.
    ip("link add lbkx type veth peer name lbky");
    ip("link set lbkx up");
    ip("link set lbky up");
    ip("addr add 10.77.0.1/24 dev lbkx");
    ip("neigh add 10.77.0.5 lladdr 02:00:00:00:00:77 dev lbkx nud permanent");
    // A neighbour of ours, behind a blackhole route.
    ip(&format!("neigh add 10.66.0.254 lladdr 02:00:00:00:00:fe dev {IF} nud permanent"));
    ip(&format!("route add 203.0.113.0/24 via 10.66.0.254 dev {IF}"));
    ip("route add blackhole 203.0.113.16/28");
    let nh = open();
    assert_eq!(nh.mac_toward(addr("203.0.113.1")), Some(MacAddr([2, 0, 0, 0, 0, 0xfe])), "the /24");
    for a in ["198.51.100.1", "2001:db8:99::1", "10.77.0.5", "203.0.113.17"] {
        let a = addr(a);
        assert_eq!(nh.mac_toward(a), None, "{a}");
        assert_eq!(nh.resolved(a), None, "{a}");
        assert_eq!(nh.unresolved(&[a]), [Unresolved::NoRoute { addr: a }], "{a}");
    }
    // Nothing was asked for: no next hop to resolve.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(nh.stats().resolutions, 0, "{:?}", nh.stats());
    assert_eq!(nh.mac_toward(addr("198.51.100.1")), None);
}
