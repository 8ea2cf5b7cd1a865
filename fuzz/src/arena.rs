//! A frame inside a larger buffer whose every other byte is a known sentinel pattern, to catch
//! writes outside the region a rewriter may touch.

use lb_rewrite::FrameBuf;

/// Sentinel bytes after the frame (a rewriter that trusts a length it should not would write
/// here).
pub const TAIL: usize = 512;

/// The sentinel byte at buffer position `i`: a pattern rather than one value, so that a stray
/// copy of the buffer onto itself is seen too.
#[inline]
pub fn sentinel(i: usize) -> u8 {
    (i as u8).wrapping_mul(151).wrapping_add(89)
}

/// `frame` at offset `head` of a buffer of sentinels (`head` bytes of headroom in front of it,
/// [`TAIL`] bytes after it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arena {
    /// The whole buffer.
    pub buf: Vec<u8>,
    /// Where the frame starts.
    pub head: usize,
    /// The frame's length.
    pub len: usize,
}

impl Arena {
    /// The buffer for `frame` with `head` bytes of headroom.
    pub fn new(frame: &[u8], head: usize) -> Arena {
        let mut buf: Vec<u8> = (0..head + frame.len() + TAIL).map(sentinel).collect();
        buf[head..head + frame.len()].copy_from_slice(frame);
        Arena { buf, head, len: frame.len() }
    }

    /// The frame as a [`FrameBuf`] (headroom in front, the tail as tailroom).
    pub fn frame_buf(&mut self) -> FrameBuf<'_> {
        FrameBuf::new(&mut self.buf, self.head, self.len).expect("the frame lies inside its buffer")
    }

    /// The end of the frame region (exclusive).
    pub fn end(&self) -> usize {
        self.head + self.len
    }

    /// Panics, naming the first byte, if a byte outside `lo..hi` is no longer its sentinel.
    pub fn assert_sentinels_outside(&self, lo: usize, hi: usize) {
        for (i, b) in self.buf.iter().enumerate() {
            if (i < lo || i >= hi) && *b != sentinel(i) {
                panic!(
                    "write outside the allowed region {lo}..{hi} (frame {}..{}, buffer {}): byte {i} is {b:#04x}, \
                     sentinel {:#04x}",
                    self.head,
                    self.end(),
                    self.buf.len(),
                    sentinel(i)
                );
            }
        }
    }
}
