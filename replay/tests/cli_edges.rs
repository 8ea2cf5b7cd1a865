//! replay as users meet it (issue 13): flags out of range, outputs that must not destroy
//! inputs, signals, odd and compressed captures, standard input and output, warnings, exit
//! statuses. Each through the binary, as a user runs it.

#![cfg(feature = "cli")]

mod support;

use std::process::Command;

use support::*;

/// Flags that crashed replay, or tried to allocate without bound, are refused with exit 2 and a
/// message naming the flag and its range (issue 13's regressions).
#[test]
fn out_of_range_flags_are_refused_not_crashes() {
    let cases: [(&[&str], &str); 6] = [
        (&["--mode", "dr", "--topspeed", "--at", "1e20:drain=10.0.0.1"], "beyond any capture"),
        (&["--mode", "dr", "--workers", "100000"], "--workers 100000: from 1 to 1024"),
        (&["--mode", "dr", "--workers", "0"], "--workers 0: from 1 to 1024"),
        (
            &["--mode", "dr", "--iface", "lo", "--xdp-batch", "4294967295"],
            "--xdp-batch 4294967295: from 1 to the ring size",
        ),
        (&["--mode", "dr", "--iface", "lo", "--xdp-ring", "1000"], "--xdp-ring 1000: a power of two"),
        (&["--mode", "dr", "--iface", "lo", "--xdp-frames", "4000000000"], "--xdp-frames 4000000000: from 64 to"),
    ];
    for (args, want) in cases {
        let (code, _, err) = replay(args);
        assert_eq!(code, 2, "replay {args:?}: exit code ({err})");
        assert!(err.contains(want), "replay {args:?}: {err:?} does not say {want:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The most workers allowed run (each with its share of the sample) and give the same report as one.
#[test]
fn the_largest_worker_count_runs() {
    let one = json(&["--mode", "dr", "--topspeed", "--json"]);
    let many = json(&["--mode", "dr", "--topspeed", "--json", "--workers", "1024"]);
    for k in ["packets.read", "packets.forwarded", "packets.replies_skipped", "frames.emitted"] {
        assert_eq!(n(&one, k), n(&many, k), "{k}");
    }
}

/// An event after the capture's end is a warning (exit 0); one that matches no backend makes the
/// replay exit 3 after its report, saying which.
#[test]
fn late_events_warn_and_events_that_match_nothing_exit_3() {
    let (code, out, err) = replay(&["--mode", "dr", "--topspeed", "--at", "100:drain=10.0.0.1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: --at \"100:drain=10.0.0.1\"") && err.contains("applied when the replay ended"),
        "{err}"
    );
    assert!(out.contains("packets:"), "the report is printed: {out}");
    // A target no service has is refused at startup.
    let (code, _, err) = replay(&["--mode", "dr", "--topspeed", "--at", "1:drain=10.9.9.9"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("10.9.9.9 is not a real server of any service"), "{err}");
    // One that is gone by the time it comes matches nothing: exit 3 after the report.
    let (code, out, err) =
        replay(&["--mode", "dr", "--topspeed", "--at", "1:remove=10.0.0.1", "--at", "2:drain=10.0.0.1"]);
    assert_eq!(code, 3, "{err}");
    assert!(out.contains("packets:"), "the report is printed: {out}");
    assert!(err.contains("--at \"2:drain=10.0.0.1\" did nothing"), "{err}");
    // A backend added by an earlier event may be drained later.
    let (code, _, err) = replay(&[
        "--mode",
        "dr",
        "--topspeed",
        "--at",
        "1:add=10.0.0.9,mac=02:00:00:00:00:09",
        "--at",
        "2:drain=10.0.0.9",
    ]);
    assert_eq!(code, 0, "{err}");
}

/// `--out` never replaces what replay reads (the capture, the rules file, through any link), and
/// an existing output is untouched by a run that fails before it starts.
#[test]
#[cfg(unix)]
fn the_output_never_destroys_an_input_or_a_file_before_the_run() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.pcap");
    std::fs::copy(bundled_pcap("dpkt-http.pcap"), &input).unwrap();
    let original = std::fs::read(&input).unwrap();
    let link = dir.join("link.pcap");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let svc = ["--mode", "dr", "--vip", "any", "--backend", "10.0.0.1,mac=02:00:00:00:00:01", "--topspeed"];
    for out in [&input, &link] {
        let mut args: Vec<&str> = svc.to_vec();
        args.extend(["--out", out.to_str().unwrap(), input.to_str().unwrap()]);
        let (code, _, err) = replay(&args);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("that is the input capture"), "{err}");
        assert_eq!(std::fs::read(&input).unwrap(), original, "the input is intact");
    }
    let rules = dir.join("lvs.rules");
    std::fs::write(&rules, "-A -t 198.51.100.10:80 -s rr\n-a -t 198.51.100.10:80 -r 10.0.0.1:80 -g\n").unwrap();
    let (code, _, err) = replay(&[
        "--rules",
        rules.to_str().unwrap(),
        "--neigh",
        "10.0.0.1=02:00:00:00:00:01",
        "--out",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("that is the --rules file"), "{err}");
    // A failing run (the capture cannot be read) leaves an existing output as it was.
    let out = dir.join("out.pcap");
    std::fs::write(&out, b"keep me").unwrap();
    let mut args: Vec<&str> = svc.to_vec();
    args.extend(["--out", out.to_str().unwrap(), "/nonexistent.pcap"]);
    assert_eq!(replay(&args).0, 2);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    // A good run replaces it with the whole capture and leaves no temporary file.
    let mut args: Vec<&str> = svc.to_vec();
    args.extend(["--out", out.to_str().unwrap(), input.to_str().unwrap()]);
    let (code, _, err) = replay(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(&std::fs::read(&out).unwrap()[..4], &[0x4d, 0x3c, 0xb2, 0xa1], "a nanosecond pcap");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 4, "in, link, rules, out: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGINT / SIGTERM mid-replay: the frame in hand is finished, the output closed as a valid
/// capture, the report printed, and the exit status is 130 / 143.
#[test]
#[cfg(unix)]
fn a_signal_stops_the_replay_cleanly() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-signal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (signal, status) in [("INT", 130), ("TERM", 143)] {
        let out = dir.join(format!("{signal}.pcap"));
        // The bundled sample in its own timing lasts about 2.4 s.
        let child = Command::new(env!("CARGO_BIN_EXE_replay"))
            .args(["--mode", "dr", "--json", "--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        let kill = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let done = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(status), "SIG{signal}: {err}");
        assert!(err.contains(&format!("stopped by SIG{signal}")), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&done.stdout).expect("the report, as JSON");
        let read = n(&v, "packets.read");
        assert!(read > 0 && read < 304, "SIG{signal}: part of the sample was read ({read})");
        let dropped: u64 = v["packets"]["dropped"].as_object().unwrap().values().map(|x| x.as_u64().unwrap()).sum();
        assert_eq!(read, n(&v, "packets.forwarded") + n(&v, "packets.replies_skipped") + dropped);
        // The output is whole: every emitted frame, readable.
        let cap = lb_replay::capture::Capture::open(&out).unwrap();
        assert!(cap.truncated.is_none());
        assert_eq!(cap.frames.len() as u64, n(&v, "frames.emitted"));
        if available("tshark", have_tshark()) {
            let t = Command::new("tshark").arg("-r").arg(&out).output().unwrap();
            // tshark's only remark may be that it runs as root.
            let complaints: Vec<String> = String::from_utf8_lossy(&t.stderr)
                .lines()
                .filter(|l| !l.contains("Running as user \"root\"") && !l.trim().is_empty())
                .map(String::from)
                .collect();
            assert!(t.status.success() && complaints.is_empty(), "tshark: {complaints:?}");
            assert_eq!(String::from_utf8_lossy(&t.stdout).lines().count(), cap.frames.len());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--help` documents the exit statuses.
#[test]
fn help_lists_the_exit_statuses() {
    let (code, out, _) = replay(&["--help"]);
    assert_eq!(code, 0);
    for s in ["Exit status:", "  2 ", "  3 ", "130/143"] {
        assert!(out.contains(s), "--help lacks {s:?}: {out}");
    }
}

/// `--workers 4 --out` writes the frames `--workers 1` writes, in the same (capture time) order.
#[test]
fn several_workers_write_the_output_in_capture_order() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-order-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = bundled_pcap("443-curl.pcap");
    let mut outs = Vec::new();
    for workers in ["1", "4"] {
        let out = dir.join(format!("w{workers}.pcap"));
        let (code, _, err) = replay(&[
            "--mode",
            "nat",
            "--sched",
            "sh",
            "--vip",
            "any",
            "--backend",
            "10.0.0.1,mac=02:00:00:00:00:01",
            "--backend",
            "10.0.0.2,mac=02:00:00:00:00:02",
            "--topspeed",
            "--workers",
            workers,
            "--out",
            out.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        outs.push(std::fs::read(&out).unwrap());
    }
    assert!(outs[0].len() > 24 * 10, "frames were written");
    assert!(outs[0] == outs[1], "4 workers wrote other bytes than 1");
    let cap = lb_replay::capture::Capture::open(&dir.join("w4.pcap")).unwrap();
    assert!(cap.frames.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "timestamps never step back");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn odd(name: &str) -> String {
    bundled_pcap(&format!("odd/{name}")).to_str().unwrap().to_string()
}

const ANY: [&str; 6] = ["--mode", "dr", "--vip", "any", "--backend", "10.0.0.1,mac=02:00:00:00:00:01"];

/// Captures tcpdump and tshark read (testdata/odd, made by scripts/make_odd_captures.py from the
/// first 12 frames of dpkt-http.pcap) are read whole, their oddities counted in the report.
#[test]
fn odd_captures_are_read_as_libpcap_reads_them() {
    let plain = {
        let mut a = ANY.to_vec();
        let p = bundled_pcap("dpkt-http.pcap");
        a.extend(["--topspeed", "--json", p.to_str().unwrap()]);
        json(&a)
    };
    // The expected counts, from the record headers themselves (little-endian, microseconds).
    let records = |file: &str| {
        let b = std::fs::read(odd(file)).unwrap();
        let snaplen = u32::from_le_bytes(b[16..20].try_into().unwrap());
        let mut off = 24;
        let mut v = Vec::new();
        while off + 16 <= b.len() {
            let w = |i: usize| u32::from_le_bytes(b[off + i..off + i + 4].try_into().unwrap());
            v.push((w(4), w(8), w(12), snaplen));
            off += 16 + w(8) as usize;
        }
        v
    };
    type Record = (u32, u32, u32, u32);
    let count = |file: &str, f: &dyn Fn(&Record) -> bool| records(file).iter().filter(|r| f(r)).count();
    let over = count("over_snaplen.pcap", &|&(_, incl, _, snap)| incl > snap);
    let below = count("orig_below.pcap", &|&(_, incl, orig, _)| orig < incl);
    let frac = count("usec_overflow.pcap", &|&(usec, ..)| usec >= 1_000_000);
    assert!(over > 0 && below > 0 && frac > 0, "the fixtures hold odd records");
    for (file, key, count) in [
        ("snaplen0.pcap", None, 0),
        ("fcs.pcap", None, 0),
        ("over_snaplen.pcap", Some("over_snaplen"), over as u64),
        ("orig_below.pcap", Some("orig_below_incl"), below as u64),
        ("usec_overflow.pcap", Some("fraction_over_second"), frac as u64),
    ] {
        let path = odd(file);
        let mut a = ANY.to_vec();
        a.extend(["--topspeed", "--json", &path]);
        let v = json(&a);
        assert_eq!(n(&v, "capture.frames"), 12, "{file}: every record read");
        assert!(v["capture"]["truncated"].is_null(), "{file}");
        if let Some(k) = key {
            assert_eq!(n(&v, &format!("capture.odd_records.{k}")), count, "{file}");
        }
        if file == "fcs.pcap" {
            // The FCS stripped: the frames are dpkt-http's first 12, directed the same way.
            assert!(n(&v, "packets.forwarded") + n(&v, "packets.replies_skipped") > 0);
            assert_eq!(v["packets"]["dropped"], serde_json::json!({}), "{file}: {v}");
        }
    }
    // Compressed: the same replay as the plain file.
    for file in ["dpkt-http.pcap.gz", "dpkt-http.pcap.zst"] {
        let path = odd(file);
        let mut a = ANY.to_vec();
        a.extend(["--topspeed", "--json", &path]);
        let v = json(&a);
        assert_eq!(v["packets"], plain["packets"], "{file}");
        assert_eq!(v["capture"]["compression"], if file.ends_with("gz") { "gzip" } else { "zstd" });
    }
    // A compressed file that is cut short says so: the frames before the cut are replayed (the
    // capture is read as the replay goes), and the replay exits 3, as for any damaged capture.
    let dir = std::env::temp_dir().join(format!("lbkit-cli-gz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.pcap.gz");
    let gz = std::fs::read(odd("dpkt-http.pcap.gz")).unwrap();
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let mut a = ANY.to_vec();
    a.push(cut.to_str().unwrap());
    let (code, out, err) = replay(&a);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is damaged after frame") && err.contains("cannot decompress the gzip capture"), "{err}");
    assert!(out.contains("packets:"), "the report is printed: {out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `-` reads the capture from standard input; `--out -` writes it to standard output (the report
/// then goes to standard error).
#[test]
fn standard_input_and_output() {
    use std::io::Write;
    let input = std::fs::read(bundled_pcap("dpkt-http.pcap")).unwrap();
    let dir = std::env::temp_dir().join(format!("lbkit-cli-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file_out = dir.join("out.pcap");
    let mut a = ANY.to_vec();
    let p = bundled_pcap("dpkt-http.pcap");
    a.extend(["--topspeed", "--out", file_out.to_str().unwrap(), p.to_str().unwrap()]);
    assert_eq!(replay(&a).0, 0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(ANY)
        .args(["--topspeed", "--out", "-", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{err}");
    assert!(done.stdout == std::fs::read(&file_out).unwrap(), "stdout holds the same capture as --out FILE");
    assert!(err.contains("packets:") && err.contains("<standard input>"), "the report on stderr: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Completion scripts and the man page come from the same command-line definition.
#[test]
fn completions_and_man_page() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef replay"), ("fish", "complete -c replay")] {
        let (code, out, err) = replay(&["--completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(marker) && out.contains("xdp-ring"), "{shell}: {}", &out[..out.len().min(200)]);
    }
    let (code, out, _) = replay(&["--man"]);
    assert_eq!(code, 0);
    assert!(out.starts_with(".ie") || out.contains(".TH replay"), "{}", &out[..out.len().min(200)]);
    assert!(out.contains("xdp\\-ring") || out.contains("xdp-ring"));
    let (code, _, err) = replay(&["--completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
    let (code, out, _) = replay(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Replay a capture through an IPVS-style director"), "{out}");
}

/// Rules as `ipvsadm-save` writes them without `-n` (service names) are read through the
/// system's services database; an empty rules file says that it is empty.
#[test]
fn rules_with_service_names_and_empty_rules() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.rules");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    let (code, _, err) = replay(&["--rules", empty.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no virtual service in the rules file"), "{err}");
    if available("/etc/services", std::path::Path::new("/etc/services").exists()) {
        let named = dir.join("named.rules");
        std::fs::write(&named, "-A -t 198.51.100.10:http -s rr\n-a -t 198.51.100.10:http -r 10.0.0.1:http -g -w 1\n")
            .unwrap();
        let v = json(&[
            "--rules",
            named.to_str().unwrap(),
            "--neigh",
            "10.0.0.1=02:00:00:00:00:01",
            "--topspeed",
            "--json",
        ]);
        assert_eq!(n(&v, "packets.forwarded"), 180, "the bundled sample's requests to 198.51.100.10:80");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every size, count and time is range-checked (exit 2, naming the flag and its range), and a MAC
/// no host can have is refused for a real server.
#[test]
fn values_out_of_range_are_refused() {
    let vip = ["--mode", "dr", "--vip", "198.51.100.10:80", "--backend", "10.0.0.1,mac=02:00:00:00:00:01"];
    let v6 = ["--mode", "dr", "--vip", "[2001:db8::10]:80", "--backend", "2001:db8::1,mac=02:00:00:00:00:01"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--max-connections", "0"], "--max-connections 0: from 1 to"),
        (vec!["--max-connections", "100000000000000"], "--max-connections 100000000000000: from 1 to"),
        (vec!["--conn-reuse-mode", "200"], "--conn-reuse-mode 200: 0 to 3"),
        (vec!["--persistent", "99999999999999"], "--persistent 99999999999999: from 1 to"),
        (vec!["--persistent", "0"], "--persistent 0: from 1 to"),
        (vec!["--timeout", "established=99999999999999"], "out of range (1 to 2147483 s)"),
        (vec!["--mtu", "10"], "--mtu 10: at least 68"),
        (vec!["--pps", "0"], "--pps 0.0: more than 0"),
        (vec!["--multiplier", "1e-300"], "--multiplier 1e-300: from 0.001"),
        (vec!["--maxsleep=-1"], "--maxsleep -1.0: from 0"),
        (vec!["--netmask", "200", "--persistent", "60"], "--netmask 200: a prefix length is at most 128"),
        (vec!["--neigh", "10.0.0.2=ff:ff:ff:ff:ff:ff"], "must be a unicast address"),
    ];
    for (extra, want) in cases {
        let mut args = vip.to_vec();
        args.extend(extra.iter().copied());
        let (code, _, err) = replay(&args);
        assert_eq!(code, 2, "replay {args:?}: {err}");
        assert!(err.contains(want), "replay {args:?}: {err:?} does not say {want:?}");
    }
    let mut args = v6.to_vec();
    args.extend(["--mtu", "1000"]);
    let (code, _, err) = replay(&args);
    assert_eq!(code, 2);
    assert!(err.contains("--mtu 1000: at least 1280"), "{err}");
    let (code, _, err) =
        replay(&["--mode", "dr", "--vip", "198.51.100.10:80", "--backend", "10.0.0.1,mac=01:00:5e:00:00:01"]);
    assert_eq!(code, 2);
    assert!(err.contains("must be a unicast address"), "{err}");
}

/// A flag that changes nothing in the configuration given is a warning, and the replay runs.
#[test]
fn flags_without_effect_are_warned_about() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("lvs.rules");
    std::fs::write(&rules, "-A -t 198.51.100.10:80 -s rr\n-a -t 198.51.100.10:80 -r 10.0.0.1:80 -g\n").unwrap();
    let r = rules.to_str().unwrap();
    let neigh = "10.0.0.1=02:00:00:00:00:01";
    for (args, want) in [
        (vec!["--rules", r, "--neigh", neigh, "--mode", "nat"], "--mode has no effect with --rules"),
        (vec!["--rules", r, "--neigh", neigh, "--sched", "wrr"], "--sched has no effect with --rules"),
        (vec!["--rules", r, "--neigh", neigh, "--persistent", "60"], "--persistent has no effect with --rules"),
        (vec!["--mode", "dr", "--tun-src", "192.0.2.1"], "--tun-src has no effect"),
        (vec!["--mode", "dr", "--netmask", "24"], "--netmask has no effect without --persistent"),
        (
            vec![
                "--mode",
                "dr",
                "--vip",
                "198.51.100.10:80",
                "--backend",
                "10.0.0.1,mac=02:00:00:00:00:01",
                "--persistent",
                "60",
                "--netmask",
                "64",
            ],
            "--netmask 64 is longer than an IPv4 address",
        ),
    ] {
        let mut a = args.clone();
        a.push("--topspeed");
        let (code, out, err) = replay(&a);
        assert_eq!(code, 0, "replay {a:?}: {err}");
        assert!(err.contains(&format!("warning: {want}")), "replay {a:?}: {err:?} does not say {want:?}");
        assert!(out.contains("packets:"), "it ran");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--maxsleep` cuts a long gap in the capture's timing short; the director decides the same.
#[test]
fn maxsleep_cuts_long_gaps_short() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-maxsleep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two connections 100 s apart.
    let frames = vec![
        (1_000_000_000, tcp("192.0.2.1", 40000, "198.51.100.10", 80, SYN, b"")),
        (101_000_000_000, tcp("192.0.2.2", 40000, "198.51.100.10", 80, SYN, b"")),
    ];
    let input = dir.join("gap.pcap");
    std::fs::write(&input, pcap(&frames)).unwrap();
    let mut outs = Vec::new();
    for pacing in [vec!["--maxsleep", "0.2"], vec!["--topspeed"]] {
        let out = dir.join(format!("out{}.pcap", outs.len()));
        let mut a = vec!["--mode", "dr", "--vip", "198.51.100.10:80", "--backend", "10.0.0.1,mac=02:00:00:00:00:01"];
        a.extend(pacing.iter().copied());
        a.extend(["--out", out.to_str().unwrap(), input.to_str().unwrap()]);
        let t = std::time::Instant::now();
        let (code, _, err) = replay(&a);
        assert_eq!(code, 0, "{err}");
        if pacing[0] == "--maxsleep" {
            let took = t.elapsed();
            assert!(took < std::time::Duration::from_secs(20), "the 100 s gap was cut ({took:?})");
            assert!(took >= std::time::Duration::from_millis(200), "the gap still lasts --maxsleep ({took:?})");
        }
        outs.push(std::fs::read(&out).unwrap());
    }
    assert!(outs[0] == outs[1], "the same frames and timestamps as at top speed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// On a terminal, a replay that lasts more than a second shows its progress on standard error;
/// a short one, or one not on a terminal, shows none.
#[test]
fn progress_on_a_terminal_for_longer_replays() {
    if !available(
        "script (util-linux), for a pseudo-terminal",
        Command::new("script").arg("--version").output().is_ok(),
    ) {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_replay");
    let on_tty = |args: &str| {
        let out =
            Command::new("script").args(["-qec", &format!("{bin} {args} >/dev/null"), "/dev/null"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // The bundled sample in its own timing: about 2.4 s. (The capture is read as the replay
    // goes: the count of frames done is shown, not a total.)
    let paced = on_tty("--mode dr");
    assert!(paced.contains(" frames"), "progress shown: {paced:?}");
    let quick = on_tty("--mode dr --topspeed");
    assert!(!quick.contains("frames"), "no progress for a short replay: {quick:?}");
    let (_, _, err) = replay(&["--mode", "dr", "--multiplier", "2"]);
    assert!(!err.contains(" frames"), "no progress off a terminal: {err:?}");
}

/// Through the binary: the issue's case, NAT with `--mtu 300` on the bundled sample. Every
/// ICMP error the director emits about a reply goes to the real server, never to the virtual
/// address, and comes from a unicast address.
#[test]
fn nat_replies_too_big_are_answered_to_the_real_server() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-toobig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.pcap");
    let (code, stdout, err) = replay(&[
        "--mode",
        "nat",
        "--vip",
        "198.51.100.10:80",
        "--backend",
        "10.0.0.1,mac=02:00:00:00:01:01",
        "--mtu",
        "300",
        "--topspeed",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let too_big = n(&v, "packets.dropped.too_big");
    assert!(too_big > 0, "replies over 300 bytes were answered: {v}");
    let cap = lb_replay::capture::Capture::open(&out).unwrap();
    let mut errors = 0;
    for f in &cap.frames {
        let b = cap.frame(f);
        // IPv4 ICMP (protocol 1) "fragmentation needed" (type 3 code 4): the director's errors
        // about replies (the sample also has a TTL-1 request, answered to its client).
        if b[12..14] == [0x08, 0x00] && b[14 + 9] == 1 && b[14 + 20..14 + 22] == [3, 4] {
            errors += 1;
            assert_eq!(&b[14 + 16..14 + 20], &[10, 0, 0, 1], "to the real server");
            assert_eq!(&b[0..6], &[2, 0, 0, 0, 1, 1], "to its MAC");
            assert_eq!(&b[14 + 12..14 + 16], &[198, 51, 100, 10], "from the director (the virtual address)");
        }
    }
    assert_eq!(errors, too_big, "one error for each reply too big, all in the output");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Through the binary: a catch-all service on traffic to multicast and broadcast addresses
/// schedules none of it and answers none of it.
#[test]
fn a_catch_all_service_leaves_multicast_and_broadcast_alone() {
    let dir = std::env::temp_dir().join(format!("lbkit-cli-mcast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ttl1 = udp("2001:db8::7", 5353, "ff02::fb", 5353, b"q");
    ttl1[14 + 7] = 1;
    let frames = vec![
        (1_000_000_000, udp("192.0.2.7", 5353, "224.0.0.251", 5353, b"mdns")),
        (1_001_000_000, udp("192.0.2.7", 50000, "239.255.255.250", 1900, b"M-SEARCH")),
        (1_002_000_000, udp("0.0.0.0", 68, "255.255.255.255", 67, b"discover")),
        (1_003_000_000, udp("2001:db8::7", 50000, "ff02::1:3", 5355, b"llmnr")),
        (1_004_000_000, ttl1),
        (1_005_000_000, tcp("192.0.2.7", 40000, "198.51.100.10", 80, SYN, b"")),
    ];
    let input = dir.join("mcast.pcap");
    std::fs::write(&input, pcap(&frames)).unwrap();
    for mode in ["dr", "nat", "tun"] {
        let v = json(&[
            "--mode",
            mode,
            "--vip",
            "any",
            "--backend",
            "10.0.0.1,mac=02:00:00:00:01:01",
            "--backend",
            "2001:db8::1,mac=02:00:00:00:01:02",
            "--tun-src",
            "192.0.2.254",
            "--tun-src",
            "2001:db8::fe",
            "--topspeed",
            "--json",
            input.to_str().unwrap(),
        ]);
        assert_eq!(n(&v, "packets.dropped.not_unicast"), 5, "{mode}: {v}");
        assert_eq!(n(&v, "packets.icmp_sent"), 0, "{mode}");
        assert_eq!(n(&v, "packets.forwarded"), 1, "{mode}: the unicast SYN");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
