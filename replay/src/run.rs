//! The replay driver: frames of a capture through the pipeline on N workers, paced, with
//! operator events at capture times, to an output.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use lb_rewrite::FrameBuf;
use lb_sched::Timestamp;

use crate::capture::{CapFrame, Capture};
use crate::pipeline::{Action, Counters, DropReason, Outcome, OutputError, Pipeline, Worker};

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

/// An operator action at a capture time.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Time after the capture's first packet (0 = before it).
    pub at: Duration,
    /// What to do.
    pub action: Action,
    /// How the user wrote it.
    pub text: String,
}

/// An `--at SECS:ACTION` that does not parse: the text as given, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--at {text:?}: {problem}")]
pub struct EventError {
    /// The event as given.
    pub text: String,
    /// What is wrong.
    pub problem: EventProblem,
}

/// What is wrong with an `--at` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventProblem {
    /// No `:` between time and action.
    #[error("expected SECS:ACTION")]
    NoColon,
    /// The time is not a number.
    #[error("{0:?} is not a number of seconds")]
    NotSeconds(String),
    /// The time is negative or not finite.
    #[error("the time must be 0 or more seconds")]
    NegativeTime,
    /// The time is too large to be a time of the replay.
    #[error("{0:?} seconds is beyond any capture (at most {MAX_EVENT_SECS} s)")]
    TimeTooLarge(String),
    /// No `=` in the action.
    #[error("expected ACTION=ARGUMENT")]
    NoArgument,
    /// Not an address.
    #[error("{0:?} is not an address")]
    NotAddress(String),
    /// `weight=` without `ADDR:W`.
    #[error("weight=ADDR:W")]
    WeightSyntax,
    /// Not a weight.
    #[error("{0:?} is not a weight")]
    NotWeight(String),
    /// `add=` with a bad backend spec.
    #[error(transparent)]
    Backend(#[from] crate::config::SpecError),
    /// Not one of the actions.
    #[error("unknown action {0:?} (drain, weight, remove, add)")]
    UnknownAction(String),
}

/// The latest `--at` time accepted: a year. A time after the capture's end (with its loops) is
/// valid and applied at the end; one beyond this bound cannot be a capture time.
pub const MAX_EVENT_SECS: u64 = 365 * 24 * 3600;

/// Parses `SECS:ACTION` (`drain=ADDR`, `weight=ADDR:W`, `remove=ADDR`, `add=BACKEND-SPEC`).
pub fn parse_event(s: &str) -> Result<Event, EventError> {
    let err = |problem: EventProblem| EventError { text: s.to_string(), problem };
    let (secs, action) = s.split_once(':').ok_or_else(|| err(EventProblem::NoColon))?;
    let at: f64 = secs.parse().map_err(|_| err(EventProblem::NotSeconds(secs.to_string())))?;
    if !(at >= 0.0 && at.is_finite()) {
        return Err(err(EventProblem::NegativeTime));
    }
    if at > MAX_EVENT_SECS as f64 {
        return Err(err(EventProblem::TimeTooLarge(secs.to_string())));
    }
    let (verb, arg) = action.split_once('=').ok_or_else(|| err(EventProblem::NoArgument))?;
    let addr = |a: &str| a.parse().map_err(|_| err(EventProblem::NotAddress(a.to_string())));
    let action = match verb {
        "drain" => Action::Drain(addr(arg)?),
        "remove" => Action::Remove(addr(arg)?),
        "weight" => {
            let (a, w) = arg.rsplit_once(':').ok_or_else(|| err(EventProblem::WeightSyntax))?;
            let a = a.trim_start_matches('[').trim_end_matches(']');
            Action::Weight(addr(a)?, w.parse().map_err(|_| err(EventProblem::NotWeight(w.to_string())))?)
        }
        "add" => Action::Add(crate::config::parse_backend(arg).map_err(|e| err(e.into()))?),
        other => return Err(err(EventProblem::UnknownAction(other.to_string()))),
    };
    Ok(Event { at: Duration::from_secs_f64(at), action, text: s.to_string() })
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
}

impl RunConfig {
    /// One pass at top speed on `workers` workers, no events, no progress bar, no stop flag.
    pub fn new(workers: usize) -> Self {
        RunConfig { events: Vec::new(), pacing: Pacing::Topspeed, loops: 1, workers, progress: false, stop: None }
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

/// Replays `cap` through `pipe` to `out`.
pub fn run(cap: &Capture, pipe: &Pipeline, cfg: &RunConfig, out: &dyn Output) -> RunResult {
    let sinks: Vec<Box<dyn Sink + '_>> =
        (0..cfg.workers.max(1)).map(|_| Box::new(Shared(out)) as Box<dyn Sink>).collect();
    run_sinks(cap, pipe, cfg, sinks)
}

/// Replays `cap` through `pipe`, worker `w` sending to `sinks[w]` (one per worker).
pub fn run_sinks<'a>(cap: &Capture, pipe: &Pipeline, cfg: &RunConfig, sinks: Vec<Box<dyn Sink + 'a>>) -> RunResult {
    let workers = sinks.len().max(1);
    let loops = cfg.loops.max(1);
    let mut events = cfg.events.clone();
    events.sort_by_key(|e| e.at);
    let first = cap.frames.first().map_or(0, |f| f.ts_ns);
    let last = cap.frames.last().map_or(0, |f| f.ts_ns);
    // Each loop continues the clock where the last ended (plus a second), so connection
    // timing stays monotonic.
    let span = last.saturating_sub(first) + 1_000_000_000;
    let mut lists: Vec<Vec<&CapFrame>> = vec![Vec::new(); workers];
    for f in &cap.frames {
        lists[worker_of(cap.frame(f), workers)].push(f);
    }
    let barrier = Barrier::new(workers);
    // Each worker's current capture time: connections are expired at the earliest of them.
    let clocks: Vec<AtomicU64> = (0..workers).map(|_| AtomicU64::new(0)).collect();
    let applied = Mutex::new(Vec::new());
    let emitted = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let total = cap.frames.len() as u64 * u64::from(loops);
    let bar = (cfg.progress && total >= 10_000).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} frames {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let never = AtomicBool::new(false);
    let stop: &AtomicBool = cfg.stop.as_deref().unwrap_or(&never);
    let start = Instant::now();
    let counters: Vec<Counters> = std::thread::scope(|s| {
        let handles: Vec<_> = lists
            .iter()
            .zip(sinks)
            .enumerate()
            .map(|(wi, (list, mut sink))| {
                let (barrier, applied, emitted, done, bar, events, clocks) =
                    (&barrier, &applied, &emitted, &done, &bar, &events, &clocks);
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
                        for f in list {
                            if stop.load(Relaxed) {
                                break 'frames;
                            }
                            let rel = f.ts_ns.saturating_sub(first) + lp * span;
                            while next_ev < events.len() && events[next_ev].at.as_nanos() <= u128::from(rel) {
                                apply(&events[next_ev]);
                                next_ev += 1;
                            }
                            if let Some(wait) = pace(cfg.pacing, start, rel, sent, workers) {
                                sink.flush();
                                if !sleep_unless(stop, wait) {
                                    break 'frames;
                                }
                            }
                            let data = cap.frame(f);
                            let ts = f.ts_ns + lp * span;
                            clocks[wi].store(ts, Relaxed);
                            if sent % 1024 == 1023 {
                                let min = clocks.iter().map(|c| c.load(Relaxed)).min().unwrap_or(ts);
                                pipe.expire(Timestamp::from_nanos(min));
                            }
                            let n = data.len().min(MAX_FRAME);
                            buf[HEADROOM..HEADROOM + n].copy_from_slice(&data[..n]);
                            let Some(mut fb) = FrameBuf::new(&mut buf, HEADROOM, n) else { continue };
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
                            sent += 1;
                            if sent.is_multiple_of(4096) {
                                let d = done.fetch_add(4096, Relaxed) + 4096;
                                if let Some(b) = bar {
                                    b.set_position(d);
                                }
                            }
                        }
                    }
                    sink.flush();
                    clocks[wi].store(u64::MAX, Relaxed);
                    while next_ev < events.len() {
                        apply(&events[next_ev]);
                        next_ev += 1;
                    }
                    worker.counters
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
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

/// Sleeps for `d`, waking every 20 ms to look at `stop`; false when it was set.
fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if stop.load(Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

/// How long to wait before the frame at capture offset `rel` (the worker's `sent`-th) is due,
/// if at all.
fn pace(p: Pacing, start: Instant, rel: u64, sent: u64, workers: usize) -> Option<Duration> {
    let due = match p {
        Pacing::Topspeed => return None,
        Pacing::Capture(mult) => Duration::from_secs_f64(rel as f64 / 1e9 / mult.max(1e-9)),
        Pacing::Pps(pps) => Duration::from_secs_f64(sent as f64 * workers as f64 / pps.max(1e-9)),
    };
    let now = start.elapsed();
    (due > now + Duration::from_micros(100)).then(|| due - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        let e = parse_event("1.5:drain=10.0.0.1").unwrap();
        assert_eq!((e.at, e.action), (Duration::from_millis(1500), Action::Drain("10.0.0.1".parse().unwrap())));
        let e = parse_event("0:weight=[2001:db8::1]:5").unwrap();
        assert_eq!(e.action, Action::Weight("2001:db8::1".parse().unwrap(), 5));
        let e = parse_event("3:add=10.0.0.9,weight=2,mac=02:00:00:00:00:09").unwrap();
        assert!(matches!(e.action, Action::Add(b) if b.weight == 2));
        for (bad, want) in [
            ("drain=1.2.3.4", "SECS:ACTION"),
            ("x:drain=1.2.3.4", "not a number"),
            ("-1:drain=1.2.3.4", "0 or more"),
            ("1:explode=1.2.3.4", "unknown action"),
            ("1:drain=nope", "not an address"),
            ("1:weight=10.0.0.1", "weight=ADDR:W"),
            ("1e20:drain=1.2.3.4", "beyond any capture"),
            ("inf:drain=1.2.3.4", "0 or more"),
        ] {
            let e = parse_event(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--at {bad:?}: ")) && e.contains(want), "{bad}: {e}");
        }
    }
}
