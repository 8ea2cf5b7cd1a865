//! `--metrics ADDR:PORT`: `/metrics` in the Prometheus text exposition format (version 0.0.4),
//! served by a thread of its own from the counters the workers publish (read, never locked).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lb_replay::pipeline::{Counters, Pipeline};

use crate::queue::Published;

/// The counters of every worker, summed.
pub fn total(published: &[Published]) -> Counters {
    let mut c = Counters::default();
    for p in published {
        c.merge(&p.counters.load());
    }
    c
}

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The exposition: packets by verdict, drops by reason, and per service and destination the
/// connections (active, inactive, scheduled), packets and bytes each way, and the weight.
pub fn render(pipe: &Pipeline, published: &[Published]) -> String {
    let c = total(published);
    let mut s = String::new();
    let family = |s: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(&mut s, "lbkit_packets_total", "counter", "Packets by what the director did with them.");
    for (v, n) in [
        ("received", c.read),
        ("forwarded", c.forwarded),
        ("fragmented", c.fragmented),
        ("reply_skipped", c.replies_skipped),
        ("dropped", c.dropped.total()),
    ] {
        let _ = writeln!(s, "lbkit_packets_total{{verdict=\"{v}\"}} {n}");
    }
    family(&mut s, "lbkit_icmp_sent_total", "counter", "ICMP errors the director built and sent.");
    let _ = writeln!(s, "lbkit_icmp_sent_total {}", c.icmp_sent);
    family(&mut s, "lbkit_drops_total", "counter", "Packets dropped, by reason.");
    for (why, n) in c.dropped.iter() {
        let _ = writeln!(s, "lbkit_drops_total{{reason=\"{}\"}} {n}", why.name());
    }
    let xdp = published.iter().fold((0u64, 0u64), |(r, q), p| {
        let x = p.xdp.load();
        (r + x.received, q + x.queued)
    });
    family(&mut s, "lbkit_xdp_frames_total", "counter", "Frames through the AF_XDP sockets.");
    let _ = writeln!(s, "lbkit_xdp_frames_total{{direction=\"rx\"}} {}", xdp.0);
    let _ = writeln!(s, "lbkit_xdp_frames_total{{direction=\"tx\"}} {}", xdp.1);
    let mut rows = Vec::new();
    for (si, rt) in pipe.services().iter().enumerate() {
        for d in rt.svc.destinations().iter() {
            let k = c.dests.get(si).and_then(|v| v.get(d.id().0 as usize)).copied().unwrap_or_default();
            let labels = format!(
                "service=\"{}\",address=\"{}\",port=\"{}\"",
                label(&rt.vip.to_string()),
                label(&d.addr().to_string()),
                d.port()
            );
            rows.push((labels, d.active_conns(), d.inactive_conns(), d.weight(), k));
        }
    }
    family(&mut s, "lbkit_destination_connections", "gauge", "Connections of a destination now, by state.");
    for (l, active, inactive, _, _) in &rows {
        let _ = writeln!(s, "lbkit_destination_connections{{{l},state=\"active\"}} {active}");
        let _ = writeln!(s, "lbkit_destination_connections{{{l},state=\"inactive\"}} {inactive}");
    }
    family(&mut s, "lbkit_destination_weight", "gauge", "A destination's weight.");
    for (l, _, _, w, _) in &rows {
        let _ = writeln!(s, "lbkit_destination_weight{{{l}}} {w}");
    }
    family(&mut s, "lbkit_destination_connections_total", "counter", "Connections scheduled to a destination.");
    for (l, _, _, _, k) in &rows {
        let _ = writeln!(s, "lbkit_destination_connections_total{{{l}}} {}", k.connections);
    }
    family(&mut s, "lbkit_destination_packets_total", "counter", "Packets of a destination's connections.");
    for (l, _, _, _, k) in &rows {
        let _ = writeln!(s, "lbkit_destination_packets_total{{{l},direction=\"in\"}} {}", k.packets_in);
        let _ = writeln!(s, "lbkit_destination_packets_total{{{l},direction=\"out\"}} {}", k.packets_out);
    }
    family(&mut s, "lbkit_destination_bytes_total", "counter", "Bytes of a destination's connections.");
    for (l, _, _, _, k) in &rows {
        let _ = writeln!(s, "lbkit_destination_bytes_total{{{l},direction=\"in\"}} {}", k.bytes_in);
        let _ = writeln!(s, "lbkit_destination_bytes_total{{{l},direction=\"out\"}} {}", k.bytes_out);
    }
    family(&mut s, "lbkit_connections", "gauge", "Entries in the connection table.");
    let _ = writeln!(s, "lbkit_connections {}", pipe.table.len());
    s
}

/// Answers one HTTP request: `GET /metrics` with the exposition, anything else 404.
fn answer(mut stream: TcpStream, pipe: &Pipeline, published: &[Published]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut req = [0u8; 2048];
    let mut n = 0;
    // Read the request head (bounded).
    while n < req.len() {
        match stream.read(&mut req[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                n += k;
                if req[..n].windows(4).any(|w| w == b"\r\n\r\n") || req[..n].windows(2).any(|w| w == b"\n\n") {
                    break;
                }
            }
        }
    }
    let head = String::from_utf8_lossy(&req[..n]);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body, kind) = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
        ("200 OK", render(pipe, published), "text/plain; version=0.0.4; charset=utf-8")
    } else {
        ("404 Not Found", "not found: try /metrics\n".to_string(), "text/plain; charset=utf-8")
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Binds `addr` (an error names it).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let l = TcpListener::bind(addr).map_err(|e| format!("--metrics {addr}: {e}"))?;
    l.set_nonblocking(true).map_err(|e| format!("--metrics {addr}: {e}"))?;
    Ok(l)
}

/// Serves until `stop` is set (checked every 50 ms), one request at a time.
pub fn serve(l: &TcpListener, pipe: &Pipeline, published: &[Published], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                answer(stream, pipe, published);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
