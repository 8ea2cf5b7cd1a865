//! The director's XDP program, written as a sequence of named steps with the [`asm`](super::asm)
//! encoder. What each rule does is stated in the parent module's documentation; this file is the
//! program itself.
//!
//! Registers: R6 the context (`struct xdp_md`), R7 the current header (Ethernet, then L3, then
//! L4), R8 `data_end`, R9 the ethertype, then the IPv4 header length, then the L4 protocol. R6-R9
//! survive helper calls, and the verifier keeps the packet bounds proved on them.
//!
//! The stack (offsets from R10), all zeroed first:
//!
//! | offset | bytes | what |
//! |---|---|---|
//! | -64 | 16 | the source address (IPv4: 4 bytes, then zeros) |
//! | -48 | 4 | the counter index looked up |
//! | -44 | 4 | the flags array's index (always 0) |
//! | -40 | 2 | the source port (network order) |
//! | -24 | 20 | the map key: address (16), port (2, network order), protocol (1), family (1) |

use super::asm::{Asm, AsmError, Cond, Insn, Label, Size, R0, R1, R10, R2, R3, R6, R7, R8, R9};
use super::{Counter, KEY_LEN, PROTO_ADDRESS};

/// The fds of the maps the program uses (put into its `ld_map_fd` instructions).
#[derive(Clone, Copy, Debug)]
pub(super) struct MapFds {
    pub own: i32,
    pub services: i32,
    pub backends: i32,
    pub flags: i32,
    pub counters: i32,
    pub xsk: i32,
}

const SRC: i16 = -64;
const COUNTER_KEY: i16 = -48;
const FLAGS_KEY: i16 = -44;
const SPORT: i16 = -40;
const KEY: i16 = -24;
const KEY_PORT: i16 = KEY + 16;
const KEY_PROTO: i16 = KEY + 18;
const KEY_FAMILY: i16 = KEY + 19;
const _: () = assert!(KEY_LEN == 20 && KEY + KEY_LEN as i16 <= 0);

// struct xdp_md.
const CTX_DATA: i16 = 0;
const CTX_DATA_END: i16 = 4;
const CTX_RX_QUEUE: i16 = 16;

// Helpers.
const MAP_LOOKUP_ELEM: i32 = 1;
const REDIRECT_MAP: i32 = 51;

// XDP actions.
const XDP_PASS: i32 = 2;

/// A 16-bit field as a 2-byte load of it reads on this machine (a network-order constant).
const fn net16(v: u16) -> i32 {
    u16::from_ne_bytes(v.to_be_bytes()) as i32
}

const ETH_P_IP: i32 = net16(0x0800);
const ETH_P_IPV6: i32 = net16(0x86dd);
const ETH_P_8021Q: i32 = net16(0x8100);
const ETH_P_8021AD: i32 = net16(0x88a8);
/// IPv4's flags + fragment offset field: MF and the offset.
const IP_MF_OFFSET: i32 = net16(0x3fff);

const IPPROTO_ICMP: i32 = 1;
const IPPROTO_TCP: i32 = 6;
const IPPROTO_UDP: i32 = 17;
const IPPROTO_FRAGMENT: i32 = 44;
const IPPROTO_ICMPV6: i32 = 58;

/// The jump targets shared by the steps.
struct Targets {
    to_socket: Label,
    own: Label,
    not_ip: Label,
    no_service: Label,
    malformed: Label,
    ipv4: Label,
    ipv6: Label,
    l4: Label,
    address: Label,
}

/// The program.
pub(super) fn program(m: &MapFds) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    let t = Targets {
        to_socket: a.label("to_socket"),
        own: a.label("own"),
        not_ip: a.label("not_ip"),
        no_service: a.label("no_service"),
        malformed: a.label("malformed"),
        ipv4: a.label("ipv4"),
        ipv6: a.label("ipv6"),
        l4: a.label("l4"),
        address: a.label("address"),
    };
    ethernet(&mut a, &t);
    ipv4(&mut a, &t, m);
    ipv6(&mut a, &t, m);
    l4(&mut a, &t, m);
    verdicts(&mut a, &t, m);
    a.finish()
}

/// `if R7 + len > data_end goto malformed`.
fn need(a: &mut Asm, t: &Targets, len: i32) {
    a.emit([Insn::mov(R2, R7), Insn::add_imm(R2, len)]);
    a.jmp(Cond::Gt, R2, R8, t.malformed);
}

/// `R0 = map[key]` (the key on the stack at [`KEY`]).
fn lookup(a: &mut Asm, map: i32, key: i16) {
    a.emit(Insn::ld_map_fd(R1, map));
    a.emit([Insn::mov(R2, R10), Insn::add_imm(R2, key.into()), Insn::call(MAP_LOOKUP_ELEM)]);
}

/// `if map[key] exists goto label`.
fn lookup_goto(a: &mut Asm, map: i32, label: Label) {
    lookup(a, map, KEY);
    a.jmp_imm(Cond::Ne, R0, 0, label);
}

/// The key's address becomes the source address, its port `port` (a stack slot, or 0).
fn key_to_source(a: &mut Asm, port: Option<i16>) {
    a.emit([
        Insn::ldx(Size::Dw, R2, R10, SRC),
        Insn::stx(Size::Dw, R10, KEY, R2),
        Insn::ldx(Size::Dw, R2, R10, SRC + 8),
        Insn::stx(Size::Dw, R10, KEY + 8, R2),
    ]);
    match port {
        Some(slot) => a.emit([Insn::ldx(Size::H, R2, R10, slot), Insn::stx(Size::H, R10, KEY_PORT, R2)]),
        None => a.emit([Insn::st(Size::H, R10, KEY_PORT, 0)]),
    }
}

/// Steps 1-2: the Ethernet header, up to two VLAN tags, then IPv4, IPv6 or not IP.
fn ethernet(a: &mut Asm, t: &Targets) {
    let l3 = a.label("l3");
    a.emit([Insn::mov(R6, R1), Insn::ldx(Size::W, R7, R6, CTX_DATA), Insn::ldx(Size::W, R8, R6, CTX_DATA_END)]);
    for off in (-64..0).step_by(8) {
        a.emit([Insn::st(Size::Dw, R10, off, 0)]);
    }
    need(a, t, 14);
    a.emit([Insn::ldx(Size::H, R9, R7, 12), Insn::add_imm(R7, 14)]);
    for name in ["vlan_1", "vlan_2"] {
        let tag = a.label(name);
        a.jmp_imm(Cond::Eq, R9, ETH_P_8021Q, tag);
        a.jmp_imm(Cond::Eq, R9, ETH_P_8021AD, tag);
        a.goto(l3);
        a.bind(tag);
        need(a, t, 4);
        a.emit([Insn::ldx(Size::H, R9, R7, 2), Insn::add_imm(R7, 4)]);
    }
    a.bind(l3);
    a.jmp_imm(Cond::Eq, R9, ETH_P_IP, t.ipv4);
    a.jmp_imm(Cond::Eq, R9, ETH_P_IPV6, t.ipv6);
    a.goto(t.not_ip);
}

/// Step 2 for IPv4: the header (version, length, total length within the frame), the own check,
/// `--vip any`, fragments, then the L4 protocol.
fn ipv4(a: &mut Asm, t: &Targets, m: &MapFds) {
    a.bind(t.ipv4);
    need(a, t, 20);
    a.emit([Insn::ldx(Size::B, R2, R7, 0), Insn::mov(R3, R2), Insn::and_imm(R3, 0xf0)]);
    a.jmp_imm(Cond::Ne, R3, 0x40, t.malformed);
    a.emit([Insn::and_imm(R2, 0x0f)]);
    a.jmp_imm(Cond::Lt, R2, 5, t.malformed);
    a.emit([Insn::lsh_imm(R2, 2), Insn::mov(R9, R2)]);
    // The total length covers the header and lies within the frame.
    a.emit([Insn::ldx(Size::H, R3, R7, 2), Insn::be16(R3), Insn::and_imm(R3, 0xffff)]);
    a.jmp(Cond::Lt, R3, R9, t.malformed);
    a.emit([Insn::mov(R2, R7), Insn::add(R2, R3)]);
    a.jmp(Cond::Gt, R2, R8, t.malformed);
    a.emit([
        Insn::ldx(Size::W, R2, R7, 16),
        Insn::stx(Size::W, R10, KEY, R2),
        Insn::ldx(Size::W, R2, R7, 12),
        Insn::stx(Size::W, R10, SRC, R2),
        Insn::st(Size::B, R10, KEY_FAMILY, 4),
    ]);
    own_and_any(a, t, m, 16, 224);
    let frag = a.label("ipv4_fragment");
    a.emit([Insn::ldx(Size::H, R2, R7, 6), Insn::and_imm(R2, IP_MF_OFFSET)]);
    a.jmp_imm(Cond::Ne, R2, 0, frag);
    a.emit([Insn::mov(R2, R9), Insn::ldx(Size::B, R9, R7, 9), Insn::add(R7, R2)]);
    a.goto(t.l4);
    a.bind(frag);
    a.goto(t.address);
}

/// The own-address check (pass), then `--vip any`: with the flag set, a destination whose first
/// byte (at `first_byte` in the L3 header) is below `limit` (unicast) goes to the socket.
fn own_and_any(a: &mut Asm, t: &Targets, m: &MapFds, first_byte: i16, limit: i32) {
    lookup_goto(a, m.own, t.own);
    let done = a.label("any_done");
    lookup(a, m.flags, FLAGS_KEY);
    a.jmp_imm(Cond::Eq, R0, 0, done);
    a.emit([Insn::ldx(Size::W, R1, R0, 0), Insn::and_imm(R1, 1)]);
    a.jmp_imm(Cond::Eq, R1, 0, done);
    a.emit([Insn::ldx(Size::B, R2, R7, first_byte)]);
    a.jmp_imm(Cond::Lt, R2, limit, t.to_socket);
    a.bind(done);
}

/// Step 2 for IPv6: the fixed header (version, payload within the frame), the own check,
/// `--vip any`, then a fragment header or the L4 protocol (no other extension header is walked).
fn ipv6(a: &mut Asm, t: &Targets, m: &MapFds) {
    a.bind(t.ipv6);
    need(a, t, 40);
    a.emit([Insn::ldx(Size::B, R2, R7, 0), Insn::and_imm(R2, 0xf0)]);
    a.jmp_imm(Cond::Ne, R2, 0x60, t.malformed);
    a.emit([Insn::ldx(Size::H, R3, R7, 4), Insn::be16(R3), Insn::and_imm(R3, 0xffff)]);
    a.emit([Insn::mov(R2, R7), Insn::add_imm(R2, 40), Insn::add(R2, R3)]);
    a.jmp(Cond::Gt, R2, R8, t.malformed);
    a.emit([
        Insn::ldx(Size::Dw, R2, R7, 24),
        Insn::stx(Size::Dw, R10, KEY, R2),
        Insn::ldx(Size::Dw, R2, R7, 32),
        Insn::stx(Size::Dw, R10, KEY + 8, R2),
        Insn::ldx(Size::Dw, R2, R7, 8),
        Insn::stx(Size::Dw, R10, SRC, R2),
        Insn::ldx(Size::Dw, R2, R7, 16),
        Insn::stx(Size::Dw, R10, SRC + 8, R2),
        Insn::st(Size::B, R10, KEY_FAMILY, 6),
    ]);
    own_and_any(a, t, m, 24, 0xff);
    a.emit([Insn::ldx(Size::B, R9, R7, 6)]);
    a.jmp_imm(Cond::Eq, R9, IPPROTO_FRAGMENT, t.address);
    a.emit([Insn::add_imm(R7, 40)]);
    a.goto(t.l4);
}

/// Steps 3-4: services by (destination, port, protocol), then port 0; backends by (source, port,
/// protocol), then port 0; ICMP errors and fragments by address.
fn l4(a: &mut Asm, t: &Targets, m: &MapFds) {
    let tcp = a.label("tcp");
    let udp = a.label("udp");
    let ports = a.label("ports");
    let icmp4 = a.label("icmp");
    let icmp6 = a.label("icmpv6");
    let other = a.label("other_protocol");
    a.bind(t.l4);
    a.emit([Insn::stx(Size::B, R10, KEY_PROTO, R9)]);
    a.jmp_imm(Cond::Eq, R9, IPPROTO_TCP, tcp);
    a.jmp_imm(Cond::Eq, R9, IPPROTO_UDP, udp);
    a.jmp_imm(Cond::Eq, R9, IPPROTO_ICMP, icmp4);
    a.jmp_imm(Cond::Eq, R9, IPPROTO_ICMPV6, icmp6);
    // Protocol 0 is the address entries' marker (and IPv6's hop-by-hop header, not walked).
    a.jmp_imm(Cond::Eq, R9, i32::from(PROTO_ADDRESS), t.no_service);
    a.goto(other);

    a.bind(tcp);
    need(a, t, 20);
    a.goto(ports);
    a.bind(udp);
    need(a, t, 8);
    a.bind(ports);
    a.emit([
        Insn::ldx(Size::H, R2, R7, 2),
        Insn::stx(Size::H, R10, KEY_PORT, R2),
        Insn::ldx(Size::H, R2, R7, 0),
        Insn::stx(Size::H, R10, SPORT, R2),
    ]);
    lookup_goto(a, m.services, t.to_socket);
    a.emit([Insn::st(Size::H, R10, KEY_PORT, 0)]);
    lookup_goto(a, m.services, t.to_socket);
    key_to_source(a, Some(SPORT));
    lookup_goto(a, m.backends, t.to_socket);
    a.emit([Insn::st(Size::H, R10, KEY_PORT, 0)]);
    lookup_goto(a, m.backends, t.to_socket);
    a.goto(t.no_service);

    // ICMP: errors (destination unreachable, time exceeded, parameter problem) by address.
    a.bind(icmp4);
    need(a, t, 8);
    a.emit([Insn::ldx(Size::B, R2, R7, 0)]);
    for ty in [3, 11, 12] {
        a.jmp_imm(Cond::Eq, R2, ty, t.address);
    }
    a.goto(other);
    // ICMPv6 errors are types 1-4.
    a.bind(icmp6);
    need(a, t, 8);
    a.emit([Insn::ldx(Size::B, R2, R7, 0)]);
    a.jmp_imm(Cond::Eq, R2, 0, other);
    a.jmp_imm(Cond::Gt, R2, 4, other);
    a.goto(t.address);

    // Any other protocol (and ICMP that is not an error): a port-0 service of that protocol.
    a.bind(other);
    lookup_goto(a, m.services, t.to_socket);
    key_to_source(a, None);
    lookup_goto(a, m.backends, t.to_socket);
    a.goto(t.no_service);

    // Fragments and ICMP errors: the address entries (protocol 0, port 0).
    a.bind(t.address);
    a.emit([Insn::st(Size::B, R10, KEY_PROTO, i32::from(PROTO_ADDRESS)), Insn::st(Size::H, R10, KEY_PORT, 0)]);
    lookup_goto(a, m.services, t.to_socket);
    key_to_source(a, None);
    lookup_goto(a, m.backends, t.to_socket);
    a.goto(t.no_service);
}

/// Adds one to the per-CPU counter `c`.
fn count(a: &mut Asm, m: &MapFds, c: Counter) {
    let skip = a.label("count_done");
    a.emit([Insn::st(Size::W, R10, COUNTER_KEY, c as i32)]);
    lookup(a, m.counters, COUNTER_KEY);
    a.jmp_imm(Cond::Eq, R0, 0, skip);
    a.emit([Insn::ldx(Size::Dw, R1, R0, 0), Insn::add_imm(R1, 1), Insn::stx(Size::Dw, R0, 0, R1)]);
    a.bind(skip);
}

/// The verdicts: to the RX queue's AF_XDP socket (XDP_PASS when none is in the map), or pass.
fn verdicts(a: &mut Asm, t: &Targets, m: &MapFds) {
    a.bind(t.to_socket);
    count(a, m, Counter::ToSocket);
    a.emit([Insn::ldx(Size::W, R2, R6, CTX_RX_QUEUE)]);
    a.emit(Insn::ld_map_fd(R1, m.xsk));
    a.emit([Insn::mov_imm(R3, XDP_PASS), Insn::call(REDIRECT_MAP), Insn::exit()]);
    for (label, c) in [
        (t.own, Counter::Own),
        (t.not_ip, Counter::NotIp),
        (t.no_service, Counter::NoService),
        (t.malformed, Counter::Malformed),
    ] {
        a.bind(label);
        count(a, m, c);
        a.emit([Insn::mov_imm(R0, XDP_PASS), Insn::exit()]);
    }
}
