//! `twos`: weighted power of two choices (IPVS `ip_vs_twos.c`).
//!
//! W = the sum of the weights of eligible destinations (no OVERLOAD, weight > 0). Two values
//! r1, r2 are drawn from `0..=W`. Walking the eligible destinations in list order and subtracting
//! each weight from both, the first destination where r1 (resp. r2) becomes ≤ 0 is choice 1
//! (resp. 2). Choice 2 wins when `w2 * overhead1 > w1 * overhead2`, otherwise choice 1. Because
//! r can be 0, the first eligible destination is chosen with probability (w1 + 1) / (W + 1).
//! The random numbers come from an injectable [`RandomSource`].

use std::sync::Arc;

use crate::{Change, Destination, Flow, RandomSource, SchedConfig, SchedError, Scheduler};

/// Power of two choices.
#[derive(Debug)]
pub struct TwoChoices {
    random: Arc<dyn RandomSource>,
}

/// Registry constructor.
pub fn build(cfg: &SchedConfig, _dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(Box::new(TwoChoices { random: Arc::clone(&cfg.random) }))
}

impl Scheduler for TwoChoices {
    fn name(&self) -> &'static str {
        "twos"
    }

    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        let total: u64 = dests.iter().filter(|d| d.is_eligible()).map(|d| u64::from(d.weight())).sum();
        if total == 0 {
            return None;
        }
        let mut r1 = self.random.below(total + 1) as i128;
        let mut r2 = self.random.below(total + 1) as i128;
        // (index, weight, overhead) of each choice.
        type Choice = Option<(usize, u128, u128)>;
        let (mut c1, mut c2): (Choice, Choice) = (None, None);
        for (i, d) in dests.iter().enumerate() {
            if !d.is_eligible() {
                continue;
            }
            let w = d.weight();
            r1 -= i128::from(w);
            r2 -= i128::from(w);
            if r1 <= 0 && c1.is_none() {
                c1 = Some((i, u128::from(w), u128::from(d.overhead())));
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some((i, u128::from(w), u128::from(d.overhead())));
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        // r1, r2 <= W: both walks end on a destination (unless weights changed under us).
        match (c1, c2) {
            (Some((i1, w1, oh1)), Some((i2, w2, oh2))) => Some(if w2 * oh1 > w1 * oh2 { i2 } else { i1 }),
            (Some((i, ..)), None) | (None, Some((i, ..))) => Some(i),
            (None, None) => dests.iter().rposition(|d| d.is_eligible()),
        }
    }

    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(TwoChoices { random: Arc::clone(&self.random) }))
    }
}
