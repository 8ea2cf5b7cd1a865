//! The replay driver: frames of a capture through the pipeline on N workers, paced, with
//! operator events at capture times, to an output.
//!
//! A reader thread reads the capture a frame at a time and hands each worker its frames in
//! chunks, through a queue of a few chunks per worker: memory is bounded by those
//! queues, whatever the capture's size. An event is a message in every worker's queue, after
//! every frame before its time; the workers meet at it, one applies it.
//!
//! With several workers and one output, an ordered writer merges what the workers emit back
//! into input order. The reader hands chunks on in the order of their first frame, and tells the
//! writer which worker owns each frame before it hands the frames on; a worker hands on what it
//! emitted before it waits for input. So the frame the writer waits for is always in a worker's
//! hands or queue, and that worker is never blocked on the writer: no cycle of waits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use lb_rewrite::FrameBuf;
use lb_sched::Timestamp;

use crate::capture::{CaptureError, Source};
use crate::pipeline::{
    recycle_burst, BurstOutput, Counters, DropReason, Outcome, OutputError, Pipeline, Worker, BURST,
};

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
    /// Worker threads (`--workers`): frames are spread by [`Pipeline::steer`], each worker
    /// owning its connections.
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
    /// Capture time from the first frame to the last one read, over every loop.
    pub span: Duration,
    /// Set when the capture could not be read again for another loop (the loops before it
    /// were replayed).
    pub input_error: Option<CaptureError>,
    /// The connection-table partitions the workers owned ([`Worker::owning`]; none when they
    /// used the pipeline's shared table), kept so that what they hold is still counted at the
    /// destinations when the report is made. Their statistics add to the shared table's.
    pub partitions: Vec<lb_conntrack::Partition>,
}

impl RunResult {
    /// The connection table's statistics: the shared table's and every partition's, summed.
    pub fn table_stats(&self, pipe: &Pipeline) -> lb_conntrack::Stats {
        let mut s = pipe.table.stats();
        for p in &self.partitions {
            s.merge(&p.stats());
        }
        s
    }
}

/// Headroom left in front of each frame for encapsulation.
pub const HEADROOM: usize = 128;
/// Largest frame handled (with room for the headers TUN adds).
pub const MAX_FRAME: usize = 65_535 + 64;

/// Input frames the reader hands a worker at a time (fewer at an event or the end).
const CHUNK_FRAMES: usize = 256;
/// Bytes of frames the reader hands a worker at a time (one frame more at most), with one or
/// two workers; with more, less (`CHUNK_BYTES_ALL` over the workers, at least
/// `CHUNK_BYTES_MIN`), so the memory in flight stays about the same whatever `--workers` is.
const CHUNK_BYTES: usize = 256 << 10;
/// See [`CHUNK_BYTES`].
const CHUNK_BYTES_ALL: usize = 512 << 10;
/// See [`CHUNK_BYTES`].
const CHUNK_BYTES_MIN: usize = 16 << 10;
/// Emptied chunks a worker hands back to the reader for reuse (more are freed).
const CHUNK_SPARE: usize = 2;

/// The bytes of a chunk with `workers` workers.
fn chunk_bytes(workers: usize) -> usize {
    (CHUNK_BYTES_ALL / workers.max(1)).clamp(CHUNK_BYTES_MIN, CHUNK_BYTES)
}
/// Chunks a worker may have waiting before the reader waits for it.
const CHUNK_QUEUE: usize = 4;

/// Replays the frames of `src` through `pipe` to `out`. The capture is read as the replay goes,
/// by a thread of its own, through bounded queues: the memory used does not depend on its size.
/// With several workers, the frames reach `out` in the order one worker would emit them (a
/// bounded merge by input frame).
pub fn run<S: Source + ?Sized>(src: &mut S, pipe: &Pipeline, cfg: &RunConfig, out: &dyn Output) -> RunResult {
    let workers = cfg.workers.max(1);
    if workers == 1 {
        return drive(src, pipe, cfg, vec![Box::new(Shared(out))], None);
    }
    let (sinks, writer) = ordered::ordered(workers);
    let sinks: Vec<Box<dyn Sink + '_>> = sinks.into_iter().map(|s| Box::new(s) as Box<dyn Sink>).collect();
    let (owners_tx, owners_rx) = sync_channel::<Vec<u16>>(OWNER_QUEUE);
    let (spare_tx, spare_rx) = sync_channel::<Vec<u16>>(OWNER_QUEUE + 2);
    std::thread::scope(|s| {
        s.spawn(move || writer.run(owners_rx, spare_tx, out));
        drive(src, pipe, cfg, sinks, Some((owners_tx, spare_rx)))
    })
}

/// The reader's end of the ordered writer's owner lists: where to send them, and the emptied
/// ones coming back.
type OwnerQueue = (SyncSender<Vec<u16>>, Receiver<Vec<u16>>);

/// Owner lists (one per flush of the reader) queued for the ordered writer.
const OWNER_QUEUE: usize = 2 * CHUNK_QUEUE + 2;

/// Replays `src` through `pipe`, worker `w` sending to `sinks[w]` (one per worker), each sink
/// in the order of that worker's frames.
pub fn run_sinks<'a, S: Source + ?Sized>(
    src: &mut S,
    pipe: &Pipeline,
    cfg: &RunConfig,
    sinks: Vec<Box<dyn Sink + 'a>>,
) -> RunResult {
    drive(src, pipe, cfg, sinks, None)
}

/// One input frame in a [`Chunk`].
#[derive(Clone, Copy, Debug)]
struct Item {
    /// Its sequence number over the whole replay (all loops).
    seq: u64,
    /// Its capture time, continued across loops.
    ts: u64,
    /// When it is due, relative to the start, before pacing.
    due: u64,
    off: u32,
    len: u32,
}

/// Frames the reader hands one worker at a time.
#[derive(Debug, Default)]
struct Chunk {
    items: Vec<Item>,
    data: Vec<u8>,
}

/// What a worker receives.
enum Msg {
    Frames(Chunk),
    /// Event `i` (of the sorted list) is due: every worker meets at it.
    Event(usize),
}

/// The reader's end of the workers' queues.
struct Feed {
    tx: Vec<Option<SyncSender<Msg>>>,
    spare: Vec<Receiver<Chunk>>,
    partial: Vec<Chunk>,
    /// The ordered writer's queue of owners, and its returned lists.
    order: Option<OwnerQueue>,
    owners: Vec<u16>,
    /// The workers with frames waiting, by their first frame (kept to reuse its allocation).
    ready: Vec<(u64, usize)>,
    /// The bytes at which a chunk is handed on.
    chunk_bytes: usize,
}

impl Feed {
    fn push(&mut self, w: usize, item: Item, frame: &[u8]) {
        let c = &mut self.partial[w];
        let item = Item { off: c.data.len() as u32, len: frame.len() as u32, ..item };
        c.data.extend_from_slice(frame);
        c.items.push(item);
        if self.order.is_some() {
            self.owners.push(w as u16);
        }
        if c.items.len() >= CHUNK_FRAMES || c.data.len() >= self.chunk_bytes {
            self.flush();
        }
    }

    /// Hands every worker what it has waiting, oldest first (see the module's note on why this
    /// order cannot deadlock the ordered writer).
    fn flush(&mut self) {
        if let Some((tx, spare)) = &self.order {
            if !self.owners.is_empty() {
                let fresh = spare.try_recv().map(|mut v| {
                    v.clear();
                    v
                });
                let list = std::mem::replace(&mut self.owners, fresh.unwrap_or_default());
                let _ = tx.send(list);
            }
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.partial.iter().enumerate().filter_map(|(w, c)| c.items.first().map(|i| (i.seq, w))));
        ready.sort_unstable();
        for &(_, w) in &ready {
            let fresh = match self.spare[w].try_recv() {
                Ok(mut c) => {
                    c.items.clear();
                    c.data.clear();
                    c
                }
                Err(_) => Chunk::default(),
            };
            let chunk = std::mem::replace(&mut self.partial[w], fresh);
            // A worker that is gone (it panicked) takes nothing more.
            if let Some(tx) = &self.tx[w] {
                if tx.send(Msg::Frames(chunk)).is_err() {
                    self.tx[w] = None;
                }
            }
        }
        self.ready = ready;
    }

    /// Hands everything waiting on, then event `i` to every worker.
    fn event(&mut self, i: usize) {
        self.flush();
        for tx in self.tx.iter_mut() {
            if let Some(t) = tx {
                if t.send(Msg::Event(i)).is_err() {
                    *tx = None;
                }
            }
        }
    }
}

/// What the reader found.
struct ReadEnd {
    span: u64,
    error: Option<CaptureError>,
}

/// Reads `src` (every loop) into the workers' queues, with the events at their capture times.
fn read_into<S: Source + ?Sized>(
    src: &mut S,
    cfg: &RunConfig,
    events: &[Event],
    pipe: &Pipeline,
    workers: usize,
    feed: &mut Feed,
    stop: &AtomicBool,
) -> ReadEnd {
    let loops = u64::from(cfg.loops.max(1));
    let max_gap = cfg.max_gap.map_or(u64::MAX, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
    let mut frame = Vec::with_capacity(MAX_FRAME);
    let mut seq = 0u64;
    let mut first: Option<u64> = None;
    // The last frame of the first pass (in file order), and its due time.
    let (mut last, mut due_end) = (0u64, 0u64);
    let (mut span, mut due_span) = (0u64, 0u64);
    let mut next_ev = 0usize;
    let mut rel_end = 0u64;
    let mut error = None;
    'loops: for lp in 0..loops {
        if lp > 0 {
            if let Err(e) = src.rewind() {
                error = Some(e);
                break;
            }
            if lp == 1 {
                // Each loop continues the clock where the last ended (plus a second), so
                // connection timing stays monotonic; a loop is due a second after the last
                // one's last frame (or `max_gap` if shorter).
                span = last.saturating_sub(first.unwrap_or(0)) + 1_000_000_000;
                due_span = due_end.saturating_add(1_000_000_000u64.min(max_gap));
            }
        }
        let mut due = 0u64;
        let mut prev = first;
        loop {
            if stop.load(Relaxed) {
                break 'loops;
            }
            frame.clear();
            let Some(ts0) = src.next_frame(&mut frame) else { break };
            let first = *first.get_or_insert(ts0);
            // When the frame is due, relative to the first, with gaps over `max_gap` cut short.
            let p = prev.unwrap_or(first);
            due = due.saturating_add(ts0.saturating_sub(p).min(max_gap));
            prev = Some(p.max(ts0));
            if lp == 0 {
                (last, due_end) = (ts0, due);
            }
            let shift = lp.saturating_mul(span);
            let rel = ts0.saturating_sub(first).saturating_add(shift);
            rel_end = rel;
            while next_ev < events.len() && events[next_ev].at.as_nanos() <= u128::from(rel) {
                feed.event(next_ev);
                next_ev += 1;
            }
            frame.truncate(MAX_FRAME);
            let item = Item {
                seq,
                ts: ts0.saturating_add(shift),
                due: due.saturating_add(lp.saturating_mul(due_span)),
                off: 0,
                len: 0,
            };
            feed.push(pipe.steer(&frame, workers), item, &frame);
            seq += 1;
        }
    }
    feed.flush();
    // Events after the last frame are applied when the replay ends (not when it is stopped).
    if !stop.load(Relaxed) {
        while next_ev < events.len() {
            feed.event(next_ev);
            next_ev += 1;
        }
    }
    ReadEnd { span: rel_end, error }
}

/// The replay: a reader thread feeding one thread per sink.
fn drive<'a, S: Source + ?Sized>(
    src: &mut S,
    pipe: &Pipeline,
    cfg: &RunConfig,
    sinks: Vec<Box<dyn Sink + 'a>>,
    order: Option<OwnerQueue>,
) -> RunResult {
    let workers = sinks.len().max(1);
    let mut events = cfg.events.clone();
    events.sort_by_key(|e| e.at);
    let barrier = Barrier::new(workers);
    // Each worker owns its connections (a partition of the table: no lock on any packet) when
    // steering keeps every connection and persistent client on one worker; otherwise they share
    // the pipeline's table.
    let owned = workers == 1 || pipe.can_partition();
    // Each worker's current capture time: the shared table's connections are expired at the
    // earliest of them (a worker that owns its connections expires them on its own clock).
    let clocks: Vec<AtomicU64> = (0..workers).map(|_| AtomicU64::new(0)).collect();
    let applied = Mutex::new(Vec::new());
    let emitted = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let never = AtomicBool::new(false);
    let stop: &AtomicBool = cfg.stop.as_deref().unwrap_or(&never);
    let mut txs = Vec::with_capacity(workers);
    let mut rxs = Vec::with_capacity(workers);
    let mut spare_tx = Vec::with_capacity(workers);
    let mut spare_rx = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = sync_channel::<Msg>(CHUNK_QUEUE);
        let (stx, srx) = sync_channel::<Chunk>(CHUNK_SPARE);
        txs.push(Some(tx));
        rxs.push(rx);
        spare_tx.push(stx);
        spare_rx.push(srx);
    }
    let mut feed = Feed {
        tx: txs,
        spare: spare_rx,
        partial: (0..workers).map(|_| Chunk::default()).collect(),
        order,
        owners: Vec::new(),
        ready: Vec::with_capacity(workers),
        chunk_bytes: chunk_bytes(workers),
    };
    let start = Instant::now();
    let (counters, end): (Vec<(Counters, Option<lb_conntrack::Partition>)>, ReadEnd) = std::thread::scope(|s| {
        if cfg.progress {
            s.spawn(|| progress(&done, &finished));
        }
        let handles: Vec<_> = rxs
            .into_iter()
            .zip(spare_tx)
            .zip(sinks)
            .enumerate()
            .map(|(wi, ((rx, spare), mut sink))| {
                let (barrier, applied, emitted, done, events, clocks) =
                    (&barrier, &applied, &emitted, &done, &events, &clocks);
                s.spawn(move || {
                    let mut worker = if owned { Worker::owning(pipe) } else { Worker::new(pipe) };
                    worker.auto_expire = false;
                    // A burst's frames, each behind its headroom (grown for larger frames).
                    let mut arena = vec![0u8; BURST * (HEADROOM + 2048)];
                    let mut spare_frames: Vec<(Timestamp, FrameBuf<'static>)> = Vec::with_capacity(BURST);
                    let mut sent = 0u64;
                    loop {
                        let msg = match rx.try_recv() {
                            Ok(m) => m,
                            Err(TryRecvError::Disconnected) => break,
                            Err(TryRecvError::Empty) => {
                                // Hand on what is queued before waiting: the ordered writer may
                                // need it to let the reader go on.
                                sink.flush();
                                match rx.recv() {
                                    Ok(m) => m,
                                    Err(_) => break,
                                }
                            }
                        };
                        let chunk = match msg {
                            Msg::Event(i) => {
                                // Every worker meets every event the reader hands on; a stopped
                                // replay applies no further one.
                                sink.waiting(true);
                                if barrier.wait().is_leader() && !stop.load(Relaxed) {
                                    let ev = &events[i];
                                    let r = pipe.apply(&ev.action).map_err(|e| e.to_string());
                                    applied.lock().unwrap_or_else(|e| e.into_inner()).push((ev.at, ev.text.clone(), r));
                                }
                                barrier.wait();
                                sink.waiting(false);
                                continue;
                            }
                            Msg::Frames(c) => c,
                        };
                        // At top speed, bursts (their table lookups warmed together); paced,
                        // a frame at a time, each at its moment.
                        let per = if cfg.pacing == Pacing::Topspeed { BURST } else { 1 };
                        for items in chunk.items.chunks(per) {
                            if stop.load(Relaxed) {
                                break;
                            }
                            if let Some(wait) = pace(cfg.pacing, start, items[0].due, sent, workers) {
                                sink.flush();
                                if !sleep_unless(stop, wait) {
                                    break;
                                }
                            }
                            let last = items[items.len() - 1].ts;
                            clocks[wi].store(last, Relaxed);
                            if sent / 1024 != (sent + items.len() as u64) / 1024 {
                                if owned {
                                    worker.expire(Timestamp::from_nanos(last));
                                } else {
                                    let min = clocks.iter().map(|c| c.load(Relaxed)).min().unwrap_or(last);
                                    pipe.expire(Timestamp::from_nanos(min));
                                }
                            }
                            // Each frame behind its headroom, one after another in the arena.
                            let need: usize = items.iter().map(|it| HEADROOM + it.len as usize).sum();
                            if arena.len() < need {
                                // Frames larger than 2 KiB: at most one chunk's worth.
                                arena.resize(need, 0);
                            }
                            let mut frames = recycle_burst(std::mem::take(&mut spare_frames));
                            let mut rest = &mut arena[..];
                            for it in items {
                                let n = it.len as usize;
                                let (head, tail) = std::mem::take(&mut rest).split_at_mut(HEADROOM + n);
                                rest = tail;
                                let at = it.off as usize;
                                head[HEADROOM..].copy_from_slice(&chunk.data[at..at + n]);
                                // `head` is exactly the headroom and the frame: it fits.
                                let fb = FrameBuf::new(head, HEADROOM, n).expect("a frame fits its own space");
                                frames.push((Timestamp::from_nanos(it.ts), fb));
                            }
                            let mut out = BurstSink {
                                sink: &mut *sink,
                                items,
                                emitted: 0,
                                refused: [0; OutputError::COUNT],
                                refusal: None,
                                lost: [0; OutputError::COUNT],
                            };
                            worker.process_burst(&mut frames, &mut out);
                            let BurstSink { emitted: extra, refused, lost, .. } = out;
                            for (i, (r, l)) in refused.iter().zip(&lost).enumerate() {
                                let why = OutputError::ALL[i];
                                worker.counters.output_refused[why.index()] += r;
                                for _ in 0..*l {
                                    // The output could not carry a forwarded frame: a drop with
                                    // its own reason.
                                    worker.counters.forwarded -= 1;
                                    worker.counters.dropped.add(DropReason::Output(why));
                                }
                            }
                            spare_frames = recycle_burst(frames);
                            emitted.fetch_add(extra, Relaxed);
                            let before = sent;
                            sent += items.len() as u64;
                            if before / PROGRESS_STEP != sent / PROGRESS_STEP {
                                done.fetch_add(sent - before, Relaxed);
                            }
                        }
                        let _ = spare.try_send(chunk);
                    }
                    sink.flush();
                    clocks[wi].store(u64::MAX, Relaxed);
                    drop(sink);
                    let counters = std::mem::take(&mut worker.counters);
                    (counters, worker.into_partition())
                })
            })
            .collect();
        let end = read_into(src, cfg, &events, pipe, workers, &mut feed, stop);
        drop(feed);
        let counters = handles.into_iter().map(|h| h.join().unwrap_or_default()).collect();
        finished.store(true, Relaxed);
        (counters, end)
    });
    let mut merged = Counters::default();
    let mut partitions = Vec::new();
    for (c, p) in counters {
        merged.merge(&c);
        partitions.extend(p);
    }
    let mut applied = applied.into_inner().unwrap_or_else(|e| e.into_inner());
    applied.sort_by_key(|e| e.0);
    RunResult {
        counters: merged,
        frames_emitted: emitted.into_inner(),
        events: applied,
        elapsed: start.elapsed(),
        stopped: stop.load(Relaxed),
        span: Duration::from_nanos(end.span),
        input_error: end.error,
        partitions,
    }
}

/// A worker's sink as a burst's output: each input frame's frames, then its end, in order.
struct BurstSink<'s, 'i> {
    sink: &'s mut (dyn Sink + 's),
    items: &'i [Item],
    emitted: u64,
    /// Input frames some of whose own frames (ICMP errors, fragments) the output refused, by
    /// the reason of the last refusal.
    refused: [u64; OutputError::COUNT],
    /// The last refusal of the input frame in hand.
    refusal: Option<OutputError>,
    /// Forwarded frames the output refused, by reason.
    lost: [u64; OutputError::COUNT],
}

impl BurstOutput for BurstSink<'_, '_> {
    fn emit(&mut self, i: usize, frame: &[u8]) {
        match self.sink.send(self.items[i].ts, frame) {
            Ok(()) => self.emitted += 1,
            Err(why) => self.refusal = Some(why),
        }
    }

    fn done(&mut self, i: usize, outcome: Outcome, frame: &[u8]) {
        let it = &self.items[i];
        if outcome == Outcome::Forwarded {
            match self.sink.send(it.ts, frame) {
                Ok(()) => self.emitted += 1,
                Err(why) => self.lost[why.index()] += 1,
            }
        }
        if let Some(why) = self.refusal.take() {
            self.refused[why.index()] += 1;
        }
        self.sink.end_of_frame(it.seq);
    }
}

/// Frames a worker processes between two updates of the shared progress count.
const PROGRESS_STEP: u64 = 64;

/// The progress bar on standard error: shown once the replay has run for a second, refreshed by
/// time (indicatif draws at most 20 times a second) from the workers' shared count, cleared at
/// the end.
fn progress(done: &AtomicU64, finished: &AtomicBool) {
    // The capture is read as the replay goes: how many frames it holds is not known ahead.
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} frames {per_sec} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let start = Instant::now();
    let mut shown = false;
    while !finished.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if !shown && start.elapsed() >= Duration::from_secs(1) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_position(done.load(Relaxed));
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
