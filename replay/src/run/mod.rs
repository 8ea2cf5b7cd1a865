//! The replay driver: frames of a capture through the pipeline on N workers, paced, with
//! operator events at capture times, to an output.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use lb_rewrite::FrameBuf;
use lb_sched::Timestamp;

use crate::capture::{CapFrame, Capture};
use crate::pipeline::{Counters, DropReason, Outcome, OutputError, Pipeline, Worker};

mod events;
mod ordered;

pub use events::{parse_event, Event, EventError, EventProblem, MAX_EVENT_SECS};

/// How fast to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// The capture's own timing, sped up by a factor (`--multiplier`, default 1).
    Capture(f64),
    /// A fixed rate over all workers (`--pps`).
    Pps(f64),
    /// As fast as possible (`--topspeed`).
    Topspeed,
}

/// Where emitted frames go. Shared by the workers (see [`Sink`] for one per worker).
pub trait Output: Sync {
    /// One frame emitted at capture time `ts_ns`.
    fn send(&self, ts_ns: u64, frame: &[u8]);
}

/// One worker's output (an AF_XDP socket on the worker's queue, or a share of an [`Output`]).
pub trait Sink: Send {
    /// One frame emitted at capture time `ts_ns`; `Err(reason)` when the output cannot carry
    /// it (the packet is then counted as dropped for that reason).
    fn send(&mut self, ts_ns: u64, frame: &[u8]) -> Result<(), OutputError>;
    /// Hands queued frames on: called before the worker waits for the pacing, and at the end.
    fn flush(&mut self) {}
    /// Everything input frame `seq` (the `seq`-th frame of the replay, over all loops) emitted
    /// has been sent: called after every input frame, whatever its outcome.
    fn end_of_frame(&mut self, _seq: u64) {}
    /// The worker starts (`true`) or stops (`false`) waiting at an event for the other workers.
    fn waiting(&mut self, _at_barrier: bool) {}
}

/// A worker's handle on a shared [`Output`].
struct Shared<'a>(&'a dyn Output);

impl Sink for Shared<'_> {
    fn send(&mut self, ts_ns: u64, frame: &[u8]) -> Result<(), OutputError> {
        self.0.send(ts_ns, frame);
        Ok(())
    }
}

/// Discards frames (the report only).
#[derive(Debug, Default)]
pub struct NullOutput;

impl Output for NullOutput {
    fn send(&self, _: u64, _: &[u8]) {}
}

/// A pcap file, written by one worker at a time.
#[derive(Debug)]
pub struct PcapOutput {
    w: Mutex<crate::capture::PcapOut>,
    error: Mutex<Option<String>>,
}

impl PcapOutput {
    /// Wraps a pcap writer.
    pub fn new(w: crate::capture::PcapOut) -> Self {
        PcapOutput { w: Mutex::new(w), error: Mutex::new(None) }
    }

    /// Flushes; the first write error, if any, is returned here.
    pub fn finish(self) -> Result<u64, String> {
        if let Some(e) = self.error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        self.w.into_inner().unwrap_or_else(|e| e.into_inner()).finish().map_err(|e| e.to_string())
    }
}

impl Output for PcapOutput {
    fn send(&self, ts_ns: u64, frame: &[u8]) {
        let mut w = self.w.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = w.write(ts_ns, frame) {
            self.error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e.to_string());
        }
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Operator events, any order.
    pub events: Vec<Event>,
    /// Pacing.
    pub pacing: Pacing,
    /// Times to go through the capture (`--loop`, at least 1).
    pub loops: u32,
    /// Worker threads (`--workers`): flows are spread by a symmetric hash of their 5-tuple.
    pub workers: usize,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Set (by a signal handler, another thread) to stop the replay early: each worker finishes
    /// the frame in hand and stops; events not yet reached are not applied; the result counts
    /// what was done ([`RunResult::stopped`]).
    pub stop: Option<Arc<AtomicBool>>,
    /// The longest wait between two frames when pacing by the capture's time (`--maxsleep`):
    /// a longer gap is cut to this. Connection time still follows the capture.
    pub max_gap: Option<Duration>,
}

impl RunConfig {
    /// One pass at top speed on `workers` workers, no events, no progress bar, no stop flag.
    pub fn new(workers: usize) -> Self {
        RunConfig {
            events: Vec::new(),
            pacing: Pacing::Topspeed,
            loops: 1,
            workers,
            progress: false,
            stop: None,
            max_gap: None,
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct RunResult {
    /// Merged counters.
    pub counters: Counters,
    /// Frames handed to the output.
    pub frames_emitted: u64,
    /// Events applied: (capture time, text, what happened or why not).
    pub events: Vec<(Duration, String, Result<String, String>)>,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the stop flag ended the run before the capture did.
    pub stopped: bool,
}

/// Headroom left in front of each frame for encapsulation.
pub const HEADROOM: usize = 128;
/// Largest frame handled (with room for the headers TUN adds).
pub const MAX_FRAME: usize = 65_535 + 64;

/// Which worker a frame goes to: a symmetric hash of its flow (both directions together),
/// frames that do not parse to worker 0.
fn worker_of(frame: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let Ok(p) = lb_rewrite::parse(frame) else { return 0 };
    // ICMP errors go with the connection they quote.
    let f = p.quote(frame).map_or(p.flow(), |q| *q.flow());
    let a = (f.src, f.src_port).min((f.dst, f.dst_port));
    let b = (f.src, f.src_port).max((f.dst, f.dst_port));
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (a, b, f.proto).hash(&mut h);
    (h.finish() % workers as u64) as usize
}

/// Replays `cap` through `pipe` to `out`. With several workers, the frames reach `out` in the
/// order one worker would emit them (a bounded merge by input frame).
pub fn run(cap: &Capture, pipe: &Pipeline, cfg: &RunConfig, out: &dyn Output) -> RunResult {
    let workers = cfg.workers.max(1);
    if workers == 1 {
        return run_sinks(cap, pipe, cfg, vec![Box::new(Shared(out))]);
    }
    let owners = split(cap, workers);
    let flags: Vec<AtomicBool> = (0..workers).map(|_| AtomicBool::new(false)).collect();
    let (sinks, writer) = ordered::ordered(workers, &flags);
    let sinks: Vec<Box<dyn Sink + '_>> = sinks.into_iter().map(|s| Box::new(s) as Box<dyn Sink>).collect();
    let n = cap.frames.len() as u64;
    let total = n.saturating_mul(u64::from(cfg.loops.max(1)));
    std::thread::scope(|s| {
        s.spawn(|| writer.run(total, |seq| usize::from(owners[(seq % n.max(1)) as usize]), out));
        run_split(cap, pipe, cfg, sinks, &owners)
    })
}

/// The worker of each frame of `cap`.
fn split(cap: &Capture, workers: usize) -> Vec<u16> {
    cap.frames.iter().map(|f| worker_of(cap.frame(f), workers) as u16).collect()
}

/// Replays `cap` through `pipe`, worker `w` sending to `sinks[w]` (one per worker).
pub fn run_sinks<'a>(cap: &Capture, pipe: &Pipeline, cfg: &RunConfig, sinks: Vec<Box<dyn Sink + 'a>>) -> RunResult {
    let owners = split(cap, sinks.len().max(1));
    run_split(cap, pipe, cfg, sinks, &owners)
}

/// [`run_sinks`] with the capture already split: frame `i` goes to worker `owners[i]`.
fn run_split<'a>(
    cap: &Capture,
    pipe: &Pipeline,
    cfg: &RunConfig,
    sinks: Vec<Box<dyn Sink + 'a>>,
    owners: &[u16],
) -> RunResult {
    let workers = sinks.len().max(1);
    let loops = cfg.loops.max(1);
    let mut events = cfg.events.clone();
    events.sort_by_key(|e| e.at);
    let first = cap.frames.first().map_or(0, |f| f.ts_ns);
    let last = cap.frames.last().map_or(0, |f| f.ts_ns);
    // Each loop continues the clock where the last ended (plus a second), so connection
    // timing stays monotonic.
    let span = last.saturating_sub(first) + 1_000_000_000;
    // When each frame is due, relative to the first, with gaps over `max_gap` cut short.
    let max_gap = cfg.max_gap.map_or(u64::MAX, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
    let mut due = 0u64;
    let mut prev = first;
    let mut lists: Vec<Vec<(u64, &CapFrame, u64)>> = vec![Vec::new(); workers];
    for (i, (f, &w)) in cap.frames.iter().zip(owners).enumerate() {
        due = due.saturating_add(f.ts_ns.saturating_sub(prev).min(max_gap));
        prev = prev.max(f.ts_ns);
        lists[usize::from(w)].push((i as u64, f, due));
    }
    // A loop starts a second after the last one's last frame (or `max_gap` if shorter).
    let due_span = due.saturating_add(1_000_000_000u64.min(max_gap));
    let frames = cap.frames.len() as u64;
    let barrier = Barrier::new(workers);
    // Each worker's current capture time: connections are expired at the earliest of them.
    let clocks: Vec<AtomicU64> = (0..workers).map(|_| AtomicU64::new(0)).collect();
    let applied = Mutex::new(Vec::new());
    let emitted = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let total = frames.saturating_mul(u64::from(loops));
    let finished = AtomicBool::new(false);
    let never = AtomicBool::new(false);
    let stop: &AtomicBool = cfg.stop.as_deref().unwrap_or(&never);
    let start = Instant::now();
    let counters: Vec<Counters> = std::thread::scope(|s| {
        if cfg.progress {
            s.spawn(|| progress(total, &done, &finished));
        }
        let handles: Vec<_> = lists
            .iter()
            .zip(sinks)
            .enumerate()
            .map(|(wi, (list, mut sink))| {
                let (barrier, applied, emitted, done, events, clocks) =
                    (&barrier, &applied, &emitted, &done, &events, &clocks);
                s.spawn(move || {
                    let mut worker = Worker::new(pipe);
                    worker.auto_expire = false;
                    let mut buf = vec![0u8; HEADROOM + MAX_FRAME];
                    let mut next_ev = 0usize;
                    let mut sent = 0u64;
                    // Every worker passes every event's barriers, stopped or not, so none waits
                    // for one that has left; a stopped replay applies no further event.
                    let apply = |ev: &Event| {
                        if barrier.wait().is_leader() && !stop.load(Relaxed) {
                            let r = pipe.apply(&ev.action).map_err(|e| e.to_string());
                            applied.lock().unwrap_or_else(|e| e.into_inner()).push((ev.at, ev.text.clone(), r));
                        }
                        barrier.wait();
                    };
                    'frames: for lp in 0..u64::from(loops) {
                        for &(index, f, due) in list {
                            if stop.load(Relaxed) {
                                break 'frames;
                            }
                            let seq = lp.saturating_mul(frames).saturating_add(index);
                            let rel = f.ts_ns.saturating_sub(first).saturating_add(lp.saturating_mul(span));
                            while next_ev < events.len() && events[next_ev].at.as_nanos() <= u128::from(rel) {
                                sink.waiting(true);
                                apply(&events[next_ev]);
                                sink.waiting(false);
                                next_ev += 1;
                            }
                            let due = due.saturating_add(lp.saturating_mul(due_span));
                            if let Some(wait) = pace(cfg.pacing, start, due, sent, workers) {
                                sink.flush();
                                if !sleep_unless(stop, wait) {
                                    break 'frames;
                                }
                            }
                            let data = cap.frame(f);
                            let ts = f.ts_ns.saturating_add(lp.saturating_mul(span));
                            clocks[wi].store(ts, Relaxed);
                            if sent % 1024 == 1023 {
                                let min = clocks.iter().map(|c| c.load(Relaxed)).min().unwrap_or(ts);
                                pipe.expire(Timestamp::from_nanos(min));
                            }
                            let n = data.len().min(MAX_FRAME);
                            buf[HEADROOM..HEADROOM + n].copy_from_slice(&data[..n]);
                            let Some(mut fb) = FrameBuf::new(&mut buf, HEADROOM, n) else {
                                sink.end_of_frame(seq);
                                continue;
                            };
                            let mut extra = 0u64;
                            let mut refused: Option<OutputError> = None;
                            let outcome =
                                worker.process(Timestamp::from_nanos(ts), &mut fb, &mut |frame: &[u8]| match sink
                                    .send(ts, frame)
                                {
                                    Ok(()) => extra += 1,
                                    Err(why) => refused = Some(why),
                                });
                            if outcome == Outcome::Forwarded {
                                match sink.send(ts, fb.frame()) {
                                    Ok(()) => extra += 1,
                                    Err(why) => {
                                        // The output cannot carry it: a drop with its own reason.
                                        worker.counters.forwarded -= 1;
                                        worker.counters.dropped.add(DropReason::Output(why));
                                    }
                                }
                            }
                            if let Some(why) = refused {
                                worker.counters.output_refused[why.index()] += 1;
                            }
                            emitted.fetch_add(extra, Relaxed);
                            sink.end_of_frame(seq);
                            sent += 1;
                            if sent.is_multiple_of(PROGRESS_STEP) {
                                done.fetch_add(PROGRESS_STEP, Relaxed);
                            }
                        }
                    }
                    sink.flush();
                    clocks[wi].store(u64::MAX, Relaxed);
                    sink.waiting(true);
                    while next_ev < events.len() {
                        apply(&events[next_ev]);
                        next_ev += 1;
                    }
                    sink.waiting(false);
                    worker.counters
                })
            })
            .collect();
        let counters = handles.into_iter().map(|h| h.join().unwrap_or_default()).collect();
        finished.store(true, Relaxed);
        counters
    });
    let mut merged = Counters::default();
    for c in &counters {
        merged.merge(c);
    }
    let mut applied = applied.into_inner().unwrap_or_else(|e| e.into_inner());
    applied.sort_by_key(|e| e.0);
    RunResult {
        counters: merged,
        frames_emitted: emitted.into_inner(),
        events: applied,
        elapsed: start.elapsed(),
        stopped: stop.load(Relaxed),
    }
}

/// Frames a worker processes between two updates of the shared progress count.
const PROGRESS_STEP: u64 = 64;

/// The progress bar on standard error: shown once the replay has run for a second, refreshed by
/// time (indicatif draws at most 20 times a second) from the workers' shared count, cleared at
/// the end.
fn progress(total: u64, done: &AtomicU64, finished: &AtomicBool) {
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::hidden());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} frames {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let mut shown = false;
    while !finished.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if !shown && start.elapsed() >= Duration::from_secs(1) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_position(done.load(Relaxed).min(total));
    }
    bar.finish_and_clear();
}

/// Sleeps for `d`, waking every 20 ms to look at `stop`; false when it was set.
fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    // A wait past what an Instant can hold lasts until the stop flag.
    let until = Instant::now().checked_add(d);
    loop {
        if stop.load(Relaxed) {
            return false;
        }
        let now = Instant::now();
        let left = until.map_or(Duration::MAX, |u| u.saturating_duration_since(now));
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// How long to wait before the frame at capture offset `rel` (the worker's `sent`-th) is due,
/// if at all.
fn pace(p: Pacing, start: Instant, rel: u64, sent: u64, workers: usize) -> Option<Duration> {
    let due = match p {
        Pacing::Topspeed => return None,
        Pacing::Capture(mult) => Duration::try_from_secs_f64(rel as f64 / 1e9 / mult).unwrap_or(Duration::MAX),
        Pacing::Pps(pps) => Duration::try_from_secs_f64(sent as f64 * workers as f64 / pps).unwrap_or(Duration::MAX),
    };
    let now = start.elapsed();
    (due > now + Duration::from_micros(100)).then(|| due - now)
}
