//! One worker: one RX queue's AF_XDP socket, frames in bursts through the pipeline and back out
//! of the same socket. The worker counts in its own [`Counters`] and publishes a copy every
//! [`PUBLISH`] for `--stats` and `/metrics` (read by another thread, never locked).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use lb_replay::pipeline::{recycle_burst, BurstOutput, Counters, DropReason, Outcome, OutputError, Pipeline, Worker};
use lb_replay::xdp::{XdpPort, XdpStats};
use lb_rewrite::FrameBuf;
use lb_sched::Timestamp;

/// Room in front of each received frame for the headers TUN adds.
const HEADROOM: usize = 128;
/// The largest frame an AF_XDP socket hands over in copy mode (a 4 KiB UMEM frame less the
/// kernel's headroom), with room for a tunnel header.
const FRAME: usize = 4096;
/// How often a worker publishes its counters.
pub const PUBLISH: Duration = Duration::from_millis(200);
/// How long a worker waits for frames before it looks at the stop flag again.
const IDLE_WAIT: Duration = Duration::from_millis(20);

/// What a worker shares while it runs: its counters and its socket's, as last published.
#[derive(Debug, Default)]
pub struct Published {
    /// The worker's counters.
    pub counters: ArcSwap<Counters>,
    /// Its socket's counts.
    pub xdp: ArcSwap<XdpStats>,
}

/// The socket as a burst's output: forwarded frames and the frames the pipeline builds (ICMP
/// errors, fragments) are sent; a frame larger than a UMEM frame is counted (`refused`: one the
/// pipeline built; `lost`: a forwarded one, then a drop with its own reason).
struct Out<'a> {
    port: &'a mut XdpPort,
    refused: u64,
    lost: u64,
}

impl BurstOutput for Out<'_> {
    fn emit(&mut self, _i: usize, frame: &[u8]) {
        if !self.port.send(frame) {
            self.refused += 1;
        }
    }
    fn done(&mut self, _i: usize, outcome: Outcome, frame: &[u8]) {
        if let Outcome::Forwarded = outcome {
            if !self.port.send(frame) {
                self.lost += 1;
            }
        }
    }
}

/// Runs one queue until `stop` is set, its counters starting from `initial` (the worker's
/// counts of earlier rounds); its counters at the end.
pub fn run(
    pipe: &Pipeline,
    port: &mut XdpPort,
    batch: usize,
    start: Instant,
    stop: &AtomicBool,
    publish: &Published,
    initial: Counters,
) -> Counters {
    let mut w = Worker::new(pipe);
    w.counters = initial;
    // The main thread expires the table for every worker, on one clock.
    w.auto_expire = false;
    let mut bufs: Vec<Box<[u8]>> = (0..batch).map(|_| vec![0u8; HEADROOM + FRAME].into_boxed_slice()).collect();
    let mut lens = vec![0usize; batch];
    let mut burst: Vec<(Timestamp, FrameBuf<'static>)> = Vec::with_capacity(batch);
    let mut published = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut n = 0;
        let mut too_big = 0u64;
        port.recv(|f| {
            // The socket hands over at most `batch` frames, each at most a UMEM frame.
            match (bufs.get_mut(n), lens.get_mut(n)) {
                (Some(b), Some(len)) if f.len() <= FRAME => {
                    b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                    *len = f.len();
                    n += 1;
                }
                _ => too_big += 1,
            }
        });
        w.counters.read += too_big;
        for _ in 0..too_big {
            w.counters.dropped.add(DropReason::Output(OutputError::FrameLargerThanUmemFrame));
        }
        if n == 0 {
            if published.elapsed() >= PUBLISH {
                publish.counters.store(Arc::new(w.counters.clone()));
                publish.xdp.store(Arc::new(port.stats()));
                published = Instant::now();
            }
            port.wait_readable(IDLE_WAIT);
            continue;
        }
        let now = Timestamp::from_nanos(start.elapsed().as_nanos() as u64);
        let mut frames = recycle_burst(std::mem::take(&mut burst));
        for (b, len) in bufs.iter_mut().zip(&lens).take(n) {
            if let Some(fb) = FrameBuf::new(b, HEADROOM, *len) {
                frames.push((now, fb));
            }
        }
        let mut out = Out { port: &mut *port, refused: 0, lost: 0 };
        w.process_burst(&mut frames, &mut out);
        let (refused, lost) = (out.refused, out.lost);
        let why = OutputError::FrameLargerThanUmemFrame;
        w.counters.output_refused[why.index()] += refused;
        for _ in 0..lost {
            w.counters.forwarded -= 1;
            w.counters.dropped.add(DropReason::Output(why));
        }
        port.flush();
        burst = recycle_burst(frames);
        if published.elapsed() >= PUBLISH {
            publish.counters.store(Arc::new(w.counters.clone()));
            publish.xdp.store(Arc::new(port.stats()));
            published = Instant::now();
        }
    }
    port.flush();
    publish.counters.store(Arc::new(w.counters.clone()));
    publish.xdp.store(Arc::new(port.stats()));
    w.counters
}
