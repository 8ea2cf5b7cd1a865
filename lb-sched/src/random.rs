//! `random`: weighted random choice by the alias method: Walker, "An efficient method for
//! generating discrete random variables with general distributions" (ACM TOMS 3(3), 1977), in
//! Vose's O(n) construction, "A linear algorithm for generating random numbers with a given
//! distribution" (IEEE TSE 17(9), 1991).
//!
//! What is implemented:
//!
//! * Built at rebuild time over the n destinations with weight > 0 (W = Σw), in exact integer
//!   arithmetic: each one has size `w_i · n` against columns of capacity W; Vose's small and
//!   large work lists (stacks, filled in list order) pair a small item with a large one until
//!   none is left; a column keeps its own destination with threshold `t_k` (out of W) and an
//!   alias. Destination i is then drawn with probability exactly `w_i / W`.
//! * Pick, O(1): column `k = below(n)` and `r = below(W)` from [`SchedConfig::random`] (the
//!   injectable [`crate::RandomSource`]); the column's own destination if `r < t_k`, else its
//!   alias.
//! * A drawn destination ineligible at pick time (OVERLOAD, or weight 0 before the edit's
//!   rebuild is published) is redrawn, up to [`MAX_DRAWS`] draws in all (which keeps the
//!   proportions among the eligible ones); then a bounded scan of the list from the last drawn
//!   destination returns the first eligible one, or `None`.

use std::sync::Arc;

use crate::{Change, Destination, Flow, RandomSource, SchedConfig, SchedError, Scheduler};

/// Draws a pick makes before falling back to a scan.
pub const MAX_DRAWS: usize = 8;

/// One column of the alias table: (threshold out of W, own destination, alias destination), the
/// destinations as indices into the list.
pub type Column = (u64, u32, u32);

/// Weighted random choice by the alias method.
#[derive(Debug)]
pub struct WeightedRandom {
    random: Arc<dyn RandomSource>,
    total: u64,
    /// Per column: (threshold out of `total`, own destination, alias destination).
    columns: Box<[Column]>,
}

/// Registry constructor.
pub fn build(cfg: &SchedConfig, dests: &[Arc<Destination>]) -> Result<Box<dyn Scheduler>, SchedError> {
    let (total, columns) = alias_table(dests);
    Ok(Box::new(WeightedRandom { random: Arc::clone(&cfg.random), total, columns }))
}

/// Vose's alias table: `(W, columns)`, each column `(threshold out of W, own, alias)` with
/// destinations as indices into `dests`.
pub fn alias_table(dests: &[Arc<Destination>]) -> (u64, Box<[Column]>) {
    let items: Vec<(u32, u64)> = dests
        .iter()
        .enumerate()
        .filter(|(_, d)| d.weight() > 0)
        .map(|(i, d)| (i as u32, u64::from(d.weight())))
        .collect();
    let n = items.len() as u128;
    let total: u64 = items.iter().map(|i| i.1).sum();
    let w = u128::from(total);
    // Remaining size of each item, out of a column capacity of W.
    let mut size: Vec<u128> = items.iter().map(|i| u128::from(i.1) * n).collect();
    let mut columns: Vec<Column> = items.iter().map(|i| (total, i.0, i.0)).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..items.len()).partition(|&k| size[k] < w);
    // Stacks: pop from the end, so reverse to take the list order first.
    small.reverse();
    large.reverse();
    while let (Some(&l), Some(&g)) = (small.last(), large.last()) {
        small.pop();
        columns[l] = (size[l] as u64, items[l].0, items[g].0);
        size[g] -= w - size[l];
        if size[g] < w {
            large.pop();
            small.push(g);
        }
    }
    // Whatever is left fills its own column (exactly, in integers).
    (total, columns.into_boxed_slice())
}

impl WeightedRandom {
    /// The alias table's columns: `(threshold out of W, own, alias)`.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
}

impl Scheduler for WeightedRandom {
    fn name(&self) -> &'static str {
        "random"
    }

    #[inline]
    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        let n = self.columns.len();
        if n == 0 || self.total == 0 {
            return None;
        }
        let mut last = 0;
        for _ in 0..MAX_DRAWS {
            let k = self.random.below(n as u64) as usize;
            let r = self.random.below(self.total);
            let &(t, own, alias) = self.columns.get(k)?;
            let i = if r < t { own } else { alias } as usize;
            if dests.get(i)?.is_eligible() {
                return Some(i);
            }
            last = i;
        }
        (1..dests.len()).map(|k| (last + k) % dests.len()).find(|&i| dests[i].is_eligible())
    }

    fn rebuild(&self, dests: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        let (total, columns) = alias_table(dests);
        Ok(Box::new(WeightedRandom { random: Arc::clone(&self.random), total, columns }))
    }
}
