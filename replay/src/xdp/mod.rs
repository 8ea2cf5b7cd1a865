//! AF_XDP sockets ([`XdpPort`]: transmit, and receive for the director), the director's XDP
//! program ([`XdpProgram`]), its live next hops ([`NextHops`]), and what replay reads from the
//! kernel about an interface.
//!
//! This is the only module of lbkit with `unsafe` code: the AF_XDP rings and the UMEM are
//! memory shared with the kernel, and the `xdp` crate (pure Rust, no C dependencies) exposes
//! filling them as `unsafe` operations. [`XdpPort`] wraps them behind a safe API whose invariants
//! are stated at each block:
//!
//! * the UMEM outlives the socket and the rings (they are fields of one struct, dropped
//!   together, the socket first);
//! * a UMEM frame is handed to the TX ring only once and only comes back through the completion
//!   ring, so no frame is ever sent twice, lost or written while the kernel may read it.
//!
//! Transmit needs no BPF program; receive takes what an XDP program redirects to the socket's
//! queue ([`XdpPort::open_duplex`]: an RX ring and a fill ring sharing the UMEM with transmit).
//! The socket is bound with `XDP_USE_NEED_WAKEUP` and the
//! kernel's choice of zero-copy or copy mode (copy on veth). In copy mode the kernel sends at
//! most 32 descriptors per wake-up, so [`XdpPort::flush`] wakes it (a zero-timeout `poll`, which
//! drives copy-mode transmit) until the ring has drained or no progress is made.
//!
//! [`NextHops`] follows the kernel's routes and neighbours over an rtnetlink socket; its system
//! calls (socket, bind, send, recv, socket options) are wrapped in `netlink/sys.rs`, each
//! `unsafe` block stating why its pointers are valid. Parsing the kernel's messages is safe code
//! (`netlink/wire.rs` forbids `unsafe`).
//!
//! Why the `xdp` crate: it needs no C toolchain (`xsk-rs` builds libxdp and needs clang, m4,
//! libelf), transmit works with it on these machines' kernels (veth, copy mode), and it leaves
//! the batching and wake-up policy to us. Measured with it: see BENCHMARKS.md, "replay over
//! AF_XDP".

#![allow(unsafe_code)]

use std::ffi::CString;
use std::net::IpAddr;

use lb_rewrite::MacAddr;

mod bpf;
mod netlink;
mod port;

pub use bpf::{
    key, AttachMode, Counter, Endpoint, ProgramLimits, XdpLink, XdpProgram, COUNTERS, KEY_LEN, PROTO_ADDRESS,
};
#[doc(hidden)]
pub use netlink::fuzz_datagram;
pub use netlink::{NextHopStats, NextHops, Unresolved};
pub use port::{XdpConfig, XdpPort, XdpStats};

/// Why AF_XDP could not be used.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// Not root: AF_XDP sockets need CAP_NET_RAW (and CAP_NET_ADMIN to bind), the XDP program
    /// CAP_BPF and CAP_NET_ADMIN.
    #[error("needs root (AF_XDP: CAP_NET_RAW and CAP_NET_ADMIN; the XDP program: CAP_BPF and CAP_NET_ADMIN): {0}")]
    NotPermitted(String),
    /// A `bpf()` call failed (for a program the verifier refused, with the verifier's log).
    #[error("{what}: {}{}", std::io::Error::from_raw_os_error(*.errno), verifier_log(.log))]
    Bpf {
        /// What was being done.
        what: String,
        /// The errno.
        errno: i32,
        /// The verifier's log (empty unless a program load failed).
        log: String,
    },
    /// No such interface.
    #[error("no network interface named {0:?}")]
    NoSuchInterface(String),
    /// The interface has fewer TX queues than workers.
    #[error("{iface} has {have} TX queue(s); --workers {want} needs {want} (create a veth with numtxqueues {want})")]
    Queues {
        /// Interface.
        iface: String,
        /// Its TX queues.
        have: u32,
        /// Workers asked for.
        want: u32,
    },
    /// The kernel refused (socket, UMEM, rings or bind).
    #[error("the kernel refused AF_XDP on {iface} queue {queue}: {reason}")]
    Refused {
        /// Interface.
        iface: String,
        /// Queue.
        queue: u32,
        /// What failed.
        reason: String,
    },
    /// Reading the interface's facts failed.
    #[error("{0}")]
    Interface(String),
    /// A ring, UMEM or batch size out of range.
    #[error("{0}")]
    Size(String),
}

fn verifier_log(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("\nverifier log:\n{}", log.trim_end())
    }
}

pub(crate) fn nic(iface: &str) -> Result<xdp::nic::NicIndex, XdpError> {
    let name = CString::new(iface).map_err(|_| XdpError::NoSuchInterface(iface.into()))?;
    xdp::nic::NicIndex::lookup_by_name(&name)
        .map_err(|e| XdpError::Interface(format!("{iface}: {e}")))?
        .ok_or_else(|| XdpError::NoSuchInterface(iface.into()))
}

/// The number of TX queues of an interface (`/sys/class/net/IF/queues/tx-*`).
pub fn tx_queues(iface: &str) -> Result<u32, XdpError> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let rd = std::fs::read_dir(&dir).map_err(|_| XdpError::NoSuchInterface(iface.into()))?;
    Ok(rd.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("tx-")).count() as u32)
}

/// The interface's MTU.
pub fn mtu(iface: &str) -> Result<u16, XdpError> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .map_err(|_| XdpError::NoSuchInterface(iface.into()))?;
    s.trim().parse::<u32>().map(|m| m.min(65535) as u16).map_err(|e| XdpError::Interface(format!("{iface} mtu: {e}")))
}

/// The interface's MAC address.
pub fn mac(iface: &str) -> Result<MacAddr, XdpError> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .map_err(|_| XdpError::NoSuchInterface(iface.into()))?;
    crate::config::parse_mac(s.trim()).map_err(|e| XdpError::Interface(format!("{iface}: {e}")))
}

/// The kernel's neighbour table for an interface (`ip -j neigh show dev IF`): resolved entries
/// only (no FAILED or INCOMPLETE ones).
pub fn neighbours(iface: &str) -> Result<Vec<(IpAddr, MacAddr)>, XdpError> {
    let out = std::process::Command::new("ip")
        .args(["-j", "neigh", "show", "dev", iface])
        .output()
        .map_err(|e| XdpError::Interface(format!("cannot run `ip neigh` (iproute2): {e}")))?;
    if !out.status.success() {
        return Err(XdpError::Interface(format!(
            "`ip neigh show dev {iface}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| XdpError::Interface(format!("`ip -j neigh` output: {e}")))?;
    let mut r = Vec::new();
    for e in v.as_array().into_iter().flatten() {
        let states: Vec<&str> = e["state"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
        if states.iter().any(|s| *s == "FAILED" || *s == "INCOMPLETE") {
            continue;
        }
        let (Some(dst), Some(ll)) = (e["dst"].as_str(), e["lladdr"].as_str()) else { continue };
        if let (Ok(a), Ok(m)) = (dst.parse::<IpAddr>(), crate::config::parse_mac(ll)) {
            r.push((a, m));
        }
    }
    Ok(r)
}
