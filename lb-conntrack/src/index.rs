//! A small open-addressing index (linear probing, backward-shift deletion) from a 64-bit hash to
//! slab slots. Each bucket is one `u64`: the hash's high 32 bits beside `slot + 1` (0 = empty).
//! The caller compares keys through a closure, so the index stores no keys and one table can
//! serve any key type.

const MIN_BUCKETS: usize = 16;

#[derive(Debug)]
pub(crate) struct OpenIndex {
    buckets: Vec<u64>,
    mask: usize,
    len: usize,
}

#[inline]
fn h32(h: u64) -> u32 {
    (h >> 32) as u32
}

impl OpenIndex {
    pub(crate) fn new() -> Self {
        OpenIndex { buckets: vec![0; MIN_BUCKETS], mask: MIN_BUCKETS - 1, len: 0 }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the bucket array.
    pub(crate) fn bytes(&self) -> usize {
        self.buckets.capacity() * 8
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    /// The slot whose key `eq` accepts, among those stored under hash `h`. Always inlined: the
    /// closure then reads the caller's key from registers, and the hit path makes no call.
    #[inline(always)]
    pub(crate) fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = h32(h);
        let mut pos = self.home(tag);
        loop {
            let b = self.buckets[pos];
            if b == 0 {
                return None;
            }
            if (b >> 32) as u32 == tag {
                let slot = (b as u32) - 1;
                if eq(slot) {
                    return Some(slot);
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// A read of the home bucket of `h`, for callers that want its cache line loaded early.
    #[inline]
    pub(crate) fn touch(&self, h: u64) -> u64 {
        self.buckets[self.home(h32(h))]
    }

    /// Stores `slot` under `h` (the caller guarantees it is not already there).
    pub(crate) fn insert(&mut self, h: u64, slot: u32) {
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.grow();
        }
        self.place(h32(h), slot);
        self.len += 1;
    }

    fn place(&mut self, tag: u32, slot: u32) {
        let mut pos = self.home(tag);
        while self.buckets[pos] != 0 {
            pos = (pos + 1) & self.mask;
        }
        self.buckets[pos] = (u64::from(tag) << 32) | u64::from(slot + 1);
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.buckets, vec![0; (self.mask + 1) * 2]);
        self.mask = self.buckets.len() - 1;
        for b in old.into_iter().filter(|&b| b != 0) {
            self.place((b >> 32) as u32, (b as u32) - 1);
        }
    }

    /// Removes `slot` stored under `h`; returns whether it was there.
    pub(crate) fn remove(&mut self, h: u64, slot: u32) -> bool {
        let tag = h32(h);
        let want = (u64::from(tag) << 32) | u64::from(slot + 1);
        let mut i = self.home(tag);
        loop {
            let b = self.buckets[i];
            if b == 0 {
                return false;
            }
            if b == want {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: pull later members of the probe run into the hole.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let b = self.buckets[j];
            if b == 0 {
                break;
            }
            let k = self.home((b >> 32) as u32);
            // Move b into the hole at i unless its home lies cyclically in (i, j].
            let in_range = if i <= j { i < k && k <= j } else { i < k || k <= j };
            if !in_range {
                self.buckets[i] = b;
                i = j;
            }
        }
        self.buckets[i] = 0;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// The index agrees with a HashMap model under any insert/remove sequence, including
        /// hashes that collide on purpose (few distinct values).
        #[test]
        fn matches_a_model(ops in prop::collection::vec((any::<bool>(), 0u64..64, 0u32..200), 0..600)) {
            let mut idx = OpenIndex::new();
            let mut model: HashMap<u32, u64> = HashMap::new();
            for (ins, hsel, slot) in ops {
                // Hashes with few distinct high words and homes: long probe runs and wrap-around.
                let h = (hsel.wrapping_mul(0x9E37_79B9) << 32) | hsel;
                if ins {
                    if let std::collections::hash_map::Entry::Vacant(e) = model.entry(slot) {
                        e.insert(h);
                        idx.insert(h, slot);
                    }
                } else if let Some(h) = model.remove(&slot) {
                    prop_assert!(idx.remove(h, slot));
                } else {
                    prop_assert!(!idx.remove(h, slot));
                }
                prop_assert_eq!(idx.len(), model.len());
            }
            for (&slot, &h) in &model {
                prop_assert_eq!(idx.find(h, |s| s == slot), Some(slot));
            }
        }
    }
}
