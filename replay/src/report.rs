//! The report at the end of a replay: for people (like `ipvsadm -Ln --stats`) or as JSON.
//!
//! Invariants, checked by the tests on every capture:
//! `packets.read = forwarded + replies_skipped + Σ dropped`, and
//! `frames.emitted = forwarded + icmp_sent + fragments − fragmented` (a packet forwarded as
//! fragments is one forwarded packet and several frames; without fragmentation
//! `frames.emitted = forwarded + icmp_sent`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lb_conntrack::State;
use serde::Serialize;

use crate::capture::CaptureInfo;
use crate::config::{mode_name, Vip};
use crate::pipeline::{DestCounters, Pipeline};
use crate::run::RunResult;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Forwarding method(s): `nat`, `dr`, `tun`, or several joined by `+`.
    pub mode: String,
    /// Scheduler(s), joined by `+` when services differ.
    pub scheduler: String,
    /// The input.
    pub capture: CaptureReport,
    /// Packets.
    pub packets: Packets,
    /// Frames handed to the output.
    pub frames: Frames,
    /// Every destination that existed, per service.
    pub destinations: Vec<DestReport>,
    /// Connection table.
    pub connections: Connections,
    /// Operator events.
    pub events: Vec<EventReport>,
    /// Where the frames went (`None`: nowhere, the report only).
    pub output: Option<OutputReport>,
    /// Wall time.
    pub elapsed_s: f64,
    /// Frames read per second of wall time.
    pub rate_pps: f64,
    /// The process's peak resident memory so far, in bytes (Linux's `VmHWM`; `None` where the
    /// system does not say).
    pub peak_rss_bytes: Option<u64>,
}

/// The process's peak resident set size, from `/proc/self/status` (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    kb.checked_mul(1024)
}

/// The input capture.
#[derive(Debug, Serialize)]
pub struct CaptureReport {
    /// File name (or `<bundled sample>`).
    pub file: String,
    /// pcap or pcapng.
    pub format: String,
    /// Link type(s).
    pub link_type: String,
    /// Frames read from the file (all of them, unless the replay was stopped first).
    pub frames: usize,
    /// Frames given a synthetic Ethernet header.
    pub converted: usize,
    /// Times replayed.
    pub loops: u32,
    /// Where a damaged file stopped being readable.
    pub truncated: Option<Truncated>,
    /// `gzip` or `zstd` when the file was compressed.
    pub compression: Option<String>,
    /// Records read although the pcap format says they should not exist (libpcap reads them).
    pub odd_records: OddRecordsReport,
}

/// Odd records of a classic pcap, by kind.
#[derive(Debug, Serialize)]
pub struct OddRecordsReport {
    /// Included length above the file's snapshot length.
    pub over_snaplen: u64,
    /// Original length below the included length.
    pub orig_below_incl: u64,
    /// A fraction of a second of a whole second or more.
    pub fraction_over_second: u64,
}

/// Damage in a capture.
#[derive(Debug, Serialize)]
pub struct Truncated {
    /// Frames read before it.
    pub after_frames: usize,
    /// What was wrong.
    pub reason: String,
}

/// Packet counts.
#[derive(Debug, Serialize)]
pub struct Packets {
    /// Frames read (every loop).
    pub read: u64,
    /// Forwarded (whole or as fragments).
    pub forwarded: u64,
    /// Of those, forwarded as IPv4 fragments.
    pub fragmented: u64,
    /// DR/TUN replies: the director never sees them.
    pub replies_skipped: u64,
    /// ICMP errors the director built (time exceeded, too big).
    pub icmp_sent: u64,
    /// Drops by reason.
    pub dropped: BTreeMap<String, u64>,
}

/// Frame counts.
#[derive(Debug, Serialize)]
pub struct Frames {
    /// Frames handed to the output.
    pub emitted: u64,
    /// Fragment frames among them.
    pub fragments: u64,
}

/// One destination.
#[derive(Debug, Serialize)]
pub struct DestReport {
    /// Its service.
    pub service: String,
    /// Address.
    pub address: String,
    /// Port (0: the packet's).
    pub port: u16,
    /// Forwarding method.
    pub fwd: String,
    /// Weight at the end.
    pub weight: u32,
    /// Whether an event removed it.
    pub removed: bool,
    /// Connections scheduled to it.
    pub connections: u64,
    /// Its connections in the table at the end: active.
    pub active: u32,
    /// ... and inactive.
    pub inactive: u32,
    /// Packets forwarded for it, both directions.
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Requests toward it.
    pub packets_in: u64,
    /// Bytes of those.
    pub bytes_in: u64,
    /// Replies from it (NAT).
    pub packets_out: u64,
    /// Bytes of those.
    pub bytes_out: u64,
}

/// The connection table at the end.
#[derive(Debug, Serialize)]
pub struct Connections {
    /// Created.
    pub created: u64,
    /// Expired during the replay.
    pub expired: u64,
    /// Evicted (table full).
    pub evicted: u64,
    /// Refused (table full).
    pub refused: u64,
    /// Expired early and scheduled anew.
    pub rescheduled: u64,
    /// In the table at the end.
    pub in_table: u64,
    /// Persistence templates at the end.
    pub templates: u64,
    /// In the table at the end, by state.
    pub states: BTreeMap<String, u64>,
}

/// The output.
#[derive(Debug, Serialize)]
pub struct OutputReport {
    /// `pcap` or `af_xdp`.
    pub kind: String,
    /// File or interface.
    pub target: String,
    /// Frames written or queued for transmission.
    pub frames: u64,
    /// AF_XDP: frames the kernel reported sent.
    pub completed: Option<u64>,
    /// AF_XDP: queued frames given up on because the kernel made no progress (never sent).
    pub abandoned: Option<u64>,
}

/// An operator event.
#[derive(Debug, Serialize)]
pub struct EventReport {
    /// Seconds after the first packet.
    pub at_s: f64,
    /// As given.
    pub action: String,
    /// What it did.
    pub result: String,
    /// Whether it failed.
    pub ok: bool,
}

/// A packet rate as people read it: `974 272 packets/s` below a million, `1.23 Mpps` above.
pub fn rate(pps: f64) -> String {
    if !pps.is_finite() || pps < 0.0 {
        return "- packets/s".into();
    }
    if pps >= 1e6 {
        return format!("{:.2} Mpps", pps / 1e6);
    }
    let n = pps.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    format!("{out} packets/s")
}

fn join_unique(items: impl Iterator<Item = String>) -> String {
    let mut v: Vec<String> = Vec::new();
    for i in items {
        if !v.contains(&i) {
            v.push(i);
        }
    }
    v.join("+")
}

impl Report {
    /// Builds the report.
    pub fn new(cap: &CaptureInfo, file: &str, loops: u32, pipe: &Pipeline, res: &RunResult) -> Report {
        let c = &res.counters;
        let mut destinations = Vec::new();
        let zero = DestCounters::default();
        let mut push = |si: usize, d: &lb_sched::Destination, removed: bool| {
            let k = c.dests.get(si).and_then(|v| v.get(d.id().0 as usize)).unwrap_or(&zero);
            destinations.push(DestReport {
                service: pipe.services()[si].vip.to_string(),
                address: d.addr().to_string(),
                port: d.port(),
                fwd: mode_name(d.fwd()).to_string(),
                weight: d.weight(),
                removed,
                connections: k.connections,
                active: d.active_conns(),
                inactive: d.inactive_conns(),
                packets: k.packets_in + k.packets_out,
                bytes: k.bytes_in + k.bytes_out,
                packets_in: k.packets_in,
                bytes_in: k.bytes_in,
                packets_out: k.packets_out,
                bytes_out: k.bytes_out,
            });
        };
        for (si, rt) in pipe.services().iter().enumerate() {
            // Oldest first (the order they were added), like the configuration.
            for d in rt.svc.destinations().iter().rev() {
                push(si, d, false);
            }
        }
        for (si, d) in pipe.removed() {
            push(si, &d, true);
        }
        let ts = res.table_stats(pipe);
        let states = State::ALL
            .iter()
            .filter(|s| ts.states[**s as usize] > 0)
            .map(|s| (s.name().to_string(), ts.states[*s as usize]))
            .collect();
        let mode = join_unique(
            pipe.services().iter().flat_map(|s| s.svc.destinations()).map(|d| mode_name(d.fwd()).to_string()),
        );
        let scheduler = join_unique(pipe.services().iter().map(|s| s.svc.scheduler_name().to_string()));
        let elapsed_s = res.elapsed.as_secs_f64();
        Report {
            mode,
            scheduler,
            capture: CaptureReport {
                file: file.to_string(),
                format: cap.format.to_string(),
                link_type: cap.link.clone(),
                frames: cap.frames as usize,
                converted: cap.converted as usize,
                loops,
                truncated: cap
                    .truncated
                    .as_ref()
                    .map(|t| Truncated { after_frames: t.after_frames, reason: t.reason.clone() }),
                compression: cap.compression.map(|c| c.name().to_string()),
                odd_records: OddRecordsReport {
                    over_snaplen: cap.odd.over_snaplen,
                    orig_below_incl: cap.odd.orig_below_incl,
                    fraction_over_second: cap.odd.fraction_over_second,
                },
            },
            packets: Packets {
                read: c.read,
                forwarded: c.forwarded,
                fragmented: c.fragmented,
                replies_skipped: c.replies_skipped,
                icmp_sent: c.icmp_sent,
                dropped: c.dropped.iter().map(|(k, v)| (k.name().to_string(), v)).collect(),
            },
            frames: Frames { emitted: res.frames_emitted, fragments: c.fragments },
            destinations,
            connections: Connections {
                created: ts.created,
                expired: ts.expired,
                evicted: ts.evicted,
                refused: ts.refused,
                rescheduled: ts.rescheduled,
                in_table: ts.connections,
                templates: ts.templates,
                states,
            },
            events: res
                .events
                .iter()
                .map(|(at, text, r)| EventReport {
                    at_s: at.as_secs_f64(),
                    action: text.clone(),
                    ok: r.is_ok(),
                    result: match r {
                        Ok(s) | Err(s) => s.clone(),
                    },
                })
                .collect(),
            output: None,
            elapsed_s,
            rate_pps: if elapsed_s > 0.0 { c.read as f64 / elapsed_s } else { 0.0 },
            peak_rss_bytes: peak_rss_bytes(),
        }
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report for people.
    pub fn to_text(&self, pipe: &Pipeline) -> String {
        let mut s = String::new();
        let p = &self.packets;
        let _ = writeln!(s, "replay: mode {}, scheduler {}", self.mode, self.scheduler);
        let _ = writeln!(
            s,
            "capture: {} ({}{}, {}), {} frames{}{}",
            self.capture.file,
            self.capture.format,
            self.capture.compression.as_ref().map_or(String::new(), |c| format!(" in {c}")),
            self.capture.link_type,
            self.capture.frames,
            if self.capture.loops > 1 { format!(", {} loops", self.capture.loops) } else { String::new() },
            if self.capture.converted > 0 {
                format!(", {} given an Ethernet header", self.capture.converted)
            } else {
                String::new()
            },
        );
        let o = &self.capture.odd_records;
        if o.over_snaplen + o.orig_below_incl + o.fraction_over_second > 0 {
            let _ = writeln!(
                s,
                "capture: odd records read as libpcap reads them: {} longer than the snapshot length, {} with an original length below the included one, {} with a fraction of a second over a second",
                o.over_snaplen, o.orig_below_incl, o.fraction_over_second
            );
        }
        if let Some(t) = &self.capture.truncated {
            let _ = writeln!(
                s,
                "capture damaged after frame {}: {} (the frames before it were replayed)",
                t.after_frames, t.reason
            );
        }
        let dropped: u64 = p.dropped.values().sum();
        let _ = writeln!(
            s,
            "packets: {} read = {} forwarded + {} replies skipped (DR/TUN) + {} dropped; {} ICMP errors sent; {} frames emitted",
            p.read, p.forwarded, p.replies_skipped, dropped, p.icmp_sent, self.frames.emitted
        );
        if p.fragmented > 0 {
            let _ = writeln!(s, "  {} packets forwarded as {} IPv4 fragments", p.fragmented, self.frames.fragments);
        }
        if !p.dropped.is_empty() {
            let reasons: Vec<String> = p.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  dropped: {}", reasons.join(", "));
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<34} {:<8} {:>6} {:>10} {:>9} {:>8} {:>9} {:>9} {:>11} {:>11}",
            "Prot LocalAddress:Port Scheduler",
            "Forward",
            "Weight",
            "ActiveConn",
            "InActConn",
            "Conns",
            "InPkts",
            "OutPkts",
            "InBytes",
            "OutBytes"
        );
        for rt in pipe.services() {
            let proto = match rt.vip {
                Vip::Addr { proto: Some(p), .. } => p.as_str().to_uppercase(),
                Vip::Addr { proto: None, .. } => "TCP+UDP".into(),
                Vip::Any { .. } => "ANY".into(),
            };
            let vip = match rt.vip {
                Vip::Addr { addr, .. } => addr.to_string(),
                Vip::Any { v6 } => if v6 { "[::]:*" } else { "0.0.0.0:*" }.to_string(),
            };
            let _ = writeln!(s, "{proto} {vip} {}", rt.svc.scheduler_name());
            let name = rt.vip.to_string();
            for d in self.destinations.iter().filter(|d| d.service == name) {
                let addr: std::net::IpAddr = d.address.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                let ep = if addr.is_ipv6() {
                    format!("[{}]:{}", d.address, d.port)
                } else {
                    format!("{}:{}", d.address, d.port)
                };
                let _ = writeln!(
                    s,
                    "  -> {:<29} {:<8} {:>6} {:>10} {:>9} {:>8} {:>9} {:>9} {:>11} {:>11}{}",
                    ep,
                    d.fwd,
                    d.weight,
                    d.active,
                    d.inactive,
                    d.connections,
                    d.packets_in,
                    d.packets_out,
                    d.bytes_in,
                    d.bytes_out,
                    if d.removed { "  (removed)" } else { "" }
                );
            }
        }
        let c = &self.connections;
        let states: Vec<String> = c.states.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "connections: {} created, {} in the table ({}), {} expired, {} rescheduled, {} evicted, {} refused{}",
            c.created,
            c.in_table,
            if states.is_empty() { "none".into() } else { states.join(", ") },
            c.expired,
            c.rescheduled,
            c.evicted,
            c.refused,
            if c.templates > 0 { format!(", {} persistence templates", c.templates) } else { String::new() }
        );
        for e in &self.events {
            let _ = writeln!(
                s,
                "event at {:.3} s: {}: {}{}",
                e.at_s,
                e.action,
                if e.ok { "" } else { "FAILED: " },
                e.result
            );
        }
        if let Some(o) = &self.output {
            match o.completed {
                Some(c) => {
                    let _ = write!(
                        s,
                        "sent {} frames over AF_XDP on {} ({} completed by the kernel",
                        o.frames, o.target, c
                    );
                    match o.abandoned {
                        Some(a) if a > 0 => {
                            let _ = writeln!(s, "; {a} abandoned: the kernel took none for 5 s)");
                        }
                        _ => {
                            let _ = writeln!(s, ")");
                        }
                    }
                }
                None => {
                    let _ = writeln!(s, "wrote {} frames to {}", o.frames, o.target);
                }
            }
        }
        let _ = writeln!(s, "elapsed {:.3} s, {}", self.elapsed_s, rate(self.rate_pps));
        if let Some(b) = self.peak_rss_bytes {
            let _ = writeln!(s, "peak memory {:.1} MiB", b as f64 / (1 << 20) as f64);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_print_as_plain_numbers() {
        assert_eq!(rate(974_272.4), "974 272 packets/s");
        assert_eq!(rate(1_000.0), "1 000 packets/s");
        assert_eq!(rate(999.0), "999 packets/s");
        assert_eq!(rate(0.0), "0 packets/s");
        assert_eq!(rate(1_234_567.0), "1.23 Mpps");
        assert_eq!(rate(f64::NAN), "- packets/s");
    }
}
