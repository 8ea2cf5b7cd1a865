//! The scheduler quality harness: balance, weight accuracy, disruption and build time of every
//! scheduler that hashes or balances, beside the peers `maglev-hash` and `pingora-ketama`, over
//! 1M random flows (half IPv4, half IPv6 sources).
//!
//! cargo run --release -p lb-benches --bin sched-quality [-- --json] [--flows N] [--svg FILE]
//!
//! The measurements are `lb_sched::harness`'s (feature `harness`; its docs give the method):
//! balance (max / mean, N = 10, 100, 1000), weight accuracy (N = 10, weights 1..10),
//! disruption on removing one and 1 % of the destinations beside the minimum, build time of
//! the table where there is one (median of 5). This binary adds the two peers, which are not
//! lb-sched dependencies, as `harness::Subject`s.

use std::net::{IpAddr, SocketAddr};

use lb_sched::harness::{self, Options, Subject};
use lb_sched::registry::Registry;
use lb_sched::{Flow, SchedError};

/// The built-ins measured, in the table's order.
const OURS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "sed", "nq", "twos", "sh", "dh", "mh", "maglev", "ring", "hrw", "swrr", "p2c", "random",
];

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
impl Subject for MaglevHashPeer {
    fn name(&self) -> String {
        "maglev-hash (peer)".into()
    }
    fn table_size(&self) -> Option<u32> {
        Some(65537)
    }
    fn assign(&self, fl: &[Flow], weights: &[u32], removed: &[usize]) -> Result<Vec<u32>, SchedError> {
        let nodes: Vec<u32> = (0..weights.len() as u32).filter(|i| !removed.contains(&(*i as usize))).collect();
        let t = maglev_hash::MaglevTable::with_capacity(nodes, 65537);
        Ok(fl.iter().map(|f| *t.get(&key(f)).unwrap()).collect())
    }
    fn build_us(&self, weights: &[u32]) -> Result<Option<f64>, SchedError> {
        let nodes: Vec<u32> = (0..weights.len() as u32).collect();
        harness::median_us(|| {
            std::hint::black_box(maglev_hash::MaglevTable::with_capacity(nodes.clone(), 65537));
            Ok(())
        })
        .map(Some)
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
            .map(|(i, &w)| pingora_ketama::Bucket::new(SocketAddr::new(harness::addr(i), 80), w.max(1)))
            .collect();
        pingora_ketama::Continuum::new(&buckets)
    }
}
impl Subject for KetamaPeer {
    fn name(&self) -> String {
        "pingora-ketama (peer)".into()
    }
    fn table_size(&self) -> Option<u32> {
        None
    }
    fn assign(&self, fl: &[Flow], weights: &[u32], removed: &[usize]) -> Result<Vec<u32>, SchedError> {
        let c = Self::ring(weights, removed);
        Ok(fl
            .iter()
            .map(|f| match c.node(&key(f)).map(|a| a.ip()) {
                Some(IpAddr::V4(v4)) => u32::from(v4) - 0x0a00_0000,
                _ => u32::MAX,
            })
            .collect())
    }
    fn build_us(&self, weights: &[u32]) -> Result<Option<f64>, SchedError> {
        harness::median_us(|| {
            std::hint::black_box(Self::ring(weights, &[]));
            Ok(())
        })
        .map(Some)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let n_flows: usize = arg("--flows").and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let svg = arg("--svg").unwrap_or_else(|| "benches/sched-quality.svg".into());
    let opts = Options { flows: n_flows, progress: true, ..Options::default() };
    let ours = harness::registry_subjects(Registry::builtin(), Some(OURS), &opts).expect("built-in names");
    let mut subjects: Vec<&dyn Subject> = ours.iter().map(|s| s as &dyn Subject).collect();
    subjects.push(&MaglevHashPeer);
    subjects.push(&KetamaPeer);
    let results = harness::measure_subjects(&subjects, &opts).unwrap_or_else(|e| {
        eprintln!("sched-quality: {e}");
        std::process::exit(1)
    });
    if let Err(e) = harness::svg(&results, &svg) {
        eprintln!("sched-quality: cannot write the chart {svg}: {e}");
    } else {
        eprintln!("chart written to {svg}");
    }
    if json {
        println!("{}", harness::to_json(&results));
        return;
    }
    print!("{}", harness::table(&results));
}
