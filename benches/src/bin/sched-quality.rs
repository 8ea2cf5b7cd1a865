//! The scheduler quality harness: balance, weight accuracy, disruption and build time of every
//! scheduler that hashes or balances, beside the peers `maglev-hash` and `pingora-ketama`, over
//! 1M random flows (half IPv4, half IPv6 sources).
//!
//! cargo run --release -p lb-benches --bin sched-quality [-- --json] [--flows N] [--svg FILE]
//!
//! * balance: max / mean of flows per destination, N = 10, 100, 1000, equal weights;
//! * weight accuracy (N = 10, weights 1..10): the worst relative error of a destination's share
//!   against weight / Σweights;
//! * disruption: % of flows that change destination when one destination is removed, and when
//!   1 % are removed (at least one), beside the minimum possible (the removed ones' own share);
//! * build time of the table where there is one (median of 5).
//!
//! Connection schedulers (rr wrr lc wlc sed nq twos) see every flow as a new connection that
//! is established and stays open (each pick is bound to its destination as an active
//! connection, so lc/wlc/sed/nq/twos see the load);
//! "disruption" for them compares the assignment of the same flows, in the same order, by a
//! fresh service before and after the removal.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use lb_sched::{registry, DestConfig, Flow, Protocol, SchedConfig, Service};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn flows(n: usize) -> Vec<Flow> {
    let mut r = Rng(0x05ee_d0ff_10e5);
    (0..n)
        .map(|i| {
            let (a, b, c) = (r.next(), r.next(), r.next());
            if i % 2 == 0 {
                Flow::v4(Protocol::Tcp, Ipv4Addr::from(a as u32), (a >> 32) as u16, Ipv4Addr::from(b as u32), 80)
            } else {
                Flow::v6(
                    Protocol::Tcp,
                    Ipv6Addr::from((u128::from(a) << 64) | u128::from(b)),
                    (c >> 48) as u16,
                    Ipv6Addr::from((u128::from(c) << 64) | u128::from(a)),
                    443,
                )
            }
        })
        .collect()
}

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32))
}

/// Something that maps flows to destination indices (0..n of the full set).
trait Assign {
    fn name(&self) -> String;
    fn table_size(&self) -> Option<u32>;
    /// Assigns every flow, with destinations `weights` (index = destination id) minus `removed`.
    fn assign(&self, fl: &[Flow], weights: &[u32], removed: &[usize]) -> Vec<u32>;
    /// Build time of one table with these weights, µs (None: no table).
    fn build_us(&self, weights: &[u32]) -> Option<f64>;
}

struct Ours(&'static str);

impl Ours {
    fn service(&self, weights: &[u32], removed: &[usize]) -> (Service, HashMap<IpAddr, u32>) {
        let s = Service::new(self.0, SchedConfig::default()).unwrap();
        let mut ids = HashMap::new();
        for (i, &w) in weights.iter().enumerate() {
            if !removed.contains(&i) {
                s.add(DestConfig::new(addr(i), 80).weight(w)).unwrap();
                ids.insert(addr(i), i as u32);
            }
        }
        (s, ids)
    }
}

impl Assign for Ours {
    fn name(&self) -> String {
        self.0.to_string()
    }
    fn table_size(&self) -> Option<u32> {
        match self.0 {
            "sh" | "dh" => Some(256),
            "mh" => Some(4093),
            "maglev" => Some(65537),
            _ => None,
        }
    }
    fn assign(&self, fl: &[Flow], weights: &[u32], removed: &[usize]) -> Vec<u32> {
        let (s, ids) = self.service(weights, removed);
        let mut r = s.reader();
        fl.iter()
            .map(|f| match r.pick(f) {
                Some(d) => {
                    // An established connection: counted active, as lc/wlc/sed/nq/twos see it.
                    d.bind_conn(false);
                    d.conn_moved(true);
                    ids[&d.addr()]
                }
                None => u32::MAX,
            })
            .collect()
    }
    fn build_us(&self, weights: &[u32]) -> Option<f64> {
        self.table_size()?;
        let (s, _) = self.service(weights, &[]);
        let dests = s.destinations();
        let mut t: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(registry::build(self.0, &SchedConfig::default(), &dests).unwrap());
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(f64::total_cmp);
        Some(t[2])
    }
}

fn key(f: &Flow) -> [u8; 37] {
    let mut k = [0u8; 37];
    let a = |ip: IpAddr| match ip {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    };
    k[..16].copy_from_slice(&a(f.src));
    k[16..32].copy_from_slice(&a(f.dst));
    k[32..34].copy_from_slice(&f.src_port.to_be_bytes());
    k[34..36].copy_from_slice(&f.dst_port.to_be_bytes());
    k[36] = f.proto.number();
    k
}

/// `maglev-hash`: the paper's Maglev (no weights; M = 65537).
struct MaglevHashPeer;
impl Assign for MaglevHashPeer {
    fn name(&self) -> String {
        "maglev-hash (peer)".into()
    }
    fn table_size(&self) -> Option<u32> {
        Some(65537)
    }
    fn assign(&self, fl: &[Flow], weights: &[u32], removed: &[usize]) -> Vec<u32> {
        let nodes: Vec<u32> = (0..weights.len() as u32).filter(|i| !removed.contains(&(*i as usize))).collect();
        let t = maglev_hash::MaglevTable::with_capacity(nodes, 65537);
        fl.iter().map(|f| *t.get(&key(f)).unwrap()).collect()
    }
    fn build_us(&self, weights: &[u32]) -> Option<f64> {
        let nodes: Vec<u32> = (0..weights.len() as u32).collect();
        let mut t: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(maglev_hash::MaglevTable::with_capacity(nodes.clone(), 65537));
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(f64::total_cmp);
        Some(t[2])
    }
}

/// `pingora-ketama`: a ketama ring (160 points per unit of weight).
struct KetamaPeer;
impl KetamaPeer {
    fn ring(weights: &[u32], removed: &[usize]) -> pingora_ketama::Continuum {
        let buckets: Vec<pingora_ketama::Bucket> = weights
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed.contains(i))
            .map(|(i, &w)| pingora_ketama::Bucket::new(SocketAddr::new(addr(i), 80), w.max(1)))
            .collect();
        pingora_ketama::Continuum::new(&buckets)
    }
}
impl Assign for KetamaPeer {
    fn name(&self) -> String {
        "pingora-ketama (peer)".into()
    }
    fn table_size(&self) -> Option<u32> {
        None
    }
    fn assign(&self, fl: &[Flow], weights: &[u32], removed: &[usize]) -> Vec<u32> {
        let c = Self::ring(weights, removed);
        fl.iter()
            .map(|f| match c.node(&key(f)).map(|a| a.ip()) {
                Some(IpAddr::V4(v4)) => u32::from(v4) - 0x0a00_0000,
                _ => u32::MAX,
            })
            .collect()
    }
    fn build_us(&self, weights: &[u32]) -> Option<f64> {
        let mut t: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(Self::ring(weights, &[]));
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(f64::total_cmp);
        Some(t[2])
    }
}

#[derive(serde::Serialize)]
struct Row {
    scheduler: String,
    backends: usize,
    table_size: Option<u32>,
    max_over_mean: f64,
    weight_error_pct: Option<f64>,
    disruption_remove_one_pct: f64,
    minimal_disruption_pct: f64,
    disruption_remove_1pct_pct: f64,
    minimal_disruption_1pct_pct: f64,
    build_us: Option<f64>,
}

fn pct_changed(a: &[u32], b: &[u32]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 * 100.0 / a.len() as f64
}

fn measure(s: &dyn Assign, fl: &[Flow], n: usize) -> Row {
    let eq = vec![1u32; n];
    let base = s.assign(fl, &eq, &[]);
    let mut counts = vec![0u64; n];
    for &d in &base {
        if (d as usize) < n {
            counts[d as usize] += 1;
        }
    }
    let mean = fl.len() as f64 / n as f64;
    let max_over_mean = *counts.iter().max().unwrap() as f64 / mean;
    // Remove one (the middle one), then 1 % (every 100th, at least one).
    let one = [n / 2];
    let after_one = s.assign(fl, &eq, &one);
    let own_one = base.iter().filter(|&&d| d as usize == one[0]).count() as f64 * 100.0 / fl.len() as f64;
    let many: Vec<usize> = (0..n).step_by(100).map(|i| i + 50.min(n - 1 - i)).collect();
    let after_many = s.assign(fl, &eq, &many);
    let own_many = base.iter().filter(|&&d| many.contains(&(d as usize))).count() as f64 * 100.0 / fl.len() as f64;
    let weight_error_pct = (n == 10).then(|| {
        let w: Vec<u32> = (1..=10).collect();
        let total: u32 = w.iter().sum();
        let got = s.assign(fl, &w, &[]);
        let mut c = [0u64; 10];
        for &d in &got {
            if (d as usize) < 10 {
                c[d as usize] += 1;
            }
        }
        (0..10)
            .map(|i| {
                let want = f64::from(w[i]) / f64::from(total);
                let share = c[i] as f64 / fl.len() as f64;
                (share - want).abs() / want * 100.0
            })
            .fold(0.0, f64::max)
    });
    Row {
        scheduler: s.name(),
        backends: n,
        table_size: s.table_size(),
        max_over_mean,
        weight_error_pct,
        disruption_remove_one_pct: pct_changed(&base, &after_one),
        minimal_disruption_pct: own_one,
        disruption_remove_1pct_pct: pct_changed(&base, &after_many),
        minimal_disruption_1pct_pct: own_many,
        build_us: s.build_us(&eq),
    }
}

fn chart(rows: &[Row], path: &str) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax = rows.iter().map(|r| r.disruption_remove_one_pct).fold(1.0, f64::max).min(100.0) * 1.05;
    let mut c = ChartBuilder::on(&root)
        .caption("flows moved when one destination is removed (%)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((8f64..1200f64).log_scale(), (0.05f64..ymax).log_scale())?;
    c.configure_mesh().x_desc("destinations (N)").y_desc("% of flows moved").draw()?;
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.scheduler.as_str()) {
            names.push(&r.scheduler);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.scheduler == *name)
            .map(|r| (r.backends as f64, r.disruption_remove_one_pct.max(0.06)))
            .collect();
        c.draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    let ideal: Vec<(f64, f64)> = [10.0, 100.0, 1000.0].iter().map(|&n| (n, 100.0 / n)).collect();
    c.draw_series(LineSeries::new(ideal, BLACK.stroke_width(1)))?
        .label("minimum (1/N)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let n_flows: usize = arg("--flows").and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let svg = arg("--svg").unwrap_or_else(|| "benches/sched-quality.svg".into());
    let fl = flows(n_flows);
    let mut subjects: Vec<Box<dyn Assign>> =
        ["rr", "wrr", "lc", "wlc", "sed", "nq", "twos", "sh", "dh", "mh", "maglev"]
            .into_iter()
            .map(|n| Box::new(Ours(n)) as Box<dyn Assign>)
            .collect();
    subjects.push(Box::new(MaglevHashPeer));
    subjects.push(Box::new(KetamaPeer));
    let mut rows = Vec::new();
    for s in &subjects {
        for n in [10usize, 100, 1000] {
            let t = Instant::now();
            rows.push(measure(s.as_ref(), &fl, n));
            eprintln!("{} N={n}: {:.1} s", s.name(), t.elapsed().as_secs_f64());
        }
    }
    if let Err(e) = chart(&rows, &svg) {
        eprintln!("sched-quality: cannot write the chart {svg}: {e}");
    } else {
        eprintln!("chart written to {svg}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return;
    }
    println!("{n_flows} flows (half IPv4, half IPv6 sources); weights equal except the weight column (N = 10, weights 1..10)\n");
    println!("| scheduler | N | table | max/mean | weight error % | moved, remove 1 (%) | minimum (%) | moved, remove 1 % (%) | minimum (%) | build (µs) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.3} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.scheduler,
            r.backends,
            r.table_size.map_or("-".into(), |t| t.to_string()),
            r.max_over_mean,
            r.weight_error_pct.map_or("".into(), |w| format!("{w:.2}")),
            r.disruption_remove_one_pct,
            r.minimal_disruption_pct,
            r.disruption_remove_1pct_pct,
            r.minimal_disruption_1pct_pct,
            r.build_us.map_or("-".into(), |b| format!("{b:.0}")),
        );
    }
}
