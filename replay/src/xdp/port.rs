//! An AF_XDP socket on one queue of an interface: transmit only (replay's `--iface`), or receive
//! and transmit through one UMEM (the director).

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use xdp::slab::{HeapSlab, Slab};
use xdp::socket::{PollTimeout, XdpSocket, XdpSocketBuilder};
use xdp::umem::{FrameSize, UmemCfgBuilder};
use xdp::{CompletionRing, RingConfigBuilder, RxRing, Umem, WakableFillRing, WakableTxRing};

use super::{nic, XdpError};

/// Ring and UMEM sizes.
#[derive(Clone, Copy, Debug)]
pub struct XdpConfig {
    /// UMEM frames (each 4 KiB).
    pub frame_count: u32,
    /// TX and completion ring entries (a power of two).
    pub ring_size: u32,
    /// Frames queued before the TX ring is fed (and the kernel woken) in one go.
    pub batch: usize,
}

impl XdpConfig {
    /// The smallest and largest TX / completion ring (powers of two).
    pub const RING: (u32, u32) = (64, 1 << 16);
    /// The smallest and largest UMEM (in 4 KiB frames: 256 KiB to 1 GiB).
    pub const FRAMES: (u32, u32) = (64, 1 << 18);

    /// Checks every size: the rings a power of two within [`XdpConfig::RING`], the UMEM within
    /// [`XdpConfig::FRAMES`], the batch between 1 and the ring size. The messages name the flags.
    pub fn validate(&self) -> Result<(), XdpError> {
        let (rmin, rmax) = Self::RING;
        if !self.ring_size.is_power_of_two() || !(rmin..=rmax).contains(&self.ring_size) {
            return Err(XdpError::Size(format!("--xdp-ring {}: a power of two from {rmin} to {rmax}", self.ring_size)));
        }
        let (fmin, fmax) = Self::FRAMES;
        if !(fmin..=fmax).contains(&self.frame_count) {
            return Err(XdpError::Size(format!(
                "--xdp-frames {}: from {fmin} to {fmax} UMEM frames of 4 KiB each",
                self.frame_count
            )));
        }
        if self.batch == 0 || self.batch > self.ring_size as usize {
            return Err(XdpError::Size(format!(
                "--xdp-batch {}: from 1 to the ring size (--xdp-ring {})",
                self.batch, self.ring_size
            )));
        }
        Ok(())
    }
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig { frame_count: 4096, ring_size: 2048, batch: 64 }
    }
}

/// What a socket did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames queued for transmission.
    pub queued: u64,
    /// Frames the kernel reported sent (completions).
    pub completed: u64,
    /// Wake-ups (polls) issued.
    pub wakeups: u64,
    /// Queued frames given up on because the kernel took none of them for 5 s (never sent).
    pub abandoned: u64,
    /// Frames received (a socket opened with [`XdpPort::open_duplex`]).
    pub received: u64,
}

/// An AF_XDP socket on one queue of an interface: it transmits, and with
/// [`XdpPort::open_duplex`] receives too (what an XDP program redirects to it).
pub struct XdpPort {
    // Field order is drop order: the socket and rings go before the UMEM they point into.
    sock: XdpSocket,
    tx: WakableTxRing,
    completion: CompletionRing,
    fill: WakableFillRing,
    rx: Option<RxRing>,
    /// Received frames between the RX ring and the caller (always empty between calls).
    rx_slab: HeapSlab,
    /// Frames received but not yet given back to the fill ring (the UMEM had none free).
    fill_owed: usize,
    slab: HeapSlab,
    umem: Umem,
    cfg: XdpConfig,
    stats: XdpStats,
    iface: String,
    queue: u32,
}

// SAFETY: an `XdpPort` exclusively owns everything it points into: the UMEM mapping, the ring
// mappings, the socket and every `Packet` (raw pointers into the UMEM) in its slab. Nothing is
// shared with another `XdpPort` or thread, so moving the whole bundle to another thread (one worker
// owns one socket) cannot create a data race; the kernel's side of the rings does not depend on
// which thread of the process uses them. It is not `Sync`: one thread at a time.
unsafe impl Send for XdpPort {}

impl std::fmt::Debug for XdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpPort")
            .field("iface", &self.iface)
            .field("queue", &self.queue)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Why one attempt to open a socket failed: a queue still busy is worth another try.
enum OpenError {
    Busy(String),
    Other(XdpError),
}

impl From<XdpError> for OpenError {
    fn from(e: XdpError) -> Self {
        OpenError::Other(e)
    }
}

impl XdpPort {
    /// Opens an AF_XDP socket on `iface` queue `queue`.
    ///
    /// The kernel releases a closed socket's UMEM from the queue in deferred work, so a socket
    /// opened just after another one on the same queue closed can be refused with EBUSY for a
    /// moment: that case is retried for up to two seconds before it is reported.
    pub fn open(iface: &str, queue: u32, cfg: XdpConfig) -> Result<XdpPort, XdpError> {
        Self::open_with(iface, queue, cfg, false)
    }

    /// Opens an AF_XDP socket on `iface` queue `queue` that receives as well: an RX ring of
    /// `cfg.ring_size` entries, half the UMEM (at most the ring size) handed to the kernel's fill
    /// ring for received frames, the rest for transmitting. It receives only what an XDP program
    /// on the interface redirects to it (an XSKMAP entry for this queue: [`XdpPort::as_fd`]).
    pub fn open_duplex(iface: &str, queue: u32, cfg: XdpConfig) -> Result<XdpPort, XdpError> {
        Self::open_with(iface, queue, cfg, true)
    }

    fn open_with(iface: &str, queue: u32, cfg: XdpConfig, rx: bool) -> Result<XdpPort, XdpError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match Self::open_once(iface, queue, cfg, rx) {
                Err(OpenError::Busy(reason)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(XdpError::Refused {
                            iface: iface.into(),
                            queue,
                            reason: format!("{reason} (another AF_XDP socket holds this queue)"),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(OpenError::Other(e)) => return Err(e),
                Ok(tx) => return Ok(tx),
            }
        }
    }

    fn open_once(iface: &str, queue: u32, cfg: XdpConfig, rx: bool) -> Result<XdpPort, OpenError> {
        cfg.validate()?;
        let nic = nic(iface)?;
        let refused = |what: &str, e: &dyn std::fmt::Display| {
            let reason = format!("{what}: {e}");
            if reason.contains("Operation not permitted") || reason.contains("permission denied") {
                XdpError::NotPermitted(reason)
            } else {
                XdpError::Refused { iface: iface.into(), queue, reason }
            }
        };
        let ucfg = UmemCfgBuilder { frame_size: FrameSize::FourK, frame_count: cfg.frame_count, ..Default::default() }
            .build()
            .map_err(|e| refused("UMEM configuration", &e))?;
        let umem = Umem::map(ucfg).map_err(|e| refused("UMEM mapping", &e))?;
        let mut sb = XdpSocketBuilder::new().map_err(|e| refused("socket", &e))?;
        // Transmit only: no RX ring; the fill ring is required by the kernel, one entry.
        let (rx_count, fill_count) = if rx { (cfg.ring_size, cfg.ring_size) } else { (0, 1) };
        let rings_cfg =
            RingConfigBuilder { rx_count, tx_count: cfg.ring_size, fill_count, completion_count: cfg.ring_size }
                .build()
                .map_err(|e| refused("ring configuration", &e))?;
        let (rings, flags) = sb.build_wakable_rings(&umem, rings_cfg).map_err(|e| refused("rings", &e))?;
        let sock = sb.bind(nic, queue, flags).map_err(|e| match &e {
            xdp::socket::SocketError::Bind(io) if io.kind() == std::io::ErrorKind::ResourceBusy => {
                OpenError::Busy(format!("bind: {e}"))
            }
            _ => OpenError::Other(refused("bind", &e)),
        })?;
        let tx = rings.tx_ring.ok_or_else(|| refused("rings", &"no TX ring"))?;
        if rx && rings.rx_ring.is_none() {
            return Err(OpenError::Other(refused("rings", &"no RX ring")));
        }
        let mut port = XdpPort {
            sock,
            tx,
            completion: rings.completion_ring,
            fill: rings.fill_ring,
            rx: rings.rx_ring,
            rx_slab: HeapSlab::with_capacity(if rx { cfg.batch.max(1) } else { 0 }),
            fill_owed: 0,
            slab: HeapSlab::with_capacity(cfg.batch.max(1)),
            umem,
            cfg,
            stats: XdpStats::default(),
            iface: iface.into(),
            queue,
        };
        if rx {
            let n = (cfg.frame_count / 2).min(cfg.ring_size) as usize;
            // SAFETY: the fill ring takes frames of `port.umem`, which outlives the socket (both
            // are fields of `port`, the UMEM dropped last); a frame given to the fill ring comes
            // back only through the RX ring (`recv`), so it is never also handed to the TX ring.
            let filled = unsafe { port.fill.enqueue(&mut port.umem, n, true) };
            match filled {
                Ok(k) if k > 0 => {}
                Ok(_) => return Err(OpenError::Other(refused("fill ring", &"no frame could be queued"))),
                Err(e) => return Err(OpenError::Other(refused("fill ring", &e))),
            }
        }
        Ok(port)
    }

    /// The socket's descriptor, for an XSKMAP entry (valid as long as the port).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is the socket's, open until `self.sock` is dropped, and the
        // borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.sock.raw_fd()) }
    }

    /// Waits at most `timeout` for received frames; whether there are some.
    pub fn wait_readable(&self, timeout: Duration) -> bool {
        if self.rx.is_none() {
            return false;
        }
        self.sock.poll_read(PollTimeout::new(Some(timeout))).unwrap_or(false)
    }

    /// Hands each received frame (at most [`XdpConfig::batch`]) to `f`, oldest first, then
    /// gives the frames back to the kernel's fill ring; the number received (0 when none is
    /// waiting, or the port does not receive).
    pub fn recv(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let Some(rx) = self.rx.as_mut() else { return 0 };
        // SAFETY: the packets point into `self.umem`, which outlives them: each is given back to
        // the UMEM below, before this function returns, and the UMEM is dropped last.
        let n = unsafe { rx.recv(&self.umem, &mut self.rx_slab) };
        while let Some(p) = self.rx_slab.pop_back() {
            f(&p);
            self.umem.free_packet(p);
        }
        self.stats.received += n as u64;
        self.fill_owed += n;
        if self.fill_owed > 0 {
            // SAFETY: as in `open_once`: frames of `self.umem`, back only through the RX ring.
            if let Ok(k) = unsafe { self.fill.enqueue(&mut self.umem, self.fill_owed, true) } {
                self.fill_owed -= k.min(self.fill_owed);
            }
        }
        n
    }

    /// The largest frame a UMEM frame holds.
    pub fn max_frame(&self) -> usize {
        // A 4 KiB frame minus the kernel's XDP_PACKET_HEADROOM.
        4096 - 256
    }

    /// What the socket did so far.
    pub fn stats(&self) -> XdpStats {
        self.stats
    }

    /// Queues one frame; the TX ring is fed in batches. Returns `false` (and sends nothing)
    /// when the frame is larger than a UMEM frame.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        if frame.len() > self.max_frame() {
            return false;
        }
        if self.slab.available() == 0 {
            self.flush();
        }
        let packet = loop {
            // SAFETY: the packet points into `self.umem`, which outlives it: the packet is either
            // handed to the TX ring (and comes back through the completion ring to the UMEM's
            // free list) or freed back to the UMEM below; the socket, rings and UMEM are dropped
            // together, the UMEM last.
            if let Some(p) = unsafe { self.umem.alloc() } {
                break p;
            }
            // Every frame is in flight: reclaim completions (waking the kernel) until one is free.
            self.reap_waiting(Duration::from_secs(1));
        };
        let mut packet = packet;
        if packet.insert(0, frame).is_err() {
            self.umem.free_packet(packet);
            return false;
        }
        if let Some(p) = self.slab.push_front(packet) {
            // Unreachable (the slab had room), but never leak a frame.
            self.umem.free_packet(p);
        }
        self.stats.queued += 1;
        if self.slab.len() >= self.cfg.batch {
            self.flush();
        }
        true
    }

    /// Feeds every queued frame to the TX ring and wakes the kernel, reclaiming completions.
    pub fn flush(&mut self) {
        let start = Instant::now();
        while !self.slab.is_empty() {
            // SAFETY: every packet in the slab was allocated from `self.umem` (see `send`), which
            // outlives the socket; the ring takes ownership of the frames it accepts (they come
            // back only through the completion ring).
            let sent = unsafe { self.tx.send(&mut self.slab, true) };
            if let Err(e) = sent {
                // EAGAIN / ENOBUFS / EBUSY: the kernel is still busy with the ring; reap and retry.
                let _ = e;
            }
            self.wake();
            self.reap();
            if start.elapsed() > Duration::from_secs(5) {
                // The kernel makes no progress: give the frames back rather than spin forever.
                while let Some(p) = self.slab.pop_back() {
                    self.umem.free_packet(p);
                    self.stats.abandoned += 1;
                }
                break;
            }
        }
        self.wake();
        self.reap();
    }

    fn wake(&mut self) {
        // A zero-timeout poll drives copy-mode transmit (xsk_poll -> xsk_generic_xmit).
        let _ = self.sock.poll_write(PollTimeout::new(Some(Duration::ZERO)));
        self.stats.wakeups += 1;
    }

    fn reap(&mut self) -> usize {
        let n = self.completion.dequeue(&mut self.umem, self.cfg.ring_size as usize);
        self.stats.completed += n as u64;
        n
    }

    fn reap_waiting(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            self.wake();
            if self.reap() > 0 || start.elapsed() > limit {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Flushes and waits (at most `limit`) until the kernel has completed every queued frame.
    pub fn finish(&mut self, limit: Duration) -> XdpStats {
        self.flush();
        let start = Instant::now();
        while self.stats.completed + self.stats.abandoned < self.stats.queued && start.elapsed() < limit {
            self.wake();
            if self.reap() == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        self.stats
    }
}
