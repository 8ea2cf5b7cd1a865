//! `rewrite_dr`: direct routing of any frame with any MTU, MACs and headroom.
//!
//! Asserts: no panic; no write outside the frame (sentinels all around it); an error other than
//! `MtuTooSmall` leaves the buffer unchanged; verdicts as documented (`TimeExceeded` changes
//! nothing, `TooBig` only the TTL, fragments counted and parseable, replies well formed). When
//! the packet describes its frame and the result is `Forward`: only the MACs, the TTL / hop
//! limit and the IPv4 header checksum changed, the output parses (etherparse and lb-rewrite)
//! with the same flow, and every checksum keeps its validity (right stays right, wrong stays
//! exactly as wrong, judged by etherparse's full recomputation).
#![no_main]

use lb_rewrite::{dr, Verdict};
use lbkit_fuzz::rewrite::{run, Case, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input<'_>| {
    let Some(case) = Case::new(&input) else { return };
    let (pkt, hop) = (case.pkt, case.hop());
    let mut arena = case.arena();
    let done = run(&mut arena, |fb, sink| dr(fb, &pkt, &hop, sink));
    case.check_common(&arena, &done, 0);
    if done.result == Ok(Verdict::Forward) && case.trusted {
        let out = &arena.buf[done.start..done.start + done.len];
        case.check_in_place(out, &case.forwarding_bytes(), false, pkt.flow());
    }
});
