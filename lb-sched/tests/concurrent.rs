//! Hot reconfiguration: threads pick while another adds, removes, quiesces and reweights. No pick
//! that begins after an update returned may return a destination that update removed or quiesced.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use lb_sched::{DestConfig, SchedConfig, SchedFlags, Service};

const MAX_IDS: usize = 1 << 17;

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

fn run(name: &str, flags: u32) {
    let cfg = SchedConfig { flags: SchedFlags(flags), ..SchedConfig::default() };
    let svc = Arc::new(Service::new(name, cfg).unwrap());
    for i in 0..8 {
        svc.add(DestConfig::new(addr(i), 80).weight(1 + i % 3)).unwrap();
    }
    // forbidden_at[id] = the update sequence number after which destination `id` must never be
    // returned (0: never forbidden). Removal and quiescing are the only forbidding updates, and
    // the updater never revives a destination, so "forbidden" is permanent.
    let forbidden_at: Arc<Vec<AtomicU64>> = Arc::new((0..MAX_IDS).map(|_| AtomicU64::new(0)).collect());
    let seq = Arc::new(AtomicU64::new(0));
    let updating = Arc::new(AtomicBool::new(true));
    let overlapping = Arc::new(AtomicU64::new(0));

    let pickers: Vec<_> = (0..2)
        .map(|t| {
            let (svc, forbidden_at, seq, updating, overlapping) =
                (svc.clone(), forbidden_at.clone(), seq.clone(), updating.clone(), overlapping.clone());
            std::thread::spawn(move || {
                let mut violations = Vec::new();
                let mut k = 0u32;
                let deadline = Instant::now() + Duration::from_secs(20);
                while updating.load(SeqCst) && Instant::now() < deadline {
                    let f = tcp_from(&format!("192.0.{}.{}", t, k % 250), (k % 60000) as u16);
                    k += 1;
                    let s0 = seq.load(SeqCst);
                    if let Some(d) = svc.pick(&f) {
                        let fa = forbidden_at[d.id().0 as usize].load(SeqCst);
                        if fa != 0 && fa <= s0 {
                            violations.push((d.id(), fa, s0));
                        }
                    }
                    if updating.load(SeqCst) {
                        overlapping.fetch_add(1, SeqCst);
                    }
                }
                violations
            })
        })
        .collect();

    // The updater: bounded in count and time.
    let mut next = 8u32;
    let mut live: Vec<u32> = (0..8).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut round = 0u32;
    while (round < 600 || overlapping.load(SeqCst) < 20_000) && round < 100_000 && Instant::now() < deadline {
        round += 1;
        // Add a fresh destination.
        let d = svc.add(DestConfig::new(addr(next), 80).weight(1 + next % 5)).unwrap();
        assert!((d.id().0 as usize) < MAX_IDS || next > MAX_IDS as u32);
        live.push(next);
        next += 1;
        // Reweight one live destination (non-zero to non-zero).
        let r = live[(round as usize * 7) % live.len()];
        svc.edit(DestConfig::new(addr(r), 80).weight(1 + round % 9)).unwrap();
        // Quiesce one and remove another, keeping a few live.
        if live.len() > 6 {
            let q = live.remove((round as usize * 13) % live.len());
            let d = svc.edit(DestConfig::new(addr(q), 80).weight(0)).unwrap();
            let s = seq.load(SeqCst) + 1;
            forbidden_at[d.id().0 as usize].store(s, SeqCst);
            seq.store(s, SeqCst);
            // Quiesced ones are removed later, from the front of the list of quiesced.
            let victim = live.remove((round as usize * 5) % live.len());
            let d = svc.remove(addr(victim), 80).unwrap();
            let s = seq.load(SeqCst) + 1;
            forbidden_at[d.id().0 as usize].store(s, SeqCst);
            seq.store(s, SeqCst);
            let _ = svc.remove(addr(q), 80);
        }
        if next as usize >= MAX_IDS - 4 {
            break;
        }
    }
    updating.store(false, SeqCst);
    let mut all = Vec::new();
    for p in pickers {
        all.extend(p.join().unwrap());
    }
    let n = overlapping.load(SeqCst);
    assert!(
        all.is_empty(),
        "{name}: {} picks returned a destination removed or quiesced before they began: {:?}",
        all.len(),
        &all[..all.len().min(5)]
    );
    assert!(n >= 10_000, "{name}: only {n} picks overlapped the updates");
    // Counters of ids advanced: the updater really changed the service many times.
    assert!(seq.load(SeqCst) >= 100, "{name}: only {} forbidding updates", seq.load(SeqCst));
}

#[test]
fn picks_never_see_removed_or_quiesced_destinations() {
    for (name, flags) in
        [("rr", 0), ("wrr", 0), ("wlc", 0), ("twos", 0), ("sh", 0x08), ("mh", 0x08), ("maglev", 0x08), ("dh", 0)]
    {
        run(name, flags);
    }
}
