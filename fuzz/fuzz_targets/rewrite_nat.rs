//! `rewrite_nat`: NAT of any frame (`dnat`, `snat`, `nat_icmp_in`, `nat_icmp_out`, chosen by the
//! knobs) to any address and port, with any MTU, MACs and headroom.
//!
//! Asserts: no panic; no write outside the frame (sentinels all around it); an error other than
//! `MtuTooSmall` leaves the buffer unchanged; verdicts as documented (`TimeExceeded` changes
//! nothing, `TooBig` only the TTL, fragments counted and parseable, replies well formed). When
//! the packet describes its frame and the result is `Forward`: the output parses (etherparse and
//! lb-rewrite), only the MACs, TTL, the rewritten address and port and the checksums changed, the
//! flow is the NAT'ed one, and every checksum keeps its validity: a right one stays right, a wrong
//! one stays exactly as wrong (etherparse's full recomputation as the judge); a zero UDP checksum
//! is computed in full; an ICMP error's checksum is right after `nat_icmp_*`.
#![no_main]

use std::net::SocketAddr;

use lb_rewrite::{dnat, nat_icmp_in, nat_icmp_out, parse, snat, IpVersion, Verdict};
use lbkit_fuzz::oracle::{assert_right, assert_rule, checks};
use lbkit_fuzz::rewrite::{run, Case, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input<'_>| {
    let Some(case) = Case::new(&input) else { return };
    let (pkt, hop) = (case.pkt, case.hop());
    let to = SocketAddr::new(case.knobs.a.ip(), case.knobs.port);
    let op = case.knobs.select & 3;
    let mut arena = case.arena();
    let done = run(&mut arena, |fb, sink| match op {
        0 => dnat(fb, &pkt, &hop, to, sink),
        1 => snat(fb, &pkt, &hop, to, sink),
        2 => nat_icmp_in(fb, &pkt, &hop, to, sink),
        _ => nat_icmp_out(fb, &pkt, &hop, to, sink),
    });
    case.check_common(&arena, &done, 0);
    if done.result != Ok(Verdict::Forward) || !case.trusted {
        return;
    }
    let out = &arena.buf[done.start..done.start + done.len];
    let (l3, l4, v4) = (pkt.l3(), pkt.l4(), pkt.version() == IpVersion::V4);
    let f = pkt.flow();
    let port = |p: u16| if f.proto.has_ports() { to.port() } else { p };
    if op < 2 {
        // dnat changes the destination, snat the source: address, port, checksums.
        let dst = op == 0;
        let addr_at = match (v4, dst) {
            (true, true) => l3 + 16..l3 + 20,
            (true, false) => l3 + 12..l3 + 16,
            (false, true) => l3 + 24..l3 + 40,
            (false, false) => l3 + 8..l3 + 24,
        };
        let mut allowed = case.forwarding_bytes();
        allowed.extend(addr_at);
        if f.proto.has_ports() {
            let p = if dst { l4 + 2 } else { l4 };
            allowed.extend([p, p + 1]);
        }
        let c = case.transport_checksum_at();
        allowed.extend([c, c + 1]);
        let want = if dst {
            lb_sched::Flow { dst: to.ip(), dst_port: port(f.dst_port), ..f }
        } else {
            lb_sched::Flow { src: to.ip(), src_port: port(f.src_port), ..f }
        };
        case.check_in_place(out, &allowed, true, want);
    } else {
        // An ICMP error: the outer address at one end, the quoted one at the other.
        assert_eq!(out.len(), case.frame.len(), "an in-place rewrite keeps the length");
        case.check_l2_and_ttl(out);
        let o = parse(out).unwrap_or_else(|e| panic!("a forwarded frame does not parse: {e:?}"));
        let q = o.quote(out).expect("the ICMP error still quotes a packet");
        let q_in = *pkt.quote(&case.frame).expect("the input quotes a packet").flow();
        let qp = |p: u16| if q_in.proto.has_ports() { to.port() } else { p };
        if op == 2 {
            assert_eq!(o.flow(), lb_sched::Flow { dst: to.ip(), ..f }, "outer flow after nat_icmp_in");
            let want = lb_sched::Flow { src: to.ip(), src_port: qp(q_in.src_port), ..q_in };
            assert_eq!(*q.flow(), want, "quoted flow after nat_icmp_in");
        } else {
            assert_eq!(o.flow(), lb_sched::Flow { src: to.ip(), ..f }, "outer flow after nat_icmp_out");
            let want = lb_sched::Flow { dst: to.ip(), dst_port: qp(q_in.dst_port), ..q_in };
            assert_eq!(*q.flow(), want, "quoted flow after nat_icmp_out");
        }
        if case.oracle {
            let (i, o) = (checks(&case.frame).unwrap(), checks(out).expect("output parses with etherparse"));
            assert_rule("outer ipv4 header", i.ip, o.ip);
            assert_right("icmp (verified, then recomputed)", o.l4);
        }
    }
});
