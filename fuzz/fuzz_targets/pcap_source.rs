//! `pcap_source`: any bytes as a capture file through `Capture::from_bytes` (pcap in every
//! byte order and timestamp resolution, pcapng, and the link types replay converts to Ethernet).
//!
//! Asserts: no panic; frames or a `CaptureError` that displays its reason. For frames: each
//! one's bytes can be taken, none is longer than the (decompressed) file plus a synthesized
//! Ethernet header, there are no more of them than records could fit in it, and no more
//! converted ones than frames. gzip and zstd input is decompressed up to 16 MiB.
#![no_main]

use std::path::Path;

use lb_replay::capture::{Capture, Compression};
use libfuzzer_sys::fuzz_target;

/// The smallest record: a classic pcap record header (pcapng's smallest packet block is 28).
const MIN_RECORD: usize = 16;
/// The longest header replay synthesizes (Ethernet, replacing a raw-IP, cooked or loopback one).
const SYNTH_ETHERNET: usize = 14;

/// The most a compressed input may decompress to here.
const LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let cap = match Capture::from_bytes_limited(Path::new("fuzz.pcap"), data, LIMIT) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    // What the readers saw: the decompressed bytes, at most LIMIT of them.
    let size = match Compression::of(data) {
        Some(_) => LIMIT as usize,
        None => data.len(),
    };
    assert!(cap.frames.len() <= size / MIN_RECORD, "{} frames from {size} bytes", cap.frames.len());
    assert!(cap.converted <= cap.frames.len());
    for f in &cap.frames {
        let bytes = cap.frame(f);
        assert!(bytes.len() <= size + SYNTH_ETHERNET, "a frame of {} bytes from {size} bytes", bytes.len());
    }
});
