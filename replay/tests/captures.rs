//! Every real capture through the pipeline in every mode, judged by tshark (no checksum valid
//! on input is bad on output) and by etherparse: what each mode may change, that every packet of
//! a connection goes to one destination, and the report's invariants. The repository's own
//! `testdata/` always runs; the larger captures of ../shared/testdata/pcaps are an extra.
//! Skipped (loudly) without tshark or the shared data; under CI=true a skip fails.

#![cfg(feature = "cli")]

mod support;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lb_replay::capture::Capture;
use lb_replay::config::{parse_backend, Neighbours, ServiceSpec, Vip};
use lb_replay::pipeline::{Outcome, PipelineConfig};
use lb_sched::ForwardMethod;
use support::*;

const V4: [&str; 3] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
const V6: [&str; 3] = ["2001:db8:ffff::1", "2001:db8:ffff::2", "2001:db8:ffff::3"];

fn backend_mac(i: usize, v6: bool) -> [u8; 6] {
    [2, 0, 0, 0, if v6 { 6 } else { 4 }, i as u8 + 1]
}

fn config(mode: ForwardMethod, sched: &str) -> PipelineConfig {
    let mut backends = Vec::new();
    let mut neigh = Neighbours::new();
    for (i, a) in V4.iter().enumerate() {
        backends.push(parse_backend(a).unwrap());
        neigh.insert(a.parse().unwrap(), lb_rewrite::MacAddr(backend_mac(i, false)));
    }
    for (i, a) in V6.iter().enumerate() {
        backends.push(parse_backend(a).unwrap());
        neigh.insert(a.parse().unwrap(), lb_rewrite::MacAddr(backend_mac(i, true)));
    }
    let svc = |v6| ServiceSpec { sched: sched.into(), backends: backends.clone(), ..ServiceSpec::new(Vip::Any { v6 }) };
    PipelineConfig {
        tun_src: vec!["192.0.2.254".parse().unwrap(), "2001:db8:fffe::1".parse().unwrap()],
        neigh,
        ..PipelineConfig::new(vec![svc(false), svc(true)], Some(mode))
    }
}

/// (l3 offset, is IPv6, end of the IP packet) of an Ethernet frame.
fn ip_layout(frame: &[u8]) -> Option<(usize, bool, usize)> {
    let s = SlicedPacket::from_ethernet(frame).ok()?;
    match s.net? {
        NetSlice::Ipv4(v4) => {
            let l3 = v4.header().slice().as_ptr() as usize - frame.as_ptr() as usize;
            Some((l3, false, l3 + usize::from(v4.header().total_len())))
        }
        NetSlice::Ipv6(v6) => {
            let l3 = v6.header().slice().as_ptr() as usize - frame.as_ptr() as usize;
            Some((l3, true, l3 + 40 + usize::from(v6.header().payload_length())))
        }
        _ => None,
    }
}

fn flow_key(frame: &[u8]) -> Option<(IpAddr, u16, IpAddr, u16, u8, bool)> {
    let s = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst, proto): (IpAddr, IpAddr, u8) = match s.net.as_ref()? {
        NetSlice::Ipv4(v4) => {
            (v4.header().source_addr().into(), v4.header().destination_addr().into(), v4.header().protocol().0)
        }
        NetSlice::Ipv6(v6) => {
            (v6.header().source_addr().into(), v6.header().destination_addr().into(), v6.payload().ip_number.0)
        }
        _ => return None,
    };
    match s.transport? {
        TransportSlice::Tcp(t) => Some((src, t.source_port(), dst, t.destination_port(), proto, t.syn() && !t.ack())),
        TransportSlice::Udp(u) => Some((src, u.source_port(), dst, u.destination_port(), proto, false)),
        _ => None,
    }
}

fn check_capture(path: &std::path::Path, mode: ForwardMethod) {
    let name = path.file_name().unwrap().to_string_lossy();
    let cap = Capture::open(path).unwrap();
    let pipe = pipeline(&config(mode, "wlc"));
    let (done, counters) = process_counted(&pipe, &cap);
    let ctx = format!("{name} in {mode:?}");

    // The report's invariants.
    assert_eq!(counters.read as usize, cap.frames.len(), "{ctx}");
    assert_eq!(counters.read, counters.forwarded + counters.replies_skipped + counters.dropped_total(), "{ctx}");
    let emitted: u64 = done.iter().map(|d| d.output.iter().count() as u64 + d.extra.len() as u64).sum();
    assert_eq!(emitted, counters.forwarded + counters.icmp_sent + counters.fragments - counters.fragmented, "{ctx}");

    // tshark: every frame bad on output was bad on input. Forwarded frames and fragments are
    // judged on every checksum; the ICMP errors the director builds quote a packet that may be
    // cut short (tshark then cannot verify the quoted transport checksum), so they are judged on
    // their own IP and ICMP checksums.
    let bad_in: HashSet<usize> = tshark_bad_checksums(path).into_iter().collect();
    let (mut fwd_frames, mut fwd_origin, mut icmp_frames, mut icmp_origin) = (vec![], vec![], vec![], vec![]);
    for d in &done {
        let icmp_reply = matches!(d.outcome, Outcome::Dropped(_));
        for f in d.output.iter().chain(d.extra.iter()) {
            if icmp_reply {
                icmp_frames.push(f.clone());
                icmp_origin.push(d.index + 1);
            } else {
                fwd_frames.push(f.clone());
                fwd_origin.push(d.index + 1);
            }
        }
    }
    let out_path = write_temp_pcap(&format!("{name}.{mode:?}.pcap"), &fwd_frames);
    for n in tshark_bad_checksums(&out_path) {
        let o = fwd_origin[n - 1];
        assert!(bad_in.contains(&o), "{ctx}: output frame {n} has a bad checksum but input frame {o} was fine");
    }
    let _ = std::fs::remove_file(&out_path);
    if !icmp_frames.is_empty() {
        let icmp_path = write_temp_pcap(&format!("{name}.{mode:?}.icmp.pcap"), &icmp_frames);
        let filter = "icmp.checksum.status==Bad || icmpv6.checksum.status==Bad || ip.checksum.status==Bad";
        for n in tshark_frames(&icmp_path, filter) {
            let o = icmp_origin[n - 1];
            assert!(bad_in.contains(&o), "{ctx}: ICMP reply {n} (about input frame {o}) has a bad checksum");
        }
        let _ = std::fs::remove_file(&icmp_path);
    }

    let backend_of: HashMap<[u8; 6], IpAddr> = (0..3)
        .flat_map(|i| [(backend_mac(i, false), V4[i].parse().unwrap()), (backend_mac(i, true), V6[i].parse().unwrap())])
        .collect();
    let mut dest_of_flow: HashMap<(IpAddr, u16, IpAddr, u16, u8), IpAddr> = HashMap::new();
    let mut requests = 0;
    for d in &done {
        let Some(out) = &d.output else { continue };
        let (Some(k), Some((l3, v6, end))) = (flow_key(&d.input), ip_layout(&d.input)) else { continue };
        let dst_mac: [u8; 6] = out[0..6].try_into().unwrap();
        let Some(&dest) = backend_of.get(&dst_mac) else {
            // A NAT reply toward the client: it carries the virtual service's address and port,
            // exactly as the client saw them.
            assert_eq!(mode, ForwardMethod::Masq, "{ctx}: frame {} went to an unknown MAC", d.index + 1);
            let o = flow_key(out).unwrap();
            assert_eq!((o.0, o.1), (k.0, k.1), "{ctx}: NAT reply {} does not come from the VIP", d.index + 1);
            continue;
        };
        requests += 1;
        // One destination per connection (a new one only with a new SYN).
        let fk = (k.0, k.1, k.2, k.3, k.4);
        match dest_of_flow.get(&fk) {
            Some(prev) if *prev != dest && !k.5 => {
                panic!("{ctx}: frame {} of a flow went to {dest}, earlier ones to {prev}", d.index + 1)
            }
            _ => {
                dest_of_flow.insert(fk, dest);
            }
        }
        let inp = &d.input;
        match mode {
            ForwardMethod::DirectRoute => {
                // Only MACs, TTL / hop limit and the IPv4 header checksum may change.
                assert_eq!(out.len(), inp.len(), "{ctx}");
                let allowed: Vec<usize> = if v6 { vec![l3 + 7] } else { vec![l3 + 8, l3 + 10, l3 + 11] };
                for i in 12..inp.len() {
                    assert!(
                        out[i] == inp[i] || allowed.contains(&i),
                        "{ctx}: DR frame {} changed byte {i}",
                        d.index + 1
                    );
                }
            }
            ForwardMethod::Tunnel => {
                // Decapsulated, the inner packet is the input's IP packet but for TTL and the IPv4
                // header checksum.
                let (ol3, ov6, _) = ip_layout(out).unwrap();
                let inner_at = ol3 + if ov6 { 40 } else { 20 };
                let inner = &out[inner_at..];
                let orig = &inp[l3..end];
                assert_eq!(inner.len(), orig.len(), "{ctx}: frame {}", d.index + 1);
                let allowed: Vec<usize> = if v6 { vec![7] } else { vec![8, 10, 11] };
                for i in 0..orig.len() {
                    assert!(
                        inner[i] == orig[i] || allowed.contains(&i),
                        "{ctx}: TUN frame {} inner byte {i}",
                        d.index + 1
                    );
                }
                // The outer destination is the real server.
                let outer_dst: IpAddr = match SlicedPacket::from_ethernet(out).unwrap().net.unwrap() {
                    NetSlice::Ipv4(v4) => v4.header().destination_addr().into(),
                    NetSlice::Ipv6(v6) => v6.header().destination_addr().into(),
                    _ => panic!("{ctx}: not IP"),
                };
                assert_eq!(outer_dst, dest, "{ctx}: TUN frame {}", d.index + 1);
            }
            ForwardMethod::Masq => {
                // A NAT request carries a real server's address.
                let o = flow_key(out).unwrap();
                assert_eq!(o.2, dest, "{ctx}: NAT request {} not addressed to its real server", d.index + 1);
            }
            ForwardMethod::Local => unreachable!(),
        }
    }
    eprintln!(
        "{ctx}: {} frames, {requests} requests forwarded, {} replies skipped, dropped {:?}",
        cap.frames.len(),
        counters.replies_skipped,
        counters.dropped
    );
}

/// The repository's own captures (testdata/README.md).
const BUNDLED: [&str; 9] = [
    "dpkt-http.pcap",
    "dpkt-http-vlan.pcap",
    "dpkt-nb6-http.pcap",
    "dpkt-truncated_dns.pcap",
    "gopacket-test_ethernet.pcap",
    "443-curl.pcap",
    "WebattackSQLinj.pcap",
    "6in4tunnel.pcap",
    "4in6tunnel.pcap",
];

/// The larger shared captures that the repository does not carry.
const SHARED_ONLY: [&str; 3] = ["teams.pcap", "reddit.pcap", "KakaoTalk_chat.pcap"];

fn check_bundled(mode: ForwardMethod) {
    if available("tshark", have_tshark()) {
        BUNDLED.iter().for_each(|c| check_capture(&bundled_pcap(c), mode));
    }
}

fn check_shared(mode: ForwardMethod) {
    if available("../shared/testdata/pcaps", shared_pcaps().is_some()) && available("tshark", have_tshark()) {
        let dir = shared_pcaps().unwrap();
        SHARED_ONLY.iter().for_each(|c| check_capture(&dir.join(c), mode));
    }
}

#[test]
fn every_bundled_capture_in_dr() {
    check_bundled(ForwardMethod::DirectRoute);
}

#[test]
fn every_bundled_capture_in_nat() {
    check_bundled(ForwardMethod::Masq);
}

#[test]
fn every_bundled_capture_in_tun() {
    check_bundled(ForwardMethod::Tunnel);
}

#[test]
fn the_shared_captures_in_dr() {
    check_shared(ForwardMethod::DirectRoute);
}

#[test]
fn the_shared_captures_in_nat() {
    check_shared(ForwardMethod::Masq);
}

#[test]
fn the_shared_captures_in_tun() {
    check_shared(ForwardMethod::Tunnel);
}

#[test]
fn a_damaged_capture_says_where_it_ended() {
    let cap = Capture::open(&bundled_pcap("dpkt-truncated_dns.pcap")).unwrap();
    let pipe = pipeline(&config(ForwardMethod::DirectRoute, "rr"));
    let (done, c) = process_counted(&pipe, &cap);
    assert_eq!(done.len(), cap.frames.len());
    assert_eq!(c.read, c.forwarded + c.replies_skipped + c.dropped_total());
    // Whatever the damage, it is either a cut in the file (reported with the frame count) or
    // frames cut short (each a named drop).
    let named = c.dropped.iter().any(|(k, _)| k.name().starts_with("truncated"));
    assert!(cap.truncated.is_some() || named, "{:?} {:?}", cap.truncated, c.dropped);
    let _ = done.iter().filter(|d| d.outcome == Outcome::Forwarded).count();
}

/// The VLAN capture is dpkt-http.pcap with an 802.1Q tag in every frame
/// (scripts/make_vlan_capture.py): the director decides the same for each frame, and each
/// output is the untagged one's with the tag kept in place.
#[test]
fn a_vlan_tagged_capture_is_directed_as_its_untagged_original() {
    for mode in [ForwardMethod::DirectRoute, ForwardMethod::Masq, ForwardMethod::Tunnel] {
        let plain = Capture::open(&bundled_pcap("dpkt-http.pcap")).unwrap();
        let tagged = Capture::open(&bundled_pcap("dpkt-http-vlan.pcap")).unwrap();
        let (a, ca) = process_counted(&pipeline(&config(mode, "rr")), &plain);
        let (b, cb) = process_counted(&pipeline(&config(mode, "rr")), &tagged);
        assert_eq!(a.len(), b.len());
        assert!(ca.forwarded > 0, "{mode:?}: dpkt-http has traffic to forward");
        assert_eq!(
            (ca.forwarded, ca.replies_skipped, ca.dropped_total()),
            (cb.forwarded, cb.replies_skipped, cb.dropped_total())
        );
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.outcome, y.outcome, "{mode:?} frame {}", x.index + 1);
            let (Some(xo), Some(yo)) = (&x.output, &y.output) else { continue };
            // TUN and NAT keep the L2 header shape; the tag sits after the MACs.
            assert_eq!(&yo[12..14], &[0x81, 0x00], "{mode:?} frame {}: tag kept", x.index + 1);
            let untagged: Vec<u8> = yo[..12].iter().chain(&yo[16..]).copied().collect();
            assert_eq!(&untagged, xo, "{mode:?} frame {}", x.index + 1);
        }
    }
}

/// testdata/odd/fcs.pcap is dpkt-http's first 12 frames, each with its 4-byte FCS and the
/// link-type field saying so: the FCS is stripped, the frames are the originals.
#[test]
fn a_capture_with_fcs_reads_as_the_frames_without_it() {
    let plain = Capture::open(&bundled_pcap("dpkt-http.pcap")).unwrap();
    let fcs = Capture::open(&bundled_pcap("odd/fcs.pcap")).unwrap();
    assert_eq!(fcs.frames.len(), 12);
    for (a, b) in plain.frames.iter().zip(&fcs.frames) {
        assert_eq!(plain.frame(a), fcs.frame(b));
        assert_eq!(a.ts_ns, b.ts_ns);
    }
}
