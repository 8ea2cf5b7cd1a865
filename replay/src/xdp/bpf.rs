//! The director's own XDP program: which received frames go to its AF_XDP sockets and which to
//! the kernel. Built as raw eBPF instructions ([`asm`], [`prog`]) and loaded through the `bpf()`
//! system call: no C compiler, no object file, no loader library.
//!
//! # The rules, in order
//!
//! 1. Ethernet, at most two VLAN tags (802.1Q `0x8100`, 802.1ad `0x88a8`), then IPv4 or IPv6.
//!    Anything else (ARP, LLDP, a third tag, ...) passes to the kernel ([`Counter::NotIp`]).
//!    Every header is bounds-checked; an IPv4 header with a bad version or length, or an IP
//!    packet whose total length runs past the frame, or an L4 header cut short, passes
//!    ([`Counter::Malformed`]) and never goes to a socket.
//! 2. A destination address in the *own* map passes, always ([`Counter::Own`]): SSH, ping and
//!    health checks to the director itself.
//! 3. With `--vip any` ([`XdpProgram::set_any`]), every other unicast IPv4 (first byte below 224)
//!    or IPv6 (not `ff00::/8`) packet goes to the socket.
//! 4. TCP (a full 20-byte header) and UDP (8 bytes): the *services* map with (destination,
//!    destination port, protocol), then with port 0 (a port-0 service takes every port); then
//!    the *backends* map with (source, source port, protocol), then port 0 (NAT replies from a
//!    real server). Another protocol: both maps with port 0 and the packet's protocol.
//! 5. ICMP errors (IPv4 types 3, 11, 12; ICMPv6 types 1-4) and fragments (IPv4 with MF set or an
//!    offset; IPv6 whose next header is a fragment header) use the *address entries*: protocol 0,
//!    port 0, inserted by [`XdpProgram::set_services`] / [`XdpProgram::set_backends`] for every
//!    distinct address given. A destination that is a service address or a source that is a
//!    backend address: to the socket. ICMP echo and other non-errors are looked up as "another
//!    protocol" (so they pass unless an ICMP service was configured).
//! 6. Everything else passes ([`Counter::NoService`]).
//!
//! IPv6 extension headers other than a fragment header directly after the fixed header are not
//! walked: such packets pass (next header 0, hop-by-hop, counts as [`Counter::NoService`]).
//!
//! "To the socket" is `bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS)`: the frame goes to
//! the AF_XDP socket inserted for its RX queue ([`XdpProgram::insert_socket`]), or passes when
//! there is none. Both are counted as [`Counter::ToSocket`].
//!
//! # Map keys
//!
//! The own, services and backends maps are hash maps with the same 20-byte key
//! ([`key`]): the address (16 bytes; IPv4 in the first 4, then zeros), the port (2 bytes,
//! network order), the IP protocol (1 byte), the family (1 byte, 4 or 6). Own keys have port and
//! protocol 0. The values (4 bytes) are unused. An IPv4 address must be given as
//! [`IpAddr::V4`]: an IPv4-mapped IPv6 address is a different key.

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::XdpError;
use sys::{
    bpf_error, ifindex, map_create, owned_fd, possible_cpus, sys_bpf, LinkCreateAttr, Map, TestRunAttr, XdpMd,
    ATTACH_XDP, LINK_CREATE, MAP_ARRAY, MAP_HASH, MAP_PERCPU_ARRAY, MAP_XSKMAP, PROG_TEST_RUN, TEST_RUN_MAX,
    XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE,
};

mod asm;
mod prog;
mod sys;

/// The verdict counters ([`XdpProgram::counters`] indexes them by this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Redirected to the RX queue's AF_XDP socket (or passed, when none is in the map).
    ToSocket = 0,
    /// To one of the director's own addresses: passed.
    Own = 1,
    /// Not IPv4 or IPv6: passed.
    NotIp = 2,
    /// IP, but no service, backend or `--vip any` matched: passed.
    NoService = 3,
    /// Truncated or malformed headers: passed.
    Malformed = 4,
}

/// The number of [`Counter`]s.
pub const COUNTERS: usize = 5;

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTERS] =
        [Counter::ToSocket, Counter::Own, Counter::NotIp, Counter::NoService, Counter::Malformed];

    /// A short name for reports (`to_socket`, `own`, `not_ip`, `no_service`, `malformed`).
    pub fn name(self) -> &'static str {
        match self {
            Counter::ToSocket => "to_socket",
            Counter::Own => "own",
            Counter::NotIp => "not_ip",
            Counter::NoService => "no_service",
            Counter::Malformed => "malformed",
        }
    }
}

/// The length of the own / services / backends keys.
pub const KEY_LEN: usize = 20;

/// The protocol of address entries (see the module documentation).
pub const PROTO_ADDRESS: u8 = 0;

/// The sizes of the program's maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramLimits {
    /// Service endpoints (the services map holds twice as many entries: room for the address
    /// entries).
    pub services: u32,
    /// Backend endpoints (likewise doubled).
    pub backends: u32,
    /// Own addresses.
    pub own: u32,
    /// RX queues (the XSKMAP's size).
    pub queues: u32,
}

impl Default for ProgramLimits {
    fn default() -> Self {
        ProgramLimits { services: 1024, backends: 4096, own: 64, queues: 64 }
    }
}

/// An address, a port (0: every port) and an IP protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The address.
    pub addr: IpAddr,
    /// The port (0: every port of the address).
    pub port: u16,
    /// The IP protocol number (6 TCP, 17 UDP, ...; not 0).
    pub proto: u8,
}

/// How the program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): any interface, after the socket buffer is built.
    Skb,
    /// Native XDP in the driver (`XDP_FLAGS_DRV_MODE`): veth and XDP-capable NICs.
    Driver,
}

/// A map key (see the module documentation).
pub fn key(addr: IpAddr, port: u16, proto: u8) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    match addr {
        IpAddr::V4(a) => {
            k[..4].copy_from_slice(&a.octets());
            k[19] = 4;
        }
        IpAddr::V6(a) => {
            k[..16].copy_from_slice(&a.octets());
            k[19] = 6;
        }
    }
    k[16..18].copy_from_slice(&port.to_be_bytes());
    k[18] = proto;
    k
}

/// The loaded XDP program and its maps; every fd is closed on drop (the kernel frees the program
/// once no link uses it either).
#[derive(Debug)]
pub struct XdpProgram {
    prog: OwnedFd,
    own: Map,
    services: Map,
    backends: Map,
    flags: Map,
    counters: Map,
    xsks: Map,
    limits: ProgramLimits,
    insns: usize,
}

/// The program attached to an interface through a BPF link: dropping it (or the process ending,
/// even by SIGKILL) detaches the program.
#[derive(Debug)]
pub struct XdpLink {
    fd: OwnedFd,
    iface: String,
}

impl XdpLink {
    /// The interface the program is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }
}

impl AsFd for XdpLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl XdpProgram {
    /// Creates the maps and loads the program. A verifier rejection is an [`XdpError::Bpf`]
    /// carrying the verifier's log.
    pub fn load(limits: ProgramLimits) -> Result<XdpProgram, XdpError> {
        let key = KEY_LEN as u32;
        let map = |name: &'static str, ty: u32, key: u32, value: u32, max: u32| -> Result<Map, XdpError> {
            Ok(Map { fd: map_create(name, ty, key, value, max)?, name, max_entries: max.max(1) })
        };
        let own = map("lbkit_own", MAP_HASH, key, 4, limits.own)?;
        let services = map("lbkit_services", MAP_HASH, key, 4, limits.services.saturating_mul(2))?;
        let backends = map("lbkit_backends", MAP_HASH, key, 4, limits.backends.saturating_mul(2))?;
        let flags = map("lbkit_flags", MAP_ARRAY, 4, 4, 1)?;
        let counters = map("lbkit_counters", MAP_PERCPU_ARRAY, 4, 8, COUNTERS as u32)?;
        let xsks = map("lbkit_xsks", MAP_XSKMAP, 4, 4, limits.queues)?;
        let fds = prog::MapFds {
            own: own.raw(),
            services: services.raw(),
            backends: backends.raw(),
            flags: flags.raw(),
            counters: counters.raw(),
            xsk: xsks.raw(),
        };
        let insns = prog::program(&fds).map_err(|e| XdpError::Bpf {
            what: format!("assembling the XDP program: {e}"),
            errno: libc::EINVAL,
            log: String::new(),
        })?;
        let prog = sys::prog_load(&insns)?;
        Ok(XdpProgram { prog, own, services, backends, flags, counters, xsks, limits, insns: insns.len() })
    }

    /// The program's length in instructions.
    pub fn instructions(&self) -> usize {
        self.insns
    }

    /// The sizes the maps were created with.
    pub fn limits(&self) -> ProgramLimits {
        self.limits
    }

    fn endpoint_keys(eps: &[Endpoint], max: u32, what: &str) -> Result<HashSet<[u8; KEY_LEN]>, XdpError> {
        if eps.len() > max as usize {
            return Err(XdpError::Size(format!("{} {what}: the program was loaded for at most {max}", eps.len())));
        }
        let mut want = HashSet::new();
        for ep in eps {
            if ep.proto == PROTO_ADDRESS {
                return Err(XdpError::Size(format!("{what} {}:{}: protocol 0 is reserved", ep.addr, ep.port)));
            }
            want.insert(key(ep.addr, ep.port, ep.proto));
            want.insert(key(ep.addr, 0, PROTO_ADDRESS));
        }
        Ok(want)
    }

    /// Makes the services exactly `eps` (with their address entries): new ones inserted, stale
    /// ones deleted. Call it again whenever the configuration changes.
    pub fn set_services(&self, eps: &[Endpoint]) -> Result<(), XdpError> {
        self.services.replace(&Self::endpoint_keys(eps, self.limits.services, "services")?)
    }

    /// Makes the backends (real servers whose replies come back through the director, NAT)
    /// exactly `eps`, with their address entries.
    pub fn set_backends(&self, eps: &[Endpoint]) -> Result<(), XdpError> {
        self.backends.replace(&Self::endpoint_keys(eps, self.limits.backends, "backends")?)
    }

    /// Makes the director's own addresses exactly `addrs`.
    pub fn set_own(&self, addrs: &[IpAddr]) -> Result<(), XdpError> {
        let want: HashSet<_> = addrs.iter().map(|&a| key(a, 0, 0)).collect();
        self.own.replace(&want)
    }

    /// Sets or clears `--vip any`: every unicast IP packet not to an own address to the socket.
    pub fn set_any(&self, any: bool) -> Result<(), XdpError> {
        self.flags.update(&0u32.to_ne_bytes(), &u32::from(any).to_ne_bytes())
    }

    /// Puts an AF_XDP socket (bound to `queue` of the interface the program is attached to) in
    /// the program's XSKMAP: frames to the socket from that RX queue go to it.
    pub fn insert_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        if queue >= self.limits.queues {
            return Err(XdpError::Size(format!(
                "queue {queue}: the program was loaded for {} queue(s)",
                self.limits.queues
            )));
        }
        self.xsks.update(&queue.to_ne_bytes(), &fd.as_raw_fd().to_ne_bytes())
    }

    /// [`XdpProgram::insert_socket`] for a socket of the `xdp` crate.
    pub fn insert_xdp_socket(&self, queue: u32, socket: &xdp::socket::XdpSocket) -> Result<(), XdpError> {
        // SAFETY: the fd belongs to `socket`, borrowed for this whole call, so it stays open
        // while the borrowed fd is used (the kernel takes its own reference to the socket).
        let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        self.insert_socket(queue, fd)
    }

    /// Removes the socket of `queue` (its frames then pass to the kernel).
    pub fn remove_socket(&self, queue: u32) -> Result<(), XdpError> {
        self.xsks.delete(&queue.to_ne_bytes())
    }

    /// Attaches the program to `iface` through a BPF link, owned by the returned [`XdpLink`].
    pub fn attach(&self, iface: &str, mode: AttachMode) -> Result<XdpLink, XdpError> {
        let mut attr = LinkCreateAttr {
            prog_fd: self.prog.as_raw_fd() as u32,
            target_ifindex: ifindex(iface)?,
            attach_type: ATTACH_XDP,
            flags: match mode {
                AttachMode::Skb => XDP_FLAGS_SKB_MODE,
                AttachMode::Driver => XDP_FLAGS_DRV_MODE,
            },
        };
        let fd = owned_fd(
            &format!("attaching the XDP program to {iface} ({mode:?} mode)"),
            sys_bpf(LINK_CREATE, &mut attr),
        )?;
        Ok(XdpLink { fd, iface: iface.into() })
    }

    /// Runs the program once on `frame` (BPF_PROG_TEST_RUN, received on queue 0 of no interface)
    /// and returns its XDP action (1 drop, 2 pass, 4 redirect). Frames are 14 to 3520 bytes.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        self.run(frame, None)
    }

    /// As [`XdpProgram::test_run`], as if received on `queue` of `iface`.
    pub fn test_run_on(&self, frame: &[u8], iface: &str, queue: u32) -> Result<u32, XdpError> {
        self.run(frame, Some((ifindex(iface)?, queue)))
    }

    fn run(&self, frame: &[u8], rx: Option<(u32, u32)>) -> Result<u32, XdpError> {
        if !(14..=TEST_RUN_MAX).contains(&frame.len()) {
            return Err(XdpError::Size(format!("test frame of {} bytes: from 14 to {TEST_RUN_MAX}", frame.len())));
        }
        let mut ctx = XdpMd { data_end: frame.len() as u32, ..Default::default() };
        let mut attr = TestRunAttr {
            prog_fd: self.prog.as_raw_fd() as u32,
            data_size_in: frame.len() as u32,
            data_in: frame.as_ptr() as u64,
            repeat: 1,
            ..Default::default()
        };
        if let Some((ifindex, queue)) = rx {
            ctx.ingress_ifindex = ifindex;
            ctx.rx_queue_index = queue;
            attr.ctx_size_in = std::mem::size_of::<XdpMd>() as u32;
            attr.ctx_in = &ctx as *const XdpMd as u64;
        }
        sys_bpf(PROG_TEST_RUN, &mut attr).map_err(|e| bpf_error("test-running the XDP program", e, String::new()))?;
        Ok(attr.retval)
    }

    /// The verdict counters, summed over every CPU, indexed by [`Counter`].
    pub fn counters(&self) -> Result<[u64; COUNTERS], XdpError> {
        let cpus = possible_cpus()?;
        let mut out = [0u64; COUNTERS];
        let mut buf = vec![0u8; cpus * 8];
        for (i, o) in out.iter_mut().enumerate() {
            buf.fill(0);
            self.counters.lookup(&(i as u32).to_ne_bytes(), &mut buf)?;
            *o =
                buf.chunks_exact(8).map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).sum();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fds() -> prog::MapFds {
        prog::MapFds { own: 3, services: 4, backends: 5, flags: 6, counters: 7, xsk: 8 }
    }

    #[test]
    fn program_assembles_within_the_verifier_limits() {
        let p = prog::program(&fds()).unwrap();
        // 4096 instructions is the limit for unprivileged loaders; ours is far below.
        assert!(p.len() > 100 && p.len() < 4096, "{} instructions", p.len());
        // It ends with an exit, and every jump lands inside the program.
        assert_eq!(p.last().map(|i| i.code), Some(0x95));
        for (pc, i) in p.iter().enumerate() {
            let class = i.code & 0x07;
            let op = i.code & 0xf0;
            if class == 0x05 && op != 0x80 && op != 0x90 {
                let target = pc as i64 + 1 + i64::from(i.off);
                assert!((0..p.len() as i64).contains(&target), "jump at {pc} to {target}");
            }
        }
    }

    #[test]
    fn map_fds_appear_in_two_slot_loads() {
        let p = prog::program(&fds()).unwrap();
        let loads: Vec<i32> = p.iter().filter(|i| i.code == 0x18).map(|i| i.imm).collect();
        for fd in 3..=8 {
            assert!(loads.contains(&fd), "map fd {fd} never loaded");
        }
        assert!(p.iter().all(|i| i.code != 0x18 || i.src == asm::PSEUDO_MAP_FD));
    }

    #[test]
    fn keys_have_the_documented_layout() {
        let k = key("10.0.0.1".parse().unwrap(), 80, 6);
        assert_eq!(k, [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 80, 6, 4]);
        let k = key("2001:db8::1".parse().unwrap(), 443, 17);
        assert_eq!(&k[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(k[15], 1);
        assert_eq!(&k[16..], &[1, 187, 17, 6]);
    }

    #[test]
    fn counters_are_in_index_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
    }

    #[test]
    fn possible_cpus_parses() {
        assert!(possible_cpus().unwrap() >= 1);
    }
}
