//! Bytes per connection of lb-conntrack at 1M connections, table overhead included, measured as
//! the growth of the process's resident memory (`/proc/self/statm`), IPv4 and IPv6.
//!
//! cargo run --release -p lb-benches --bin conntrack-mem [-- N]

use std::net::{Ipv4Addr, Ipv6Addr};

use lb_conntrack::{Config, ConnTable, ServiceParams};
use lb_sched::{DestConfig, Flow, ForwardMethod, Protocol, SchedConfig, Service, TcpFlags, Timestamp};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux only)");
    let resident: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    resident * 4096
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let p = ServiceParams::default();
    let (e4, e6) = ConnTable::entry_sizes();
    println!("entry sizes: IPv4 {e4} B, IPv6 {e6} B");
    for (fwd, v6) in [
        (ForwardMethod::Masq, false),
        (ForwardMethod::DirectRoute, false),
        (ForwardMethod::Masq, true),
        (ForwardMethod::DirectRoute, true),
    ] {
        let svc = Service::new("wlc", SchedConfig::default()).unwrap();
        for i in 0..8u32 {
            svc.add(DestConfig::new(Ipv4Addr::from(0x0a00_0000 + i).into(), 80).fwd(fwd)).unwrap();
        }
        let before = rss_bytes();
        let tb = ConnTable::new(Config { max_connections: n + 1024, ..Config::default() });
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
        let t = Timestamp::from_secs(1);
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = if v6 {
                Flow::v6(
                    Protocol::Tcp,
                    Ipv6Addr::from(u128::from(x) << 32 | 0x2001_0db8),
                    (x >> 48) as u16,
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                    443,
                )
            } else {
                Flow::v4(Protocol::Tcp, Ipv4Addr::from(x as u32), (x >> 32) as u16, Ipv4Addr::new(198, 51, 100, 1), 80)
            };
            tb.input(t, &f, TcpFlags::SYN, &svc, &p);
            tb.input(t, &f, TcpFlags::ACK, &svc, &p);
        }
        let after = rss_bytes();
        let held = tb.len();
        println!(
            "{} {}: {held} connections, RSS +{:.1} MiB = {:.1} B/connection; table's own count {:.1} B/connection",
            if v6 { "IPv6" } else { "IPv4" },
            if fwd == ForwardMethod::Masq { "NAT (forward and reverse index)" } else { "DR (forward index)" },
            (after - before) as f64 / 1048576.0,
            (after - before) as f64 / held as f64,
            tb.memory_bytes() as f64 / held as f64,
        );
        drop(tb);
    }
}
