//! `director`: a live one-armed LVS director. It receives the services' traffic on one
//! interface over AF_XDP (an XDP program of its own picks it out), runs it through the lbkit
//! pipeline (services, connection tracking, schedulers, NAT / DR / TUN rewriting) and sends the
//! result back out of the same interface. See `director --help` and the README.

#[cfg(target_os = "linux")]
mod live;
#[cfg(target_os = "linux")]
mod metrics;
#[cfg(target_os = "linux")]
mod queue;
#[cfg(target_os = "linux")]
mod reload;
#[cfg(target_os = "linux")]
mod unresolved;

use clap::{CommandFactory, Parser};
use lb_replay::args::ServiceArgs;

/// What the exit status says.
const EXIT_STATUS: &str = "\
Exit status:
  0  stopped by SIGINT or SIGTERM (the report is printed)
  2  a bad flag or file, a missing capability, or the interface refused (nothing ran)

Signals: SIGHUP reads --rules again and applies the differences as ipvsadm would (virtual
services and real servers added, removed, reweighted; a bad file changes nothing);
SIGINT / SIGTERM stop, detach and report.";

/// Run a live one-armed LVS director on an interface over AF_XDP.
#[derive(Parser, Debug)]
#[command(
    name = "director",
    version,
    about = "A live one-armed LVS director over AF_XDP: the lbkit pipeline on an interface's traffic",
    long_about = None,
    after_help = EXIT_STATUS
)]
pub struct Cli {
    /// The interface to receive on and send from (required).
    #[arg(long, required_unless_present_any = ["completions", "man"])]
    pub iface: Option<String>,
    /// Services, forwarding, scheduling and the connection table (the same flags as `replay`).
    #[command(flatten)]
    pub svc: ServiceArgs,
    /// Workers: one RX queue (and one AF_XDP socket) each, queues 0 to N-1.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Print the report as one JSON object (the same object as replay's).
    #[arg(long)]
    pub json: bool,
    /// Print a one-line summary to stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats: Option<u64>,
    /// Serve /metrics (Prometheus text format) on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,
    /// How the XDP program is attached: drv (the driver's hook), skb (generic), or auto (drv,
    /// else skb).
    #[arg(long, default_value = "auto")]
    pub xdp_mode: String,
    /// AF_XDP: UMEM frames per socket.
    #[arg(long, default_value_t = 4096)]
    pub xdp_frames: u32,
    /// AF_XDP: RX, TX and completion ring size (a power of two).
    #[arg(long, default_value_t = 2048)]
    pub xdp_ring: u32,
    /// AF_XDP: frames received, and fed to the TX ring, per batch.
    #[arg(long, default_value_t = 32)]
    pub xdp_batch: usize,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,
    /// Print the man page (roff) and exit.
    #[arg(long)]
    pub man: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.man {
        return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            // A reader that stopped early (`| head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("director: {e}");
                std::process::ExitCode::from(2)
            }
        };
    }
    if let Some(shell) = cli.completions {
        clap_complete::generate(shell, &mut Cli::command(), "director", &mut std::io::stdout());
        return std::process::ExitCode::SUCCESS;
    }
    run(cli)
}

#[cfg(target_os = "linux")]
fn run(cli: Cli) -> std::process::ExitCode {
    match live::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("director: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn run(_cli: Cli) -> std::process::ExitCode {
    eprintln!("director: AF_XDP and XDP programs exist on Linux only");
    std::process::ExitCode::from(2)
}
