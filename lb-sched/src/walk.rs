//! The destination walks the connection-based schedulers share: lc, wlc, sed, nq, fo and ovf
//! are each one of these with their own load or filter. Every walk goes through the list in
//! order and keeps the first destination on a tie.

use std::sync::Arc;

use crate::Destination;

/// sed's and nq's overhead: `activeconns + 1` (inactive connections are ignored).
#[inline]
pub(crate) fn sed_overhead(d: &Destination) -> u64 {
    u64::from(d.active_conns()) + 1
}

/// The least `overhead` among eligible destinations (no OVERLOAD, weight > 0), weights ignored;
/// strict `<` (lc).
#[inline]
pub(crate) fn least(dests: &[Arc<Destination>], overhead: impl Fn(&Destination) -> u64) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_eligible() {
            continue;
        }
        let doh = overhead(d);
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

/// The weighted-least walk of wlc and sed: the first eligible destination becomes `least`; each
/// later one without OVERLOAD replaces it when `loh * w_d > doh * w_least` (products computed
/// wide so they never overflow). A weight-0 destination can never win.
#[inline]
pub(crate) fn weighted_least(dests: &[Arc<Destination>], overhead: impl Fn(&Destination) -> u64) -> Option<usize> {
    let first = dests.iter().position(|d| d.is_eligible())?;
    let (mut least, mut loh, mut lw) = (first, overhead(&dests[first]), u128::from(dests[first].weight()));
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.is_overloaded() {
            continue;
        }
        let doh = overhead(d);
        let dw = u128::from(d.weight());
        if u128::from(loh) * dw > u128::from(doh) * lw {
            (least, loh, lw) = (i, doh, dw);
        }
    }
    Some(least)
}

/// nq's walk: among eligible destinations, the first one without an active connection at once;
/// otherwise the weighted least [`sed_overhead`], as [`weighted_least`] but over eligible
/// destinations only.
#[inline]
pub(crate) fn idle_or_weighted_least(dests: &[Arc<Destination>]) -> Option<usize> {
    let mut least: Option<(usize, u64, u128)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_eligible() {
            continue;
        }
        if d.active_conns() == 0 {
            return Some(i);
        }
        let (doh, dw) = (sed_overhead(d), u128::from(d.weight()));
        if least.is_none_or(|(_, loh, lw)| u128::from(loh) * dw > u128::from(doh) * lw) {
            least = Some((i, doh, dw));
        }
    }
    least.map(|(i, _, _)| i)
}

/// The highest-weight destination among those without OVERLOAD, with weight > 0 and accepted
/// by `ok`; strict `>` (fo, ovf).
#[inline]
pub(crate) fn highest_weight(dests: &[Arc<Destination>], ok: impl Fn(&Destination) -> bool) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        let w = d.weight();
        if w == 0 || d.is_overloaded() || !ok(d) {
            continue;
        }
        if best.is_none_or(|(_, bw)| w > bw) {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}
