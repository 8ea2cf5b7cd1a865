//! The director's life: check the capabilities, read the interface, build the pipeline with
//! live next hops, open one AF_XDP socket per worker, load the XDP program, put the sockets in
//! its map, attach it, say `ready`; then run the workers until SIGINT / SIGTERM, reloading the
//! rules on SIGHUP, and print the report.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_replay::capture::{CaptureInfo, OddRecords};
use lb_replay::config::{ServiceSpec, Vip};
use lb_replay::pipeline::{Counters, LiveNextHops, Pipeline, PipelineConfig};
use lb_replay::report::{OutputReport, Report};
use lb_replay::run::RunResult;
use lb_replay::xdp::{self, AttachMode, Endpoint, NextHops, ProgramLimits, XdpConfig, XdpPort, XdpProgram, XdpStats};
use lb_sched::{ForwardMethod, Protocol, Timestamp};

use crate::queue::{self, Published};
use crate::{metrics, reload, Cli};

/// The most workers (one RX queue each).
const MAX_WORKERS: usize = 64;
/// The longest `--stats` interval (a day).
const MAX_STATS: u64 = 86_400;
/// How long the director waits at start for its real servers' next hops to resolve.
const RESOLVE_WAIT: Duration = Duration::from_secs(2);
/// How often the connection table is expired.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// The capabilities the director needs, with the bit each has in `CapEff`.
const CAPS: [(&str, u32); 3] = [("CAP_NET_ADMIN", 12), ("CAP_NET_RAW", 13), ("CAP_BPF", 39)];
/// CAP_SYS_ADMIN (21) stands in for CAP_BPF on kernels before 5.8.
const CAP_SYS_ADMIN: u32 = 21;

/// The capabilities missing from this process (none when root), from `/proc/self/status`.
fn missing_capabilities() -> Vec<&'static str> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return Vec::new() };
    let Some(eff) = status.lines().find_map(|l| l.strip_prefix("CapEff:")) else { return Vec::new() };
    let Ok(bits) = u64::from_str_radix(eff.trim(), 16) else { return Vec::new() };
    let has = |b: u32| bits & (1u64 << b) != 0;
    CAPS.iter()
        .filter(|(name, b)| !(has(*b) || (*name == "CAP_BPF" && has(CAP_SYS_ADMIN))))
        .map(|(name, _)| *name)
        .collect()
}

/// The director's own addresses (on every interface), less the services' (a VIP configured on
/// the director, as IPVS has it, so its kernel answers ARP for it): their packets always go to
/// the kernel.
fn own_addresses(services: &[Endpoint]) -> Result<Vec<IpAddr>> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .context("cannot run `ip -j addr show` (iproute2) for the director's own addresses")?;
    if !out.status.success() {
        bail!("`ip -j addr show`: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("`ip -j addr show` output")?;
    let mut r = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(Ok(ip)) = a["local"].as_str().map(str::parse::<IpAddr>) {
                if !services.iter().any(|e| e.addr == ip) {
                    r.push(ip);
                }
            }
        }
    }
    Ok(r)
}

/// The number of RX queues of an interface.
fn rx_queues(iface: &str) -> Result<usize> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let Ok(rd) = std::fs::read_dir(&dir) else { bail!("--iface {iface}: no such network interface") };
    Ok(rd.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
}

/// The protocols a service takes.
fn protocols(proto: Option<Protocol>) -> Vec<u8> {
    match proto {
        Some(p) => vec![p.number()],
        None => vec![Protocol::Tcp.number(), Protocol::Udp.number()],
    }
}

/// What the XDP program sends to the sockets: the live services' (address, port, protocol),
/// and in NAT the real servers' (address, port, protocol) as the source of their replies;
/// whether a catch-all service takes everything.
fn endpoints(pipe: &Pipeline) -> (Vec<Endpoint>, Vec<Endpoint>, bool) {
    let mut services = Vec::new();
    let mut backends = Vec::new();
    let mut any = false;
    for rt in pipe.services().iter().filter(|rt| !rt.is_removed()) {
        let (proto, port) = match rt.vip {
            Vip::Addr { proto, addr } => {
                for p in protocols(proto) {
                    services.push(Endpoint { addr: addr.ip(), port: addr.port(), proto: p });
                }
                (proto, addr.port())
            }
            Vip::Any { .. } => {
                any = true;
                (None, 0)
            }
        };
        for d in rt.svc.destinations().iter() {
            if d.fwd() != ForwardMethod::Masq {
                continue;
            }
            let dport = if d.port() != 0 { d.port() } else { port };
            for p in protocols(proto) {
                backends.push(Endpoint { addr: d.addr(), port: dport, proto: p });
            }
        }
    }
    (services, backends, any)
}

/// Checks the flags of the director's own.
fn check(cli: &Cli) -> Result<()> {
    if cli.workers == 0 || cli.workers > MAX_WORKERS {
        bail!("--workers {}: from 1 to {MAX_WORKERS} (one RX queue each)", cli.workers);
    }
    if let Some(s) = cli.stats {
        if !(1..=MAX_STATS).contains(&s) {
            bail!("--stats {s}: from 1 to {MAX_STATS} seconds");
        }
    }
    XdpConfig { frame_count: cli.xdp_frames, ring_size: cli.xdp_ring, batch: cli.xdp_batch }.validate()?;
    if !matches!(cli.xdp_mode.as_str(), "auto" | "drv" | "skb") {
        bail!("--xdp-mode {:?}: auto, drv or skb", cli.xdp_mode);
    }
    Ok(())
}

/// The one-line summary of `--stats`.
fn summary(pipe: &Pipeline, published: &[Published], since: Instant) -> String {
    let c = metrics::total(published);
    format!(
        "director: {:.0} s: {} received, {} forwarded, {} dropped, {} connections",
        since.elapsed().as_secs_f64(),
        c.read,
        c.forwarded,
        c.dropped.total(),
        pipe.table.len()
    )
}

/// Runs the director until SIGINT / SIGTERM.
pub fn run(cli: Cli) -> Result<()> {
    check(&cli)?;
    let missing = missing_capabilities();
    if !missing.is_empty() {
        bail!("needs {} (run as root, or grant them)", missing.join(", "));
    }
    let Some(iface) = cli.iface.as_deref() else { bail!("--iface IF is required") };
    // Signals first: a SIGHUP or SIGINT while setting up must not kill the process half-way.
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        for sig in [SIGINT, SIGTERM] {
            // A second signal while stopping ends the process at once.
            signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))?;
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        signal_hook::flag::register(SIGHUP, Arc::clone(&hup))?;
    }
    let metrics_listener = cli.metrics.map(metrics::bind).transpose().map_err(anyhow::Error::msg)?;
    let queues = rx_queues(iface)?;
    if cli.workers > queues {
        bail!(
            "--workers {}: {iface} has {queues} RX queue(s) (one worker per queue; create a veth with numrxqueues {})",
            cli.workers,
            cli.workers
        );
    }
    let specs = cli.svc.services(None)?;
    for w in cli.svc.no_effect(&specs, false) {
        eprintln!("director: warning: {w}");
    }
    cli.svc.require_mode(&specs)?;
    let mode = cli.svc.mode()?;
    let mtu = match cli.svc.mtu {
        Some(m) => m,
        None => xdp::mtu(iface)?,
    };
    let mac = xdp::mac(iface)?;
    let hops = Arc::new(NextHops::open(iface)?);
    let live: Arc<dyn LiveNextHops> = hops.clone();
    let cfg = PipelineConfig {
        conntrack: cli.svc.conntrack()?,
        mtu,
        tun_src: cli.svc.tun_src.clone(),
        director_ips: cli.svc.director_ip.clone(),
        neigh: cli.svc.neighbours()?,
        director_mac: Some(mac),
        live_next_hops: Some(live),
        ..PipelineConfig::new(specs.clone(), mode)
    };
    let pipe = Pipeline::new(&cfg, &|_| None).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Resolve the real servers now (at most RESOLVE_WAIT), so the first connections find their
    // next hops; one that does not resolve is reported and skipped once running.
    let live_addrs: Vec<IpAddr> = specs
        .iter()
        .flat_map(|s| &s.backends)
        .filter(|b| b.mac.is_none() && !cfg.neigh.contains_key(&b.addr))
        .map(|b| b.addr)
        .collect();
    let asked = Instant::now();
    while !hops.unresolved(&live_addrs).is_empty() && asked.elapsed() < RESOLVE_WAIT {
        std::thread::sleep(Duration::from_millis(10));
    }

    // Sockets first, then the program with the sockets in its map, then the attachment.
    let xcfg = XdpConfig { frame_count: cli.xdp_frames, ring_size: cli.xdp_ring, batch: cli.xdp_batch };
    let ports = (0..cli.workers).map(|q| XdpPort::open_duplex(iface, q as u32, xcfg)).collect::<Result<Vec<_>, _>>()?;
    let (services, backends, any) = endpoints(&pipe);
    let limits = ProgramLimits {
        services: (services.len() as u32 * 2).max(64),
        backends: (backends.len() as u32 * 2).max(256),
        own: 256,
        queues: queues as u32,
    };
    let prog = XdpProgram::load(limits)?;
    prog.set_services(&services)?;
    prog.set_backends(&backends)?;
    prog.set_own(&own_addresses(&services)?)?;
    prog.set_any(any)?;
    for (q, p) in ports.iter().enumerate() {
        prog.insert_socket(q as u32, p.as_fd())?;
    }
    let link = match cli.xdp_mode.as_str() {
        "drv" => prog.attach(iface, AttachMode::Driver)?,
        "skb" => prog.attach(iface, AttachMode::Skb)?,
        _ => prog.attach(iface, AttachMode::Driver).or_else(|_| prog.attach(iface, AttachMode::Skb))?,
    };

    let published: Vec<Published> = (0..cli.workers).map(|_| Published::default()).collect();
    let start = Instant::now();
    eprintln!("ready");

    let mut reloads = Vec::new();
    let mut pipe = pipe;
    let mut ports = ports;
    // Each worker's counters, carried from one round of workers to the next.
    let mut counters: Vec<Counters> = vec![Counters::default(); cli.workers];
    let mut held = crate::unresolved::Held::default();
    // Real servers with a static next hop (`mac=`, `--neigh`) are not followed live.
    let fixed_macs: Vec<IpAddr> = specs
        .iter()
        .flat_map(|s| &s.backends)
        .filter(|b| b.mac.is_some() || cfg.neigh.contains_key(&b.addr))
        .map(|b| b.addr)
        .collect();
    let fixed = |a: IpAddr| fixed_macs.contains(&a) && !live_addrs.contains(&a);
    let mut last_expire = Instant::now();
    let mut last_stats = Instant::now();
    // Rounds: the workers run until SIGINT / SIGTERM, or until a reload adds or removes
    // services, which the pipeline takes while no worker runs (a few milliseconds; frames wait
    // in the RX rings).
    loop {
        let round = AtomicBool::new(false);
        let (pending, finals) = std::thread::scope(|s| -> Result<_> {
            let handles: Vec<_> = ports
                .iter_mut()
                .zip(&published)
                .zip(std::mem::take(&mut counters))
                .map(|((port, publ), initial)| {
                    let (pipe, round) = (&pipe, &round);
                    s.spawn(move || queue::run(pipe, port, xcfg.batch, start, round, publ, initial))
                })
                .collect();
            if let Some(l) = &metrics_listener {
                let (pipe, published, round) = (&pipe, &published[..], &round);
                s.spawn(move || metrics::serve(l, pipe, published, round));
            }
            let mut pending = None;
            while !stop.load(Ordering::Relaxed) && pending.is_none() {
                std::thread::sleep(Duration::from_millis(50));
                if last_expire.elapsed() >= EXPIRE_EVERY {
                    pipe.expire(Timestamp::from_nanos(start.elapsed().as_nanos() as u64));
                    for line in held.check(&pipe, &hops, &fixed) {
                        eprintln!("director: {line}");
                    }
                    last_expire = Instant::now();
                }
                if let Some(secs) = cli.stats {
                    if last_stats.elapsed() >= Duration::from_secs(secs) {
                        eprintln!("{}", summary(&pipe, &published, start));
                        last_stats = Instant::now();
                    }
                }
                if hup.swap(false, Ordering::Relaxed) {
                    let (events, services) = on_hup(&cli, &pipe, &prog, start.elapsed());
                    reloads.push(events);
                    pending = services;
                }
            }
            round.store(true, Ordering::Relaxed);
            let mut finals = Vec::new();
            for h in handles {
                finals.push(h.join().map_err(|_| anyhow::anyhow!("a worker panicked"))?);
            }
            Ok((pending, finals))
        })?;
        counters = finals;
        let Some((added, removed)) = pending else { break };
        let at = start.elapsed();
        let r = reload::apply_services(&mut pipe, &added, &removed);
        for a in &r.applied {
            eprintln!("director: SIGHUP: {a}");
        }
        for a in &r.refused {
            eprintln!("director: SIGHUP: not applied: {a}");
        }
        reloads.push(r.events(at));
        if let Err(e) = update_maps(&prog, &pipe) {
            eprintln!("director: SIGHUP: the XDP program's maps: {e}");
        }
    }
    let xdp_stats: Vec<XdpStats> = ports.iter_mut().map(|p| p.finish(Duration::from_secs(1))).collect();
    let counters = counters.iter().fold(Counters::default(), |mut t, c| {
        t.merge(c);
        t
    });
    // Detach before reporting: the interface is the kernel's alone again.
    drop(link);
    drop(prog);

    let elapsed = start.elapsed();
    let info = CaptureInfo {
        format: "af_xdp",
        link: "ETHERNET".into(),
        frames: counters.read,
        converted: 0,
        truncated: None,
        odd: OddRecords::default(),
        compression: None,
    };
    let res = RunResult {
        frames_emitted: xdp_stats.iter().map(|s| s.queued).sum(),
        counters,
        events: reloads.into_iter().flatten().collect(),
        elapsed,
        stopped: true,
        span: elapsed,
        input_error: None,
        partitions: Vec::new(),
    };
    let mut report = Report::new(&info, &format!("{iface} (live)"), 1, &pipe, &res);
    report.output = Some(OutputReport {
        kind: "af_xdp".into(),
        target: iface.to_string(),
        frames: xdp_stats.iter().map(|s| s.queued).sum(),
        completed: Some(xdp_stats.iter().map(|s| s.completed).sum()),
        abandoned: Some(xdp_stats.iter().map(|s| s.abandoned).sum()),
    });
    if cli.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text(&pipe).replacen("replay:", "director:", 1));
    }
    Ok(())
}

/// The XDP program's maps from the pipeline's live services.
fn update_maps(prog: &XdpProgram, pipe: &Pipeline) -> Result<(), xdp::XdpError> {
    let (services, backends, any) = endpoints(pipe);
    prog.set_services(&services)?;
    prog.set_backends(&backends)?;
    prog.set_any(any)?;
    let own = own_addresses(&services).map_err(|e| xdp::XdpError::Interface(e.to_string()))?;
    prog.set_own(&own)
}

/// A report event for each line of a reload.
type Events = Vec<(Duration, String, Result<String, String>)>;
/// Services to add and to remove.
type ServiceChanges = (Vec<ServiceSpec>, Vec<Vip>);

/// SIGHUP: the rules again; the changes within services applied at once, the program's maps
/// rewritten. What happened (the report's events, at `at`), and the services to add and remove
/// (done by the caller while no worker runs), if any.
fn on_hup(cli: &Cli, pipe: &Pipeline, prog: &XdpProgram, at: Duration) -> (Events, Option<ServiceChanges>) {
    let Some(path) = &cli.svc.rules else {
        eprintln!("director: SIGHUP: no --rules file to read again; nothing changed");
        return (Vec::new(), None);
    };
    match reload::plan(pipe, path) {
        Err(e) => {
            eprintln!("director: SIGHUP: {e}; the running configuration is kept");
            (vec![(at, "reload".into(), Err(e))], None)
        }
        Ok(plan) => {
            let r = reload::apply_actions(pipe, &plan.actions);
            for a in &r.applied {
                eprintln!("director: SIGHUP: {a}");
            }
            for a in &r.refused {
                eprintln!("director: SIGHUP: not applied: {a}");
            }
            if let Err(e) = update_maps(prog, pipe) {
                eprintln!("director: SIGHUP: the XDP program's maps: {e}");
            }
            let services = (!plan.added.is_empty() || !plan.removed.is_empty()).then_some((plan.added, plan.removed));
            (r.events(at), services)
        }
    }
}
