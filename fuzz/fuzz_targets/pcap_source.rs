//! `pcap_source`: any bytes as a capture file through `Capture::from_bytes` (pcap in every
//! byte order and timestamp resolution, pcapng, and the link types replay converts to Ethernet).
//!
//! Asserts: no panic; frames or a `CaptureError` that displays its reason. For frames: each
//! one's bytes can be taken, none is longer than the file plus a synthesized Ethernet header,
//! there are no more of them than records could fit in the file, and no more converted ones than
//! frames.
#![no_main]

use std::path::Path;

use lb_replay::capture::Capture;
use libfuzzer_sys::fuzz_target;

/// The smallest record: a classic pcap record header (pcapng's smallest packet block is 28).
const MIN_RECORD: usize = 16;
/// The longest header replay synthesizes (Ethernet, replacing a raw-IP, cooked or loopback one).
const SYNTH_ETHERNET: usize = 14;

fuzz_target!(|data: &[u8]| {
    let cap = match Capture::from_bytes(Path::new("fuzz.pcap"), data) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(cap.frames.len() <= data.len() / MIN_RECORD, "{} frames from {} bytes", cap.frames.len(), data.len());
    assert!(cap.converted <= cap.frames.len());
    for f in &cap.frames {
        let bytes = cap.frame(f);
        assert!(
            bytes.len() <= data.len() + SYNTH_ETHERNET,
            "a frame of {} bytes from {} bytes",
            bytes.len(),
            data.len()
        );
    }
});
