//! The frame buffer a rewrite works in, the next hop it writes, and what it reports.

use core::fmt;

use crate::error::RewriteError;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A frame inside a larger buffer: the frame is `buf[start..start + len]`, and the bytes before
/// `start` are headroom that encapsulation (TUN) may take by moving `start` back.
///
/// The invariant `start + len <= buf.len()` holds for every `FrameBuf` (the constructor checks
/// it and every change keeps it).
#[derive(Debug)]
pub struct FrameBuf<'a> {
    buf: &'a mut [u8],
    start: usize,
    len: usize,
}

impl<'a> FrameBuf<'a> {
    /// The frame `buf[start..start + len]`, or `None` if that is not inside `buf`.
    #[inline]
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Option<Self> {
        if start.checked_add(len)? <= buf.len() {
            Some(FrameBuf { buf, start, len })
        } else {
            None
        }
    }

    /// The whole of `buf` as a frame, without headroom.
    #[inline]
    pub fn whole(buf: &'a mut [u8]) -> Self {
        let len = buf.len();
        FrameBuf { buf, start: 0, len }
    }

    /// The frame bytes.
    #[inline]
    pub fn frame(&self) -> &[u8] {
        self.buf.get(self.start..self.start + self.len).unwrap_or(&[])
    }

    /// The frame bytes, mutably.
    #[inline]
    pub fn frame_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..self.start + self.len).unwrap_or(&mut [])
    }

    /// Offset of the frame in the buffer.
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    /// Length of the frame.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes available in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Bytes available after the frame.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.start - self.len
    }

    /// Moves the frame's start `n` bytes back (its end stays), or fails without change.
    #[inline]
    pub(crate) fn push_front(&mut self, n: usize) -> Result<(), RewriteError> {
        if n > self.start {
            return Err(RewriteError::NoHeadroom);
        }
        self.start -= n;
        self.len += n;
        Ok(())
    }

    /// Shortens the frame to `len` bytes (no-op if it is not longer).
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The buffer up to the frame's end (the headroom in front included, the tailroom not) and
    /// the frame's start, for code that emits fragments in place: whatever a header in the frame
    /// claims, nothing past the frame is read or written.
    #[inline]
    pub(crate) fn raw(&mut self) -> (&mut [u8], usize) {
        let end = self.start + self.len;
        (&mut self.buf[..end], self.start)
    }
}

/// Where a rewritten frame goes: the Ethernet addresses to write and the IP MTU of the egress
/// link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The director's own address on the egress link (the new source MAC).
    pub src_mac: MacAddr,
    /// The next hop: the real server (DR, and NAT/TUN on the same link) or the router toward it,
    /// or toward the client for NAT replies (the new destination MAC).
    pub dst_mac: MacAddr,
    /// The largest IP packet the egress link carries (Ethernet header excluded), e.g. 1500.
    pub mtu: u16,
}

/// What a rewrite did with the frame.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten in place: send [`FrameBuf::frame`].
    Forward,
    /// Too big for the MTU and allowed to fragment (IPv4 without DF): the fragments, each a
    /// whole Ethernet frame, went to the [`FragmentSink`] in order; the buffer now holds
    /// nothing to send.
    Fragmented {
        /// How many fragments were emitted.
        count: u16,
    },
    /// TTL / hop limit was 1 or 0: drop, and answer the client with
    /// [`build_time_exceeded`](crate::build_time_exceeded). The frame is unchanged.
    TimeExceeded,
    /// Too big for the MTU and not allowed to fragment (IPv4 with DF, or IPv6): drop, and
    /// answer the client with [`build_too_big`](crate::build_too_big) reporting `mtu` (the
    /// tunnel overhead already subtracted). As in the kernel, the frame's IP packet then has its
    /// TTL / hop limit decremented (and nothing else changed), and that is what the reply
    /// quotes.
    TooBig {
        /// The MTU to report to the sender.
        mtu: u16,
    },
}

/// Receives fragments, each a complete Ethernet frame, in order.
///
/// Implemented for every `FnMut(&[u8])`. The slice is only valid during the call: copy it out
/// (into a ring, a pcap writer...) before returning.
pub trait FragmentSink {
    /// One fragment.
    fn fragment(&mut self, frame: &[u8]);
}

impl<F: FnMut(&[u8])> FragmentSink for F {
    #[inline]
    fn fragment(&mut self, frame: &[u8]) {
        self(frame)
    }
}

/// A [`FragmentSink`] that drops every fragment while counting them, for callers that forbid
/// fragmentation by giving a large MTU and still need an argument.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardFragments(pub u64);

impl FragmentSink for DiscardFragments {
    #[inline]
    fn fragment(&mut self, _frame: &[u8]) {
        self.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framebuf_checks_bounds() {
        let mut b = [0u8; 10];
        assert!(FrameBuf::new(&mut b, 4, 7).is_none());
        assert!(FrameBuf::new(&mut b, usize::MAX, 2).is_none());
        let mut f = FrameBuf::new(&mut b, 4, 6).unwrap();
        assert_eq!(f.headroom(), 4);
        assert_eq!(f.tailroom(), 0);
        assert_eq!(f.push_front(5), Err(RewriteError::NoHeadroom));
        f.push_front(4).unwrap();
        assert_eq!(f.len(), 10);
        f.truncate(3);
        assert_eq!(f.frame().len(), 3);
        assert_eq!(MacAddr([0, 1, 2, 0xaa, 0xbb, 0xcc]).to_string(), "00:01:02:aa:bb:cc");
    }
}
