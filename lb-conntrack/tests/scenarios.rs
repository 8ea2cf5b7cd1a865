//! Scenario tests: handshakes and closes in NAT and DR, RST, reuse, expiry, removed and
//! quiesced destinations, creation rules, UDP, persistence, one-packet scheduling.

mod common;

use std::time::Duration;

use common::*;
use lb_conntrack::{Config, ConnTable, InVerdict, NotScheduled, OutVerdict, Persistence, ServiceParams, State};
use lb_sched::{DestConfig, ForwardMethod, TcpFlags};

fn table(cfg: Config) -> ConnTable {
    ConnTable::new(Config { hash_seed: Some(7), ..cfg })
}

const P: ServiceParams = ServiceParams { persistence: None, one_packet: false, catch_all: false };

#[test]
fn nat_handshake_and_close_follow_input_and_output_rows() {
    let svc = service("rr", 1, ForwardMethod::Masq);
    let d = &svc.destinations()[0];
    let tb = table(Config::default());
    let f = tcp("192.0.2.1", 40000);
    // SYN in: NONE -> SYN_RECV (INPUT row), active.
    let c = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    assert!(c.created);
    assert_eq!((c.state, c.fwd, c.daddr, c.dport), (State::SynRecv, ForwardMethod::Masq, ip("10.0.0.1"), 80));
    assert_eq!((d.active_conns(), d.inactive_conns()), (1, 0));
    // SYN+ACK out (the real server's reply): OUTPUT syn from SYN_RECV stays SYN_RECV.
    let r = reply(&c);
    assert_eq!(out(tb.output(t(1.1), &r, TcpFlags::SYN | TcpFlags::ACK)).state, State::SynRecv);
    // ACK in: ESTABLISHED.
    assert_eq!(fwd(tb.input(t(1.2), &f, TcpFlags::ACK, &svc, &P)).state, State::Established);
    assert_eq!(out(tb.output(t(1.3), &r, TcpFlags::ACK | TcpFlags::PSH)).state, State::Established);
    // Client closes: FIN in -> CLOSE_WAIT (inactive now).
    assert_eq!(fwd(tb.input(t(2.0), &f, TcpFlags::FIN | TcpFlags::ACK, &svc, &P)).state, State::CloseWait);
    assert_eq!((d.active_conns(), d.inactive_conns()), (0, 1));
    // Server ACKs then FINs: CLOSE_WAIT + ack out = CLOSE_WAIT; + fin out = TIME_WAIT.
    assert_eq!(out(tb.output(t(2.1), &r, TcpFlags::ACK)).state, State::CloseWait);
    assert_eq!(out(tb.output(t(2.2), &r, TcpFlags::FIN | TcpFlags::ACK)).state, State::TimeWait);
    // Last ACK in: TIME_WAIT stays.
    assert_eq!(fwd(tb.input(t(2.3), &f, TcpFlags::ACK, &svc, &P)).state, State::TimeWait);
    assert_counters_match(&tb, &svc.destinations());
    // TIME_WAIT lasts 120 s from the last packet.
    tb.expire(t(122.2));
    assert_eq!(tb.len(), 1);
    tb.expire(t(122.3));
    assert_eq!(tb.len(), 0);
    assert_eq!((d.active_conns(), d.inactive_conns()), (0, 0));
}

#[test]
fn dr_half_connection_uses_input_only_rows() {
    let svc = service("rr", 1, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    let f = tcp("192.0.2.1", 40000);
    let c = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    assert_eq!((c.state, c.fwd), (State::SynRecv, ForwardMethod::DirectRoute));
    assert_eq!(fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P)).state, State::Established);
    // INPUT-ONLY fin from ESTABLISHED is FIN_WAIT (INPUT would say CLOSE_WAIT).
    assert_eq!(fwd(tb.input(t(2.0), &f, TcpFlags::FIN | TcpFlags::ACK, &svc, &P)).state, State::FinWait);
    assert_eq!(fwd(tb.input(t(2.1), &f, TcpFlags::ACK, &svc, &P)).state, State::FinWait);
    // FIN_WAIT lasts 120 s.
    tb.expire(t(122.0));
    assert_eq!(tb.len(), 1);
    tb.expire(t(122.1));
    assert!(tb.is_empty());
}

#[test]
fn an_output_packet_turns_a_half_connection_into_a_full_one() {
    let svc = service("rr", 1, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    let f = tcp("192.0.2.1", 40000);
    let c = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P));
    // A DR reply seen by the director comes from the VIP itself.
    let r = lb_sched::Flow { src: c.vaddr, src_port: c.vport, ..reply(&c) };
    assert_eq!(out(tb.output(t(1.2), &r, TcpFlags::ACK)).state, State::Established);
    // NOOUTPUT is gone: a client FIN now takes the INPUT row (CLOSE_WAIT, not FIN_WAIT).
    assert_eq!(fwd(tb.input(t(2.0), &f, TcpFlags::FIN | TcpFlags::ACK, &svc, &P)).state, State::CloseWait);
}

#[test]
fn rst_closes_and_never_creates() {
    let svc = service("rr", 1, ForwardMethod::Masq);
    let tb = table(Config::default());
    let f = tcp("192.0.2.1", 40000);
    assert_eq!(tb.input(t(1.0), &f, TcpFlags::RST, &svc, &P), InVerdict::NotScheduled(NotScheduled::Rst));
    assert!(tb.is_empty());
    fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P));
    assert_eq!(fwd(tb.input(t(1.2), &f, TcpFlags::RST | TcpFlags::ACK, &svc, &P)).state, State::Close);
    // CLOSE: 10 s.
    tb.expire(t(11.1));
    assert_eq!(tb.len(), 1);
    tb.expire(t(11.2));
    assert!(tb.is_empty());
    assert_eq!(tb.stats().not_scheduled, 1);
}

#[test]
fn non_syn_creates_only_with_sloppy_tcp_and_udp_always() {
    let svc = service("rr", 1, ForwardMethod::DirectRoute);
    let strict = table(Config::default());
    let f = tcp("192.0.2.1", 40000);
    assert_eq!(strict.input(t(1.0), &f, TcpFlags::ACK, &svc, &P), InVerdict::NotScheduled(NotScheduled::NotSyn));
    assert_eq!(strict.input(t(1.0), &f, TcpFlags::PSH, &svc, &P), InVerdict::NotScheduled(NotScheduled::NotSyn));
    let sloppy = table(Config { sloppy_tcp: true, ..Config::default() });
    // Current kernels: NONE + ack = ESTABLISHED.
    let c = fwd(sloppy.input(t(1.0), &f, TcpFlags::ACK, &svc, &P));
    assert!(c.created);
    assert_eq!(c.state, State::Established);
    assert_eq!(
        sloppy.input(t(1.0), &tcp("192.0.2.2", 1), TcpFlags::RST, &svc, &P),
        InVerdict::NotScheduled(NotScheduled::Rst)
    );
    // UDP: any packet creates; one state; inactive; 300 s.
    let svc = service("rr", 1, ForwardMethod::DirectRoute);
    let c = fwd(strict.input(t(1.0), &udp("192.0.2.9", 5353), 0, &svc, &P));
    assert_eq!(c.state, State::Udp);
    let d = &svc.destinations()[0];
    assert_eq!((d.active_conns(), d.inactive_conns()), (0, 1));
    fwd(strict.input(t(100.0), &udp("192.0.2.9", 5353), 0, &svc, &P));
    strict.expire(t(399.9));
    assert_eq!(strict.len(), 1);
    strict.expire(t(400.0));
    assert!(strict.is_empty());
    assert_eq!((d.active_conns(), d.inactive_conns()), (0, 0));
}

#[test]
fn expiry_happens_at_exactly_the_timeout_and_not_before() {
    let svc = service("rr", 1, ForwardMethod::DirectRoute);
    let mut cfg = Config::default();
    cfg.timeouts.set(State::SynRecv, Duration::from_millis(1500));
    let tb = table(cfg);
    fwd(tb.input(t(10.0), &tcp("192.0.2.1", 1), TcpFlags::SYN, &svc, &P));
    let deadline = lb_sched::Timestamp::from_nanos(11_500_000_000);
    tb.expire(lb_sched::Timestamp::from_nanos(deadline.as_nanos() - 1));
    assert_eq!(tb.len(), 1, "gone before its timeout");
    tb.expire(deadline);
    assert_eq!(tb.len(), 0, "still there at its timeout");
}

#[test]
fn a_packet_refreshes_the_idle_timer() {
    let svc = service("rr", 1, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    let f = tcp("192.0.2.1", 1);
    fwd(tb.input(t(0.0), &f, TcpFlags::SYN, &svc, &P));
    fwd(tb.input(t(1.0), &f, TcpFlags::ACK, &svc, &P));
    // ESTABLISHED, 900 s: a packet at 800 s pushes the deadline to 1700 s.
    fwd(tb.input(t(800.0), &f, TcpFlags::ACK, &svc, &P));
    let st = tb.expire(t(1600.0));
    assert_eq!((tb.len(), st.expired), (1, 0));
    tb.expire(t(1700.0));
    assert!(tb.is_empty());
}

#[test]
fn syn_on_time_wait_is_rescheduled_with_conn_reuse_mode() {
    let svc = service("rr", 2, ForwardMethod::Masq);
    let tb = table(Config::default());
    let f = tcp("192.0.2.1", 40000);
    let c1 = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    let r = reply(&c1);
    fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P));
    fwd(tb.input(t(2.0), &f, TcpFlags::FIN | TcpFlags::ACK, &svc, &P));
    out(tb.output(t(2.1), &r, TcpFlags::FIN | TcpFlags::ACK));
    assert_eq!(tb.lookup_in(t(2.2), &f).unwrap().state, State::TimeWait);
    // The client reuses its port: a new connection, scheduled again (rr: the other server).
    let c2 = fwd(tb.input(t(3.0), &f, TcpFlags::SYN, &svc, &P));
    assert!(c2.created && c2.rescheduled);
    assert_ne!(c2.daddr, c1.daddr);
    assert_eq!(c2.state, State::SynRecv);
    assert_eq!(tb.len(), 1);
    assert_counters_match(&tb, &svc.destinations());

    // conn_reuse_mode = 0: the SYN goes through the state machine of the old connection.
    let tb = table(Config { conn_reuse_mode: 0, ..Config::default() });
    let c1 = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P));
    fwd(tb.input(t(2.0), &f, TcpFlags::FIN | TcpFlags::ACK, &svc, &P));
    out(tb.output(t(2.1), &reply(&c1), TcpFlags::FIN | TcpFlags::ACK));
    let c2 = fwd(tb.input(t(3.0), &f, TcpFlags::SYN, &svc, &P));
    assert!(!c2.created && !c2.rescheduled);
    assert_eq!((c2.state, c2.daddr), (State::SynRecv, c1.daddr));
}

#[test]
fn conn_reuse_mode_bit_two_also_reuses_half_connections_in_fin_wait() {
    let svc = service("rr", 2, ForwardMethod::DirectRoute);
    let f = tcp("192.0.2.1", 40000);
    for (mode, expect_new) in [(1u8, false), (3u8, true)] {
        let tb = table(Config { conn_reuse_mode: mode, ..Config::default() });
        fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
        fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P));
        assert_eq!(fwd(tb.input(t(2.0), &f, TcpFlags::FIN | TcpFlags::ACK, &svc, &P)).state, State::FinWait);
        let c = fwd(tb.input(t(3.0), &f, TcpFlags::SYN, &svc, &P));
        assert_eq!(c.created, expect_new, "mode {mode}");
    }
}

#[test]
fn removed_destination_drops_or_reschedules_with_expire_nodest_conn() {
    let f = tcp("192.0.2.1", 40000);
    for nodest in [false, true] {
        let svc = service("rr", 2, ForwardMethod::DirectRoute);
        let tb = table(Config { expire_nodest_conn: nodest, ..Config::default() });
        let c = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
        fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P));
        let removed = svc.remove(c.daddr, 80).unwrap();
        let v = tb.input(t(2.0), &f, TcpFlags::ACK, &svc, &P);
        if nodest {
            // Expired, then treated as a new packet: a bare ACK may not create a connection.
            assert_eq!(v, InVerdict::NotScheduled(NotScheduled::NotSyn));
            assert!(tb.is_empty());
            assert_eq!(removed.active_conns() + removed.inactive_conns(), 0);
            // A SYN is scheduled on what is left.
            let c2 = fwd(tb.input(t(2.1), &f, TcpFlags::SYN, &svc, &P));
            assert_ne!(c2.daddr, c.daddr);
        } else {
            assert!(matches!(v, InVerdict::DestUnavailable(ci) if ci.daddr == c.daddr));
            // The connection survives (re-adding the destination would resume it).
            assert_eq!(tb.len(), 1);
            assert_eq!(removed.active_conns(), 1);
            assert_eq!(tb.stats().dest_unavailable, 1);
        }
    }
}

#[test]
fn quiesced_destination_keeps_its_connections_and_gets_no_new_ones() {
    let svc = service("wlc", 2, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    let f = tcp("192.0.2.1", 40000);
    let c = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    svc.edit(DestConfig::new(c.daddr, 80).weight(0)).unwrap();
    // Existing connection goes on.
    assert_eq!(fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P)).daddr, c.daddr);
    // New ones go elsewhere.
    for port in 1..20 {
        assert_ne!(fwd(tb.input(t(2.0), &tcp("192.0.2.2", port), TcpFlags::SYN, &svc, &P)).daddr, c.daddr);
    }
    // With expire_nodest_conn a SYN on the quiesced destination's connection is rescheduled.
    let tb = table(Config { expire_nodest_conn: true, ..Config::default() });
    svc.edit(DestConfig::new(c.daddr, 80).weight(1)).unwrap();
    let c = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    fwd(tb.input(t(1.1), &f, TcpFlags::ACK, &svc, &P));
    svc.edit(DestConfig::new(c.daddr, 80).weight(0)).unwrap();
    let c2 = fwd(tb.input(t(2.0), &f, TcpFlags::SYN, &svc, &P));
    assert!(c2.rescheduled && c2.created);
    assert_ne!(c2.daddr, c.daddr);
}

#[test]
fn secure_tcp_delays_established_on_input_and_uses_synack() {
    let svc = service("rr", 1, ForwardMethod::Masq);
    let tb = table(Config { secure_tcp: true, ..Config::default() });
    let f = tcp("192.0.2.1", 40000);
    let c = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    assert_eq!(c.state, State::SynRecv);
    // secure INPUT: ack in SYN_RECV stays SYN_RECV (normal: ESTABLISHED).
    assert_eq!(fwd(tb.input(t(1.05), &f, TcpFlags::ACK, &svc, &P)).state, State::SynRecv);
    // secure OUTPUT: syn in SYN_RECV gives SYNACK.
    assert_eq!(out(tb.output(t(1.1), &reply(&c), TcpFlags::SYN | TcpFlags::ACK)).state, State::SynAck);
    // secure INPUT: everything but rst keeps SYNACK... ack in SYNACK stays SYNACK.
    assert_eq!(fwd(tb.input(t(1.2), &f, TcpFlags::ACK, &svc, &P)).state, State::SynAck);
    // OUTPUT ack in SYNACK: ESTABLISHED.
    assert_eq!(out(tb.output(t(1.3), &reply(&c), TcpFlags::ACK)).state, State::Established);
}

#[test]
fn nat_reply_without_connection_and_dr_reply_lookup() {
    let svc = service("rr", 1, ForwardMethod::Masq);
    let tb = table(Config::default());
    let stray = lb_sched::Flow { src: ip("10.0.0.1"), src_port: 80, ..tcp("192.0.2.1", 1).reversed() };
    assert_eq!(tb.output(t(1.0), &stray, TcpFlags::ACK), OutVerdict::NoConnection);
    let c = fwd(tb.input(t(1.0), &tcp("192.0.2.1", 1), TcpFlags::SYN, &svc, &P));
    // A NAT reply must come from the real server, not the VIP.
    let from_vip = lb_sched::Flow { src: c.vaddr, src_port: c.vport, ..reply(&c) };
    assert_eq!(tb.output(t(1.0), &from_vip, TcpFlags::ACK), OutVerdict::NoConnection);
    assert!(tb.lookup_out(t(1.0), &reply(&c)).is_some());
}

#[test]
fn persistence_sends_a_client_to_one_destination_while_its_template_lives() {
    let svc = service("rr", 3, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    let p = ServiceParams {
        persistence: Some(Persistence { timeout: Duration::from_secs(300), v4_prefix: 24, v6_prefix: 128 }),
        ..P
    };
    let a = fwd(tb.input(t(1.0), &tcp("192.0.2.1", 1000), TcpFlags::SYN, &svc, &p));
    // Same client, other ports; and another client in the same /24: same destination.
    for (client, port) in [("192.0.2.1", 1001), ("192.0.2.1", 1002), ("192.0.2.200", 5)] {
        assert_eq!(
            fwd(tb.input(t(2.0), &tcp(client, port), TcpFlags::SYN, &svc, &p)).daddr,
            a.daddr,
            "{client}:{port}"
        );
    }
    // A client in another /24 is scheduled (rr moves on).
    let b = fwd(tb.input(t(2.0), &tcp("192.0.3.1", 1), TcpFlags::SYN, &svc, &p));
    assert_ne!(b.daddr, a.daddr);
    let s = tb.stats();
    assert_eq!((s.templates, s.connections), (2, 5));
    let da = svc.destinations().into_iter().find(|d| d.addr() == a.daddr).unwrap();
    assert_eq!(da.persistent_conns(), 1);
    // Connections end (SYN_RECV, 60 s) long before the template (300 s after its last use at 2 s).
    tb.expire(t(100.0));
    assert_eq!(tb.stats().connections, 0);
    assert_eq!(tb.stats().templates, 2);
    // A long connection under the template: SYN + ACK at 150 s, ESTABLISHED until 1050 s.
    let f = tcp("192.0.2.1", 2000);
    assert_eq!(fwd(tb.input(t(150.0), &f, TcpFlags::SYN, &svc, &p)).daddr, a.daddr);
    fwd(tb.input(t(150.0), &f, TcpFlags::ACK, &svc, &p));
    // The other client's template: last used at 2 s, gone at 302 s.
    tb.expire(t(302.0));
    assert_eq!(tb.stats().templates, 1);
    // Ours was refreshed at 150 s (deadline 450 s) but controls a live connection: it is kept,
    // 60 s at a time, as long as the connection lives.
    tb.expire(t(451.0));
    tb.expire(t(1000.0));
    assert_eq!(tb.stats().templates, 1);
    assert_eq!(fwd(tb.input(t(1001.0), &tcp("192.0.2.7", 1), TcpFlags::SYN, &svc, &p)).daddr, a.daddr);
    // The connections end (the new one in SYN_RECV at 1061 s); the template follows within 60 s
    // of its last extension.
    tb.expire(t(1100.0));
    assert_eq!(tb.stats().connections, 0);
    tb.expire(t(1200.0));
    assert_eq!(tb.stats().templates, 0);
    assert_eq!(da.persistent_conns(), 0);
}

#[test]
fn persistence_templates_follow_destination_state() {
    let p = ServiceParams { persistence: Some(Persistence::default()), ..P };
    for quiescent in [false, true] {
        let svc = service("rr", 2, ForwardMethod::DirectRoute);
        let tb = table(Config { expire_quiescent_template: quiescent, ..Config::default() });
        let a = fwd(tb.input(t(1.0), &tcp("192.0.2.1", 1000), TcpFlags::SYN, &svc, &p));
        svc.edit(DestConfig::new(a.daddr, 80).weight(0)).unwrap();
        let b = fwd(tb.input(t(2.0), &tcp("192.0.2.1", 1001), TcpFlags::SYN, &svc, &p));
        // Default: a quiesced destination keeps its persistent clients (IPVS's sticky drain).
        assert_eq!(b.daddr == a.daddr, !quiescent, "expire_quiescent_template = {quiescent}");
    }
    // A removed destination's template is never used again.
    let svc = service("rr", 2, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    let a = fwd(tb.input(t(1.0), &tcp("192.0.2.1", 1000), TcpFlags::SYN, &svc, &p));
    svc.remove(a.daddr, 80).unwrap();
    assert_ne!(fwd(tb.input(t(2.0), &tcp("192.0.2.1", 1001), TcpFlags::SYN, &svc, &p)).daddr, a.daddr);
}

#[test]
fn one_packet_scheduling_keeps_nothing() {
    let svc = service("rr", 2, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    let p = ServiceParams { one_packet: true, ..P };
    let mut seen = Vec::new();
    for _ in 0..4 {
        match tb.input(t(1.0), &udp("192.0.2.1", 5353), 0, &svc, &p) {
            InVerdict::OnePacket(c) => seen.push(c.daddr),
            other => panic!("{other:?}"),
        }
    }
    // Each datagram scheduled on its own: rr alternates even within one flow.
    assert_eq!(seen, [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.1"), ip("10.0.0.2")]);
    assert!(tb.is_empty());
    assert!(svc.destinations().iter().all(|d| d.inactive_conns() + d.active_conns() == 0));
    // -o concerns UDP only: TCP connections are kept.
    fwd(tb.input(t(1.0), &tcp("192.0.2.1", 1), TcpFlags::SYN, &svc, &p));
    assert_eq!(tb.len(), 1);
}

#[test]
fn no_destination_and_ipv6() {
    let svc = service("rr", 0, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    assert_eq!(tb.input(t(1.0), &tcp("192.0.2.1", 1), TcpFlags::SYN, &svc, &P), InVerdict::NoDestination);
    // IPv6 clients and VIP.
    let svc = lb_sched::Service::new("rr", lb_sched::SchedConfig::default()).unwrap();
    svc.add(DestConfig::new(ip("2001:db8:1::1"), 443).fwd(ForwardMethod::Masq)).unwrap();
    let f = lb_sched::Flow::v6(
        lb_sched::Protocol::Tcp,
        "2001:db8::1".parse().unwrap(),
        5555,
        "2001:db8::100".parse().unwrap(),
        443,
    );
    let c = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    assert_eq!((c.daddr, c.dport), (ip("2001:db8:1::1"), 443));
    assert_eq!(out(tb.output(t(1.1), &reply(&c), TcpFlags::SYN | TcpFlags::ACK)).vaddr, ip("2001:db8::100"));
    assert_eq!(fwd(tb.input(t(1.2), &f, TcpFlags::ACK, &svc, &P)).state, State::Established);
    // Mixed families are not a flow any packet carries.
    let mixed = lb_sched::Flow { dst: ip("198.51.100.1"), ..f };
    assert_eq!(tb.input(t(1.0), &mixed, TcpFlags::SYN, &svc, &P), InVerdict::NotScheduled(NotScheduled::Unsupported));
}

#[test]
fn a_packet_after_the_deadline_never_meets_the_old_connection() {
    // IPVS's timer fires at the deadline: whether or not an expiry pass ran, a packet that
    // comes later finds no connection.
    let svc = service("rr", 2, ForwardMethod::DirectRoute);
    let tb = table(Config::default());
    let f = tcp("192.0.2.1", 40000);
    let c1 = fwd(tb.input(t(1.0), &f, TcpFlags::SYN, &svc, &P));
    // SYN_RECV lasts 60 s; no expire() call in between.
    assert_eq!(tb.input(t(61.0), &f, TcpFlags::ACK, &svc, &P), InVerdict::NotScheduled(NotScheduled::NotSyn));
    assert!(tb.is_empty());
    assert_counters_match(&tb, &svc.destinations());
    // Just before the deadline it is still there.
    let c2 = fwd(tb.input(t(70.0), &f, TcpFlags::SYN, &svc, &P));
    assert!(c2.created && !c2.rescheduled);
    assert_ne!(c2.daddr, c1.daddr);
    assert_eq!(fwd(tb.input(t(129.999), &f, TcpFlags::ACK, &svc, &P)).state, State::Established);
    assert_eq!(tb.stats().expired, 1);
}

#[test]
fn shard_of_follows_the_client_and_spreads_clients_over_every_shard() {
    let tb = table(Config { max_connections: 1 << 20, ..Config::default() });
    let n = tb.shard_count();
    assert!(n.is_power_of_two() && n >= 8, "{n} shards");
    let mut seen = vec![0usize; n];
    for i in 0..20_000u32 {
        let addr = std::net::Ipv4Addr::from(0xc000_0200 + i * 7919);
        let f = lb_sched::Flow::v4(
            lb_sched::Protocol::Tcp,
            addr,
            1024 + (i % 50_000) as u16,
            "198.51.100.1".parse().unwrap(),
            80,
        );
        let s = tb.shard_of(&f).unwrap();
        assert!(s < n);
        seen[s] += 1;
        // The shard is the client's: another virtual service of the same client is in it too.
        let g = lb_sched::Flow { dst: "203.0.113.9".parse().unwrap(), dst_port: 443, ..f };
        assert_eq!(tb.shard_of(&g), Some(s));
    }
    let mean = 20_000 / n;
    assert!(seen.iter().all(|&c| c > mean / 2 && c < mean * 2), "clients spread over the shards: {seen:?}");
    let icmp = lb_sched::Flow::v4(
        lb_sched::Protocol::Icmp,
        "192.0.2.1".parse().unwrap(),
        0,
        "198.51.100.1".parse().unwrap(),
        0,
    );
    assert_eq!(tb.shard_of(&icmp), None);
}
