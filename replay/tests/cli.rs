//! The `replay` binary: the bundled sample in every mode, the JSON report's contract, and the
//! clear errors the CLI promises.

#![cfg(feature = "cli")]

mod support;

use support::*;

#[test]
fn the_bundled_sample_in_every_mode_keeps_the_report_invariants() {
    for mode in ["dr", "nat", "tun"] {
        let v = json(&["--mode", mode, "--topspeed", "--json"]);
        assert_eq!(v["mode"], mode);
        assert_eq!(v["scheduler"], "wlc");
        let dropped: u64 = v["packets"]["dropped"].as_object().unwrap().values().map(|x| x.as_u64().unwrap()).sum();
        let read = n(&v, "packets.read");
        assert_eq!(read, 304, "the sample has 304 frames");
        assert_eq!(read, n(&v, "packets.forwarded") + n(&v, "packets.replies_skipped") + dropped);
        assert_eq!(
            n(&v, "frames.emitted"),
            n(&v, "packets.forwarded") + n(&v, "packets.icmp_sent") + n(&v, "frames.fragments")
                - n(&v, "packets.fragmented")
        );
        // The sample's own drops: three DNS queries to a port with no service, one SYN with TTL 1
        // (answered with ICMP time exceeded).
        assert_eq!(v["packets"]["dropped"]["no_service"], 3);
        assert_eq!(v["packets"]["dropped"]["ttl_exceeded"], 1);
        assert_eq!(n(&v, "packets.icmp_sent"), 1);
        // 31 connections (30 HTTP + the TTL-1 SYN) over three backends.
        assert_eq!(n(&v, "connections.created"), 31);
        let dests = v["destinations"].as_array().unwrap();
        assert_eq!(dests.len(), 3);
        let conns: u64 = dests.iter().map(|d| d["connections"].as_u64().unwrap()).sum();
        assert_eq!(conns, 31);
        for d in dests {
            assert!(d["address"].as_str().unwrap().starts_with("10.0.0."));
            assert!(d["packets"].as_u64().unwrap() > 0 && d["bytes"].as_u64().unwrap() > 0);
            assert_eq!(d["weight"], 1);
        }
        assert!(v["connections"]["states"].is_object());
        assert!(v["elapsed_s"].as_f64().is_some() && v["rate_pps"].as_f64().is_some());
        // DR and TUN never see replies; NAT forwards them.
        let skipped = n(&v, "packets.replies_skipped");
        assert_eq!(skipped == 0, mode == "nat", "{mode}: {skipped} replies skipped");
    }
}

#[test]
fn text_report_and_pcap_output() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("dr.pcap");
    let (code, text, err) = replay(&["--mode", "dr", "--topspeed", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("-> 10.0.0.1:80"), "{text}");
    assert!(text.contains("dropped: no_service 3, ttl_exceeded 1"), "{text}");
    // The pcap holds what was emitted: 180 requests and one ICMP reply.
    let cap = lb_replay::capture::Capture::open(&out).unwrap();
    assert_eq!(cap.frames.len(), 181);
    assert!(text.contains("wrote 181 frames"), "{text}");
    // The rate as people read it: digits grouped by spaces, or Mpps; never a raw float.
    let rate = text.lines().find(|l| l.starts_with("elapsed ")).expect("an elapsed line");
    let (_, r) = rate.split_once(" s, ").expect("elapsed N s, RATE");
    let plain = r.strip_suffix(" packets/s").is_some_and(|n| {
        let groups: Vec<&str> = n.split(' ').collect();
        groups[0].len() <= 3
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
            && groups[1..].iter().all(|g| g.len() == 3)
    });
    let mpps = r.strip_suffix(" Mpps").is_some_and(|n| n.parse::<f64>().is_ok() && n.contains('.'));
    assert!(plain || mpps, "{rate:?}");
}

#[test]
fn capture_pacing_takes_the_captures_time_and_multiplier_speeds_it() {
    // The sample spans about 2.4 s; at 8x its own timing it takes about 0.3 s.
    let t = std::time::Instant::now();
    let v = json(&["--mode", "dr", "--json", "--multiplier", "8"]);
    let took = t.elapsed().as_secs_f64();
    assert!(took > 0.25, "paced replay took only {took} s");
    assert_eq!(n(&v, "packets.read"), 304);
    // --loop 2 goes through it twice.
    let v = json(&["--mode", "dr", "--json", "--topspeed", "--loop", "2"]);
    assert_eq!(n(&v, "packets.read"), 608);
}

#[test]
fn errors_name_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("bad.rules");
    std::fs::write(&rules, "-A -t 198.51.100.10:80 -s wlc\n-a -t 198.51.100.10:80 -r 10.0.0.1 -q\n").unwrap();
    let notcap = dir.join("notes.txt");
    std::fs::write(&notcap, "hello world").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "--mode nat|dr|tun is required"),
        (vec!["--mode".into(), "xx".into()], "unknown forwarding mode"),
        (vec!["--mode".into(), "dr".into(), "--sched".into(), "lblc".into()], "unknown scheduler"),
        (
            vec!["--mode".into(), "dr".into(), "--rules".into(), rules.display().to_string()],
            "bad.rules:2: option \"-q\"",
        ),
        (
            vec![
                "--mode".into(),
                "dr".into(),
                notcap.display().to_string(),
                "--vip".into(),
                "1.2.3.4:80".into(),
                "--backend".into(),
                "10.0.0.1,mac=02:00:00:00:00:01".into(),
            ],
            "not a pcap or pcapng file",
        ),
        (
            vec![
                "--mode".into(),
                "dr".into(),
                "--vip".into(),
                "1.2.3.4:80".into(),
                "--backend".into(),
                "10.0.0.1".into(),
            ],
            "backend 10.0.0.1: no next-hop MAC",
        ),
        (
            vec![
                "--mode".into(),
                "dr".into(),
                "/nonexistent.pcap".into(),
                "--vip".into(),
                "1.2.3.4:80".into(),
                "--backend".into(),
                "10.0.0.1,mac=02:00:00:00:00:01".into(),
            ],
            "/nonexistent.pcap: cannot read",
        ),
        (vec!["--mode".into(), "dr".into(), "/nonexistent.pcap".into()], "no virtual service"),
        (vec!["--mode".into(), "dr".into(), "--at".into(), "x:drain=1.2.3.4".into()], "not a number of seconds"),
        (vec!["--mode".into(), "dr".into(), "--timeout".into(), "bogus=3".into()], "unknown state"),
        (
            vec![
                "--mode".into(),
                "tun".into(),
                "--vip".into(),
                "1.2.3.4:80".into(),
                "--backend".into(),
                "2001:db8::1,mac=02:00:00:00:00:01".into(),
            ],
            "--tun-src",
        ),
        (
            vec!["--mode".into(), "dr".into(), "--iface".into(), "lbk-no-such9".into()],
            "no network interface named \"lbk-no-such9\"",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = replay(&args);
        assert_eq!(code, 2, "replay {args:?}: exit code");
        assert!(err.contains(want), "replay {args:?}: {err:?} does not say {want:?}");
    }
}

#[test]
fn rules_files_and_neighbours() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("lvs.rules");
    std::fs::write(
        &rules,
        "-A -t 198.51.100.10:80 -s rr\n-a -t 198.51.100.10:80 -r 10.0.0.1:8080 -m -w 1\n-a -t 198.51.100.10:80 -r 10.0.0.2:8080 -m -w 1\n",
    )
    .unwrap();
    let v = json(&[
        "--rules",
        rules.to_str().unwrap(),
        "--neigh",
        "10.0.0.1=02:00:00:00:01:01",
        "--neigh",
        "10.0.0.2=02:00:00:00:01:02",
        "--topspeed",
        "--json",
    ]);
    assert_eq!(v["mode"], "nat");
    assert_eq!(v["scheduler"], "rr");
    let d = v["destinations"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    // rr over 31 connections: 16 and 15.
    let mut c: Vec<u64> = d.iter().map(|x| x["connections"].as_u64().unwrap()).collect();
    c.sort();
    assert_eq!(c, [15, 16]);
    assert!(d.iter().all(|x| x["port"] == 8080));
    // The sample's DNS queries are UDP: the rules define only a TCP service.
    assert_eq!(v["packets"]["dropped"]["no_service"], 3);
}

#[test]
fn raw_ip_captures_get_an_ethernet_header() {
    // A raw-IP (link type 101) capture of one SYN: replayed like an Ethernet one.
    let frame = tcp("203.0.113.5", 4000, "198.51.100.10", 80, SYN, b"");
    let ip = &frame[14..];
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    v.extend_from_slice(&[2, 0, 4, 0]);
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&101u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&(ip.len() as u32).to_le_bytes());
    v.extend_from_slice(&(ip.len() as u32).to_le_bytes());
    v.extend_from_slice(ip);
    let dir = std::env::temp_dir().join(format!("lbkit-cli-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("raw.pcap");
    std::fs::write(&p, v).unwrap();
    let out = json(&[
        p.to_str().unwrap(),
        "--mode",
        "dr",
        "--vip",
        "198.51.100.10:80",
        "--backend",
        "10.0.0.1,mac=02:00:00:00:01:01",
        "--json",
        "--topspeed",
    ]);
    assert_eq!(n(&out, "packets.forwarded"), 1);
    assert_eq!(n(&out, "capture.converted"), 1);
    assert_eq!(out["capture"]["link_type"], "RAW");
}
