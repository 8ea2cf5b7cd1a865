//! Captures are read as a stream: the frames a [`CaptureReader`] gives are those an independent
//! reader (pcap-file's own, over the whole file in memory) finds, again on every loop; and a
//! capture far larger than replay's buffers replays in the same memory as a small one.

#![cfg(feature = "cli")]

mod support;

use std::io::Write;
use std::path::Path;

use lb_replay::capture::{CaptureReader, Source};
use support::*;

/// Every frame of a source: (timestamp, bytes).
fn drain(src: &mut dyn Source) -> Vec<(u64, Vec<u8>)> {
    let mut v = Vec::new();
    let mut buf = Vec::new();
    while let Some(ts) = src.next_frame(&mut buf) {
        v.push((ts, std::mem::take(&mut buf)));
    }
    v
}

/// pcap-file's classic reader over the whole file.
fn reference_pcap(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut r = pcap_file::pcap::PcapReader::new(bytes).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        let Ok(p) = p else { break };
        v.push((p.timestamp().as_nanos() as u64, p.data().to_vec()));
    }
    v
}

#[test]
fn streamed_frames_are_what_an_independent_reader_finds_on_every_loop() {
    for name in ["dpkt-http.pcap", "dpkt-nb6-http.pcap", "443-curl.pcap", "6in4tunnel.pcap", "dpkt-http-vlan.pcap"] {
        let path = bundled_pcap(name);
        let want = reference_pcap(&std::fs::read(&path).unwrap());
        assert!(want.len() > 5, "{name}");
        let mut r = CaptureReader::open(&path).unwrap();
        assert_eq!(drain(&mut r), want, "{name}, first pass");
        assert_eq!(r.info().frames, want.len() as u64, "{name}");
        assert_eq!((r.info().format, r.info().link.as_str()), ("pcap", "ETHERNET"), "{name}");
        r.rewind().unwrap();
        assert_eq!(drain(&mut r), want, "{name}, second pass");
        assert_eq!(r.info().frames, want.len() as u64, "{name}: the counts are of one pass");
    }
}

/// A pcapng file written by pcap-file's writer (two interfaces, raw IP on the second) reads back
/// frame for frame, with the raw IP frames given an Ethernet header.
#[test]
fn pcapng_streams_with_its_interfaces() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    use std::borrow::Cow;
    use std::time::Duration;

    let eth = tcp("198.51.100.7", 1000, "192.0.2.10", 80, SYN, b"");
    let ip = eth[14..].to_vec();
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    for link in [DataLink::ETHERNET, DataLink::RAW] {
        w.write_pcapng_block(InterfaceDescriptionBlock { linktype: link, snaplen: 0, options: vec![] }).unwrap();
    }
    let n = 3000u64;
    for i in 0..n {
        let (iface, data) = if i % 3 == 0 { (1, &ip) } else { (0, &eth) };
        let block = EnhancedPacketBlock {
            interface_id: iface,
            timestamp: Duration::from_micros(1_000_000 + i),
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        };
        w.write_pcapng_block(block).unwrap();
    }
    let bytes = w.into_inner();
    let mut r = CaptureReader::from_bytes(Path::new("two.pcapng"), bytes).unwrap();
    let got = drain(&mut r);
    assert_eq!(got.len() as u64, n);
    for (i, (ts, f)) in got.iter().enumerate() {
        assert_eq!(*ts, (1_000_000 + i as u64) * 1000);
        if i % 3 == 0 {
            assert_eq!(&f[14..], &ip[..], "frame {i}: the IP packet behind a synthetic header");
            assert_eq!(&f[12..14], &[0x08, 0x00]);
        } else {
            assert_eq!(f, &eth, "frame {i}");
        }
    }
    assert_eq!(r.info().format, "pcapng");
    assert_eq!(r.info().link, "ETHERNET,RAW");
    assert_eq!(r.info().converted, n.div_ceil(3));
    assert!(r.info().truncated.is_none());
}

/// Standard input can be read once: `--loop 2` with `-` is refused before anything runs.
#[test]
fn looping_standard_input_is_refused() {
    let (code, _, err) =
        replay(&["--mode", "dr", "--vip", "any", "--backend", "10.0.0.1,mac=02:00:00:00:01:01", "--loop", "2", "-"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("standard input can be read only once"), "{err}");
}

/// A capture of 256 MiB (180,000 full-size frames over 500 connections), written into replay's
/// standard input as it reads (so no disk holds it), replays, every frame, in less than 64 MiB:
/// the memory does not follow the capture's size (it was read whole, then copied, before).
#[test]
fn a_large_capture_replays_in_bounded_memory() {
    use std::process::{Command, Stdio};
    if !available("/proc/self/status (Linux), for the peak memory", Path::new("/proc/self/status").exists()) {
        return;
    }
    let payload = vec![0x5a_u8; 1400];
    let syns: Vec<Vec<u8>> = (0..500u16).map(|c| tcp("198.51.100.7", 10_000 + c, "192.0.2.10", 80, SYN, b"")).collect();
    let frames: Vec<Vec<u8>> =
        (0..500u16).map(|c| tcp("198.51.100.7", 10_000 + c, "192.0.2.10", 80, ACK, &payload)).collect();
    let total = (256u64 << 20) / (16 + frames[0].len() as u64) + 500;
    for workers in ["1", "2"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_replay"))
            .args([
                "--mode",
                "dr",
                "--vip",
                "192.0.2.10:80",
                "--backend",
                "10.0.0.1,mac=02:00:00:00:01:01",
                "--backend",
                "10.0.0.2,mac=02:00:00:00:01:02",
                "--topspeed",
                "--json",
                "--workers",
                workers,
                "--out",
                "/dev/null",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run replay");
        let stdin = child.stdin.take().unwrap();
        let (syns, frames) = (syns.clone(), frames.clone());
        // The capture, a record at a time, as replay takes it: (bytes written, or the error).
        let writer = std::thread::spawn(move || -> std::io::Result<u64> {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, stdin);
            let head = pcap(&[]);
            w.write_all(&head)?;
            let mut size = head.len() as u64;
            for i in 0..total {
                // Each connection's SYN, then its data.
                let f = if i < 500 { &syns[i as usize] } else { &frames[(i % 500) as usize] };
                let ts = 1_000_000_000_000 + i * 1000;
                w.write_all(&((ts / 1_000_000_000) as u32).to_le_bytes())?;
                w.write_all(&((ts % 1_000_000_000) as u32).to_le_bytes())?;
                w.write_all(&(f.len() as u32).to_le_bytes())?;
                w.write_all(&(f.len() as u32).to_le_bytes())?;
                w.write_all(f)?;
                size += 16 + f.len() as u64;
            }
            w.flush()?;
            Ok(size)
        });
        let out = child.wait_with_output().expect("wait for replay");
        let size = writer.join().unwrap().expect("write the capture into replay's standard input");
        assert!(size >= 255 << 20, "{size}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{workers} workers: {err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
        assert_eq!(n(&v, "capture.frames"), total, "{workers} workers");
        assert_eq!(n(&v, "packets.read"), total);
        assert_eq!(n(&v, "packets.forwarded"), total, "{v}");
        let peak = n(&v, "peak_rss_bytes");
        assert!(peak < 64 << 20, "{workers} workers: peak memory {} MiB for a {} MiB capture", peak >> 20, size >> 20);
    }
}

/// Many workers, events, loops and a capture whose time runs backwards in places: the replay
/// finishes (no worker, reader or writer waits for another for ever), and with a hash scheduler
/// 1, 2, 3 and 5 workers emit the same frames in the same order, each event applied once.
#[test]
fn workers_events_loops_and_backward_time_finish_with_the_same_output() {
    use lb_replay::config::{parse_backend, ServiceSpec, Vip};
    use lb_replay::pipeline::PipelineConfig;
    use lb_replay::run::{parse_event, run, Output, RunConfig};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, Vec<u8>)>>);
    impl Output for Recorder {
        fn send(&self, ts: u64, frame: &[u8]) {
            self.0.lock().unwrap().push((ts, frame.to_vec()));
        }
    }
    // 3000 frames of 300 connections; every 7th frame's time steps 0.5 s back.
    let mut frames = Vec::new();
    for k in 0..3000u64 {
        let c = (k % 300) as u16;
        let flags = if k < 300 { SYN } else { ACK };
        let mut ts = 1_000_000_000_000 + k * 1_000_000;
        if k % 7 == 3 {
            ts -= 500_000_000;
        }
        frames.push((ts, tcp(&format!("198.51.100.{}", 1 + c % 200), 20_000 + c, "192.0.2.10", 80, flags, b"")));
    }
    let cap = capture(&frames);
    let mut spec = ServiceSpec::new(Vip::Addr { proto: None, addr: "192.0.2.10:80".parse().unwrap() });
    spec.sched = "sh".into();
    spec.backends = (1..=3).map(|i| parse_backend(&format!("10.0.0.{i},mac=02:00:00:00:01:0{i}")).unwrap()).collect();
    let cfg = PipelineConfig::new(vec![spec], Some(lb_sched::ForwardMethod::DirectRoute));
    let events = ["0.5:weight=10.0.0.1:2", "1.2:drain=10.0.0.2", "2.9:weight=10.0.0.2:1", "9:drain=10.0.0.3"];
    let mut first: Option<Vec<(u64, Vec<u8>)>> = None;
    for workers in [1usize, 2, 3, 5] {
        let pipe = pipeline(&cfg);
        let rec = Recorder::default();
        let rc = RunConfig {
            loops: 2,
            events: events.iter().map(|e| parse_event(e).unwrap()).collect(),
            ..RunConfig::new(workers)
        };
        let res = run(&mut cap.source(), &pipe, &rc, &rec);
        assert!(!res.stopped && res.input_error.is_none());
        assert_eq!(res.counters.read, 6000, "{workers} workers");
        assert_eq!(res.events.len(), events.len(), "{workers} workers: each event applied once");
        assert!(res.events.iter().all(|(_, _, r)| r.is_ok()), "{:?}", res.events);
        let got = rec.0.into_inner().unwrap();
        assert!(got.len() > 5000, "{workers} workers: {} frames", got.len());
        match &first {
            None => first = Some(got),
            Some(want) => assert!(*want == got, "{workers} workers: the output differs from one worker's"),
        }
    }
}
