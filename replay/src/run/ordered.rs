//! Several workers, one output in capture order: each worker hands what it emitted for each
//! input frame, tagged with the frame's sequence number, to a bounded queue of its own; one
//! writer takes the frames in sequence order from whichever worker owns the next one, so the
//! output holds the same frames in the same order as one worker would write.
//!
//! Memory is bounded by the queues (`QUEUE` batches of at most `BATCH` input frames per
//! worker). A worker that runs ahead waits for the writer; the writer waits for the worker that
//! owns the next frame, as the reader's owner lists say (see the driver's note on why no cycle
//! of waits can form).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::{Output, Sink};
use crate::pipeline::OutputError;

/// Input frames per batch.
const BATCH: usize = 64;
/// Batches a worker may have queued before it waits for the writer.
const QUEUE: usize = 8;

/// What one worker emitted for a run of its input frames.
#[derive(Default)]
struct Batch {
    /// Per input frame: its sequence number and how many output frames it emitted.
    inputs: Vec<(u64, u32)>,
    /// Per output frame: its timestamp and length in `data`.
    frames: Vec<(u64, u32)>,
    data: Vec<u8>,
}

impl Batch {
    fn clear(&mut self) {
        self.inputs.clear();
        self.frames.clear();
        self.data.clear();
    }
}

/// A worker's end: collects the frames of each input frame, sends them in batches.
pub(super) struct OrderedSink {
    tx: SyncSender<Batch>,
    /// Emptied batches coming back from the writer, to be reused.
    spare: Receiver<Batch>,
    batch: Batch,
    /// Output frames emitted for the input frame in hand.
    pending: u32,
}

impl OrderedSink {
    fn send_batch(&mut self) {
        if self.batch.inputs.is_empty() {
            return;
        }
        let fresh = match self.spare.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Batch::default(),
        };
        let full = std::mem::replace(&mut self.batch, fresh);
        // The writer is gone only when the run is over: nothing left to deliver to.
        let _ = self.tx.send(full);
    }
}

impl Sink for OrderedSink {
    fn send(&mut self, ts_ns: u64, frame: &[u8]) -> Result<(), OutputError> {
        self.batch.frames.push((ts_ns, frame.len() as u32));
        self.batch.data.extend_from_slice(frame);
        self.pending += 1;
        Ok(())
    }

    fn flush(&mut self) {
        self.send_batch();
    }

    fn end_of_frame(&mut self, seq: u64) {
        self.batch.inputs.push((seq, self.pending));
        self.pending = 0;
        if self.batch.inputs.len() >= BATCH {
            self.send_batch();
        }
    }

    fn waiting(&mut self, at_barrier: bool) {
        if at_barrier {
            self.send_batch();
        }
    }
}

impl Drop for OrderedSink {
    fn drop(&mut self) {
        self.send_batch();
    }
}

/// The writer's end of one worker.
struct Lane {
    rx: Receiver<Batch>,
    /// The batch being read: its next input and output frame.
    current: Option<(Batch, usize, usize, usize)>,
    done: bool,
}

/// The writer: every worker's queue, and who owns which sequence number.
pub(super) struct Writer {
    lanes: Vec<Lane>,
    spare: Vec<SyncSender<Batch>>,
}

/// The sinks for `workers` workers and the writer that merges them.
pub(super) fn ordered(workers: usize) -> (Vec<OrderedSink>, Writer) {
    let mut sinks = Vec::with_capacity(workers);
    let mut lanes = Vec::with_capacity(workers);
    let mut spare = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = sync_channel(QUEUE);
        let (stx, srx) = sync_channel(QUEUE + 2);
        sinks.push(OrderedSink { tx, spare: srx, batch: Batch::default(), pending: 0 });
        lanes.push(Lane { rx, current: None, done: false });
        spare.push(stx);
    }
    (sinks, Writer { lanes, spare })
}

impl Writer {
    /// Writes every frame the workers emit, in sequence order: `owners` gives the worker of
    /// each sequence number in turn, from 0, in lists (handed back on `spare` to be reused).
    /// Returns when the owner lists end and every worker is done.
    pub(super) fn run(mut self, owners: Receiver<Vec<u16>>, spare: SyncSender<Vec<u16>>, out: &dyn Output) {
        let mut seq = 0u64;
        while let Ok(list) = owners.recv() {
            for &w in &list {
                self.write(seq, usize::from(w), out);
                seq += 1;
            }
            let _ = spare.try_send(list);
        }
        // Whatever is left (nothing, unless a worker misnumbered) is drained so no worker waits.
        for lane in &mut self.lanes {
            while lane.rx.recv().is_ok() {}
        }
    }

    /// Writes what input frame `seq`, of worker `w`, emitted.
    fn write(&mut self, seq: u64, w: usize, out: &dyn Output) {
        // The next input frame of worker `w` must be `seq`; a worker that stopped early has
        // none, and its remaining sequence numbers are passed over.
        while let Some((b, input, frame, offset)) = self.next_input(w) {
            let (s, n) = b.inputs[input];
            if s > seq {
                break;
            }
            let (mut frame, mut offset) = (frame, offset);
            for &(ts, len) in &b.frames[frame..frame + n as usize] {
                out.send(ts, &b.data[offset..offset + len as usize]);
                offset += len as usize;
                frame += 1;
            }
            self.advance(w, frame, offset);
            if s == seq {
                break;
            }
        }
    }

    /// The batch of worker `w` holding its next input frame, with that frame's position.
    fn next_input(&mut self, w: usize) -> Option<(&Batch, usize, usize, usize)> {
        loop {
            let lane = &mut self.lanes[w];
            if let Some((b, input, _, _)) = &lane.current {
                if *input < b.inputs.len() {
                    break;
                }
                let (b, ..) = lane.current.take().expect("checked above");
                let _ = self.spare[w].try_send(b);
                continue;
            }
            if lane.done {
                return None;
            }
            match self.lanes[w].rx.recv().ok() {
                Some(b) => self.lanes[w].current = Some((b, 0, 0, 0)),
                None => {
                    self.lanes[w].done = true;
                    return None;
                }
            }
        }
        let (b, input, frame, offset) = self.lanes[w].current.as_ref().expect("set above");
        Some((b, *input, *frame, *offset))
    }

    /// Moves worker `w` past its current input frame.
    fn advance(&mut self, w: usize, frame: usize, offset: usize) {
        if let Some((_, input, f, o)) = &mut self.lanes[w].current {
            *input += 1;
            *f = frame;
            *o = offset;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The owner lists of `0..total`, in lists of 100, as the reader hands them to the writer.
    fn owner_lists(total: u64, owner: impl Fn(u64) -> usize) -> Receiver<Vec<u16>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let all: Vec<u16> = (0..total).map(|s| owner(s) as u16).collect();
        for list in all.chunks(100) {
            tx.send(list.to_vec()).unwrap();
        }
        rx
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<(u64, Vec<u8>)>>);

    impl Output for Collect {
        fn send(&self, ts: u64, frame: &[u8]) {
            self.0.lock().unwrap().push((ts, frame.to_vec()));
        }
    }

    /// Three workers own interleaved sequence numbers and emit 0, 1 or 2 frames per input; the
    /// output is in sequence order whatever the threads' speeds.
    #[test]
    fn frames_come_out_in_sequence_order() {
        const TOTAL: u64 = 5_000;
        let owner = |s: u64| (s * 7 % 3) as usize;
        let (sinks, writer) = ordered(3);
        let out = Collect::default();
        std::thread::scope(|s| {
            for (w, mut sink) in sinks.into_iter().enumerate() {
                s.spawn(move || {
                    for seq in (0..TOTAL).filter(|&q| owner(q) == w) {
                        for k in 0..(seq % 3) {
                            sink.send(seq, &[(seq % 251) as u8, k as u8]).unwrap();
                        }
                        sink.end_of_frame(seq);
                        if seq % (97 + w as u64) == 0 {
                            std::thread::yield_now();
                        }
                    }
                });
            }
            writer.run(owner_lists(TOTAL, owner), sync_channel(1).0, &out);
        });
        let got = out.0.into_inner().unwrap();
        let want: Vec<(u64, Vec<u8>)> =
            (0..TOTAL).flat_map(|q| (0..q % 3).map(move |k| (q, vec![(q % 251) as u8, k as u8]))).collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "out of order");
    }

    /// A worker that stops early (its sink dropped) leaves gaps the writer passes over.
    #[test]
    fn a_worker_that_stops_early_does_not_hold_up_the_others() {
        let (mut sinks, writer) = ordered(2);
        let out = Collect::default();
        let mut s1 = sinks.pop().unwrap();
        let mut s0 = sinks.pop().unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                for seq in (0..100).filter(|q| q % 2 == 0) {
                    s0.send(seq, &[1]).unwrap();
                    s0.end_of_frame(seq);
                }
            });
            s.spawn(move || {
                for seq in (0..20).filter(|q| q % 2 == 1) {
                    s1.send(seq, &[2]).unwrap();
                    s1.end_of_frame(seq);
                }
            });
            writer.run(owner_lists(100, |q| (q % 2) as usize), sync_channel(1).0, &out);
        });
        let got: Vec<u64> = out.0.into_inner().unwrap().iter().map(|f| f.0).collect();
        let want: Vec<u64> = (0..100).filter(|q| q % 2 == 0 || *q < 20).collect();
        assert_eq!(got, want);
    }
}
