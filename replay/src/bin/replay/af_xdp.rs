//! `--iface`: AF_XDP output, when this binary has it (feature `xdp`, Linux), or a clear refusal.

#[cfg(all(feature = "xdp", target_os = "linux"))]
pub use real::*;
#[cfg(not(all(feature = "xdp", target_os = "linux")))]
pub use stub::*;

/// The AF_XDP sender.
#[cfg(all(feature = "xdp", target_os = "linux"))]
mod real {
    use std::net::IpAddr;
    use std::time::Duration;

    use anyhow::Result;
    use lb_replay::capture::CaptureReader;
    use lb_replay::pipeline::{OutputError, Pipeline};
    use lb_replay::report::OutputReport;
    use lb_replay::run::{run_sinks, RunConfig, RunResult, Sink};
    use lb_replay::xdp;
    use lb_rewrite::MacAddr;

    /// What the interface says of itself.
    pub struct Facts {
        pub mtu: u16,
        pub mac: MacAddr,
        pub neighbours: Vec<(IpAddr, MacAddr)>,
    }

    /// `--xdp-frames`, `--xdp-ring`, `--xdp-batch`.
    pub struct Sizes {
        pub frames: u32,
        pub ring: u32,
        pub batch: usize,
    }

    /// The interface's MTU and MAC (unless given) and neighbours, checking it has a TX queue
    /// for each worker.
    pub fn facts(iface: &str, mtu: Option<u16>, mac: Option<MacAddr>, workers: usize) -> Result<Facts> {
        let mtu = match mtu {
            Some(m) => m,
            None => xdp::mtu(iface)?,
        };
        let mac = match mac {
            Some(m) => m,
            None => xdp::mac(iface)?,
        };
        let facts = Facts { mtu, mac, neighbours: xdp::neighbours(iface)? };
        let have = xdp::tx_queues(iface)?;
        if (have as usize) < workers {
            return Err(xdp::XdpError::Queues { iface: iface.to_string(), have, want: workers as u32 }.into());
        }
        Ok(facts)
    }

    /// A worker's AF_XDP socket as a replay sink; its stats are collected when it is dropped.
    struct XdpSink<'a> {
        tx: xdp::XdpPort,
        stats: &'a std::sync::Mutex<Vec<xdp::XdpStats>>,
    }

    impl Sink for XdpSink<'_> {
        fn send(&mut self, _ts: u64, frame: &[u8]) -> Result<(), OutputError> {
            if self.tx.send(frame) {
                Ok(())
            } else {
                Err(OutputError::FrameLargerThanUmemFrame)
            }
        }
        fn flush(&mut self) {
            self.tx.flush();
        }
    }

    impl Drop for XdpSink<'_> {
        fn drop(&mut self) {
            // Wait (bounded) until the kernel has sent everything queued.
            let s = self.tx.finish(Duration::from_secs(5));
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    }

    /// Checks the sizes before anything is opened or read.
    pub fn check(sizes: &Sizes) -> Result<()> {
        xdp::XdpConfig { frame_count: sizes.frames, ring_size: sizes.ring, batch: sizes.batch }.validate()?;
        Ok(())
    }

    /// Replays through one AF_XDP socket per worker (queue = worker index).
    pub fn run(
        iface: &str,
        sizes: Sizes,
        cap: &mut CaptureReader,
        pipe: &Pipeline,
        rc: &RunConfig,
    ) -> Result<(RunResult, OutputReport)> {
        let xcfg = xdp::XdpConfig { frame_count: sizes.frames, ring_size: sizes.ring, batch: sizes.batch };
        let socks =
            (0..rc.workers).map(|q| xdp::XdpPort::open(iface, q as u32, xcfg)).collect::<Result<Vec<_>, _>>()?;
        let stats = std::sync::Mutex::new(Vec::new());
        let sinks: Vec<Box<dyn Sink + '_>> =
            socks.into_iter().map(|tx| Box::new(XdpSink { tx, stats: &stats }) as Box<dyn Sink>).collect();
        let res = run_sinks(cap, pipe, rc, sinks);
        let stats = stats.into_inner().unwrap_or_else(|e| e.into_inner());
        let out = OutputReport {
            kind: "af_xdp".into(),
            target: iface.to_string(),
            frames: stats.iter().map(|s| s.queued).sum(),
            completed: Some(stats.iter().map(|s| s.completed).sum()),
            abandoned: Some(stats.iter().map(|s| s.abandoned).sum()),
        };
        Ok((res, out))
    }
}

/// `--iface` without AF_XDP in this build: a clear refusal.
#[cfg(not(all(feature = "xdp", target_os = "linux")))]
mod stub {
    use std::net::IpAddr;

    use anyhow::{bail, Result};
    use lb_replay::capture::CaptureReader;
    use lb_replay::pipeline::Pipeline;
    use lb_replay::report::OutputReport;
    use lb_replay::run::{RunConfig, RunResult};
    use lb_rewrite::MacAddr;

    const WHY: &str = "this replay was built without AF_XDP output (cargo feature `xdp`, Linux only)";

    pub struct Facts {
        pub mtu: u16,
        pub mac: MacAddr,
        pub neighbours: Vec<(IpAddr, MacAddr)>,
    }

    /// Taken so the command line is the same in every build; unused here.
    #[allow(dead_code)]
    pub struct Sizes {
        pub frames: u32,
        pub ring: u32,
        pub batch: usize,
    }

    pub fn check(_sizes: &Sizes) -> Result<()> {
        Ok(())
    }

    pub fn facts(iface: &str, _mtu: Option<u16>, _mac: Option<MacAddr>, _workers: usize) -> Result<Facts> {
        bail!("--iface {iface}: {WHY}")
    }

    pub fn run(
        iface: &str,
        _sizes: Sizes,
        _cap: &mut CaptureReader,
        _pipe: &Pipeline,
        _rc: &RunConfig,
    ) -> Result<(RunResult, OutputReport)> {
        bail!("--iface {iface}: {WHY}")
    }
}
