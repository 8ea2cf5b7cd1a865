//! `replay`: drive a capture through an IPVS-style director (NAT, DR or TUN) and see what it
//! emits. See `replay --help`.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{CommandFactory, Parser};
use lb_replay::args::{Demo, ServiceArgs};
use lb_replay::capture::{same_file, CaptureReader, PcapOut};
use lb_replay::config::parse_mac;
use lb_replay::pipeline::{Action, Pipeline, PipelineConfig};
use lb_replay::report::Report;
use lb_replay::run::{parse_event, run, NullOutput, Output, Pacing, PcapOutput, RunConfig};

mod af_xdp;
mod flags;

/// The bundled sample capture (replay/data/sample.pcap, built by make_sample.py).
const SAMPLE: &[u8] = include_bytes!("../../../data/sample.pcap");
/// The demo service's virtual address, which the sample's clients talk to.
const DEMO_VIP: &str = "198.51.100.10:80";
/// The demo service's backends.
const DEMO_BACKENDS: [&str; 3] =
    ["10.0.0.1,mac=02:00:00:00:01:01", "10.0.0.2,mac=02:00:00:00:01:02", "10.0.0.3,mac=02:00:00:00:01:03"];

/// What the exit status says (also in the README).
const EXIT_STATUS: &str = "\
Exit status:
  0        success (warnings allowed, e.g. an --at time after the last packet)
  2        a bad flag or file, or a refusal (nothing was replayed)
  3        the replay ran, but the capture was damaged or an --at event matched nothing
           (the report is printed)
  130/143  stopped by SIGINT / SIGTERM: the output holds what was done, the report is printed";

/// Replay a capture through an IPVS-style director and report what it did.
///
/// With no INPUT and no services, the bundled sample (30 HTTP connections to 198.51.100.10:80)
/// is replayed against a demo service with three backends: `replay --mode dr` works anywhere.
#[derive(Parser, Debug)]
#[command(
    name = "replay",
    version,
    about = "Replay a capture through an IPVS-style director (NAT, DR or TUN) and report what it did",
    long_about = None,
    after_help = EXIT_STATUS
)]
struct Cli {
    /// pcap or pcapng capture; none = the bundled sample.
    input: Option<PathBuf>,
    /// Services, forwarding, scheduling and the connection table (shared with `director`).
    #[command(flatten)]
    svc: ServiceArgs,
    /// An operator event, SECS:ACTION after the first packet: drain=ADDR, weight=ADDR:W,
    /// remove=ADDR, add=BACKEND-SPEC.
    #[arg(long = "at")]
    at: Vec<String>,
    /// Write what the director emits to this pcap.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Send it over AF_XDP on this interface (one queue per worker).
    #[arg(long, conflicts_with = "out")]
    iface: Option<String>,
    /// AF_XDP: UMEM frames per socket.
    #[arg(long, default_value_t = 4096)]
    xdp_frames: u32,
    /// AF_XDP: TX and completion ring size (a power of two).
    #[arg(long, default_value_t = 2048)]
    xdp_ring: u32,
    /// AF_XDP: frames fed to the TX ring per wake-up.
    #[arg(long, default_value_t = 64)]
    xdp_batch: usize,
    /// The director's MAC (default: the MAC the capture's frames were sent to).
    #[arg(long)]
    director_mac: Option<String>,
    /// Send as fast as possible.
    #[arg(long, conflicts_with_all = ["pps", "multiplier"])]
    topspeed: bool,
    /// Send at this many packets per second.
    #[arg(long, conflicts_with = "multiplier")]
    pps: Option<f64>,
    /// Speed up (or slow down) the capture's own timing.
    #[arg(long)]
    multiplier: Option<f64>,
    /// Cut any gap in the capture longer than this (seconds) short when pacing, as tcpreplay's
    /// --maxsleep does (the director's clock still follows the capture).
    #[arg(long)]
    maxsleep: Option<f64>,
    /// Go through the capture N times.
    #[arg(long = "loop", default_value_t = 1)]
    loops: u32,
    /// Worker threads; flows are sharded over them.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) and exit.
    #[arg(long, value_name = "SHELL")]
    completions: Option<clap_complete::Shell>,
    /// Print the man page (roff) and exit.
    #[arg(long)]
    man: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("replay: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The most worker threads: one thread, one output queue and one share of the capture each.
const MAX_WORKERS: usize = 1024;

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        clap_complete::generate(shell, &mut Cli::command(), "replay", &mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    if cli.man {
        clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    }
    let (stop, signal_status) = stop_on_signals()?;
    if cli.workers == 0 || cli.workers > MAX_WORKERS {
        bail!("--workers {}: from 1 to {MAX_WORKERS} (each worker is a thread with its own output queue)", cli.workers);
    }
    if cli.loops == 0 {
        bail!("--loop must be at least 1");
    }
    if let Some(out) = &cli.out {
        for (what, input) in [("the input capture", &cli.input), ("the --rules file", &cli.svc.rules)] {
            if input.as_deref().is_some_and(|i| same_file(out, i)) {
                bail!(
                    "--out {}: that is {what}; write the output elsewhere (replay never replaces what it reads)",
                    out.display()
                );
            }
        }
    }
    let xdp_sizes = af_xdp::Sizes { frames: cli.xdp_frames, ring: cli.xdp_ring, batch: cli.xdp_batch };
    if cli.iface.is_some() {
        af_xdp::check(&xdp_sizes)?;
    }
    let mode = cli.svc.mode()?;
    // The demo service goes with the bundled sample only.
    let demo = cli.input.is_none().then_some(Demo { vip: DEMO_VIP, backends: &DEMO_BACKENDS });
    let services = cli.svc.services(demo)?;
    flags::check_ranges(&cli)?;
    for w in flags::no_effect(&cli, &services) {
        eprintln!("replay: warning: {w}");
    }
    cli.svc.require_mode(&services)?;
    let neigh = cli.svc.neighbours()?;
    let conntrack = cli.svc.conntrack()?;
    let events = cli.at.iter().map(|a| parse_event(a).map_err(anyhow::Error::from)).collect::<Result<Vec<_>>>()?;
    flags::check_event_targets(&events, &services)?;
    let future_backends = events
        .iter()
        .filter_map(|e| match &e.action {
            Action::Add(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let mut director_mac = cli.director_mac.as_deref().map(parse_mac).transpose()?;
    let mut mtu = cli.svc.mtu.unwrap_or(1500);
    let mut kernel_neigh = Vec::new();
    if let Some(iface) = &cli.iface {
        // The interface's own facts: its MTU, MAC and neighbours; enough TX queues for the workers.
        let facts = af_xdp::facts(iface, cli.svc.mtu, director_mac, cli.workers)?;
        mtu = facts.mtu;
        director_mac = Some(facts.mac);
        kernel_neigh = facts.neighbours;
    }
    let cfg = PipelineConfig {
        services,
        mode,
        conntrack,
        mtu,
        tun_src: cli.svc.tun_src.clone(),
        director_ips: cli.svc.director_ip.clone(),
        neigh,
        director_mac,
        future_backends,
        live_next_hops: None,
    };
    let resolve = |a: IpAddr| kernel_neigh.iter().find(|(x, _)| *x == a).map(|(_, m)| *m);
    let pipe = Pipeline::new(&cfg, &resolve).map_err(|e| match &cli.iface {
        Some(i) => anyhow::anyhow!("{e} (nor is it in the kernel's neighbour table for {i})"),
        None => anyhow::anyhow!("{e}"),
    })?;

    let (mut cap, file) = match &cli.input {
        Some(p) if p == Path::new("-") => {
            if cli.loops > 1 {
                bail!("--loop {}: standard input can be read only once; give the capture as a file", cli.loops);
            }
            (CaptureReader::open(p)?, "<standard input>".to_string())
        }
        Some(p) => (CaptureReader::open(p)?, p.display().to_string()),
        None => (CaptureReader::from_bytes(Path::new("<bundled sample>"), SAMPLE)?, "<bundled sample>".to_string()),
    };
    let pacing = if cli.topspeed {
        Pacing::Topspeed
    } else if let Some(pps) = cli.pps {
        if pps.is_nan() || pps <= 0.0 {
            bail!("--pps must be positive");
        }
        Pacing::Pps(pps)
    } else {
        let m = cli.multiplier.unwrap_or(1.0);
        if m.is_nan() || m <= 0.0 {
            bail!("--multiplier must be positive");
        }
        Pacing::Capture(m)
    };
    let rc = RunConfig {
        events,
        pacing,
        loops: cli.loops,
        workers: cli.workers,
        progress: std::io::stderr().is_terminal(),
        stop: Some(Arc::clone(&stop)),
        max_gap: cli.maxsleep.map(std::time::Duration::from_secs_f64),
    };
    let pcap = match &cli.out {
        Some(p) => Some(PcapOutput::new(PcapOut::create(p)?)),
        None => None,
    };
    let out: &dyn Output = match &pcap {
        Some(p) => p,
        None => &NullOutput,
    };
    let mut xdp_report = None;
    let res = match &cli.iface {
        Some(iface) => {
            let (res, out) = af_xdp::run(iface, xdp_sizes, &mut cap, &pipe, &rc)?;
            xdp_report = Some(out);
            res
        }
        None => run(&mut cap, &pipe, &rc, out),
    };
    // An event after the capture's last packet was applied when the replay ended: say so. (The
    // capture is read as the replay goes, so this is known only now.)
    if !res.stopped {
        let total = res.span;
        for ev in rc.events.iter().filter(|e| e.at > total) {
            eprintln!(
                "replay: warning: --at {:?} is {:.3} s after the first packet, after the capture's last one ({:.3} s): it was applied when the replay ended",
                ev.text,
                ev.at.as_secs_f64(),
                total.as_secs_f64()
            );
        }
    }
    if let Some(p) = pcap {
        p.finish().map_err(anyhow::Error::msg)?;
    }
    let report = Report::new(cap.info(), &file, cli.loops, &pipe, &res);
    let mut report = report;
    if let Some(o) = xdp_report {
        report.output = Some(o);
    } else if let Some(o) = &cli.out {
        report.output = Some(lb_replay::report::OutputReport {
            kind: "pcap".into(),
            target: o.display().to_string(),
            frames: res.frames_emitted,
            completed: None,
            abandoned: None,
        });
    }
    // With the capture on standard output, the report goes to standard error.
    let text = if cli.json { format!("{}\n", report.to_json()) } else { report.to_text(&pipe) };
    if cli.out.as_deref() == Some(Path::new("-")) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if res.stopped {
        let status = signal_status.load(Ordering::Relaxed) as u8;
        let name = if status == 143 { "SIGTERM" } else { "SIGINT" };
        eprintln!("replay: stopped by {name}: the report and the output hold what was done");
        return Ok(ExitCode::from(status));
    }
    // The replay ran, but not all of it as asked: exit 3, saying why.
    let mut incomplete = false;
    if let Some(e) = &res.input_error {
        eprintln!("replay: {e}: the loops after the first stopped there");
        incomplete = true;
    }
    if let Some(t) = &cap.info().truncated {
        eprintln!("replay: {file} is damaged after frame {}: {}", t.after_frames, t.reason);
        incomplete = true;
    }
    for (_, text, r) in &res.events {
        if let Err(e) = r {
            eprintln!("replay: --at {text:?} did nothing: {e}");
            incomplete = true;
        }
    }
    Ok(if incomplete { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

/// SIGINT and SIGTERM stop the replay cleanly: the returned flag is set (the workers finish the
/// frame in hand, the output is closed, the report printed) and the status word says which
/// (130 or 143, the shell's 128 + signal). A second signal while stopping exits at once.
fn stop_on_signals() -> Result<(Arc<AtomicBool>, Arc<AtomicUsize>)> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let status = Arc::new(AtomicUsize::new(0));
    for (sig, code) in [(SIGINT, 130), (SIGTERM, 143)] {
        // Handlers run in the order registered: the exit only fires if a first signal has
        // already set the flag.
        signal_hook::flag::register_conditional_shutdown(sig, code, Arc::clone(&stop))?;
        signal_hook::flag::register_usize(sig, Arc::clone(&status), code as usize)?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok((stop, status))
}
