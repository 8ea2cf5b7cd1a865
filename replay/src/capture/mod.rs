//! Captures in and out: pcap and pcapng read as a stream ([`CaptureReader`], what a replay
//! reads) or into memory ([`Capture`]), every frame turned into Ethernet; and a pcap writer for
//! what the director emits.

use std::path::{Path, PathBuf};

use pcap_file::DataLink;

mod compressed;
mod out;
mod pcap;
mod reader;

pub use compressed::Compression;
pub use out::{same_file, PcapOut};
pub use reader::{CaptureInfo, CaptureReader, MemorySource, Source};

/// The most bytes a compressed capture read into memory may decompress to.
pub const MAX_DECOMPRESSED: u64 = 1 << 40;

/// A capture that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be read.
    #[error("{path}: cannot read the capture: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// Not a pcap or pcapng file.
    #[error("{path}: not a pcap or pcapng file (starts with {magic})")]
    NotACapture {
        /// The file.
        path: PathBuf,
        /// Its first bytes, in hex.
        magic: String,
    },
    /// The file header itself is broken.
    #[error("{path}: broken {format} header: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// pcap or pcapng.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A link type replay cannot turn into Ethernet.
    #[error("{path}: link type {link} is not supported (Ethernet, raw IP, Linux cooked v1/v2 and BSD loopback are)")]
    LinkType {
        /// The file.
        path: PathBuf,
        /// The link type, as pcap-file names it.
        link: String,
    },
    /// A compressed capture that could not be decompressed.
    #[error("{path}: cannot decompress the {compression} capture: {reason}")]
    Compressed {
        /// The file.
        path: PathBuf,
        /// gzip or zstd.
        compression: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The output file could not be written.
    #[error("{path}: cannot write: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Where a damaged capture stopped being readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// Frames read before the damage.
    pub after_frames: usize,
    /// What the reader said.
    pub reason: String,
}

/// Records of a classic pcap that break the format's rules but that libpcap (and so tcpdump and
/// tshark) reads anyway, as replay does: counted here, reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OddRecords {
    /// Included length above the file's snapshot length.
    pub over_snaplen: u64,
    /// Original length below the included length.
    pub orig_below_incl: u64,
    /// A fraction of a second of a whole second or more (carried into the seconds).
    pub fraction_over_second: u64,
}

impl OddRecords {
    /// Whether any record was odd.
    pub fn any(&self) -> bool {
        self.over_snaplen + self.orig_below_incl + self.fraction_over_second > 0
    }
}

/// A frame of a capture.
#[derive(Clone, Copy, Debug)]
pub struct CapFrame {
    /// Timestamp, nanoseconds since the epoch.
    pub ts_ns: u64,
    off: usize,
    len: u32,
}

/// A capture held in memory, every frame as Ethernet.
#[derive(Debug)]
pub struct Capture {
    /// The file.
    pub path: PathBuf,
    /// "pcap" or "pcapng".
    pub format: &'static str,
    /// The original link type(s), as pcap-file names them.
    pub link: String,
    /// The frames, in file order.
    pub frames: Vec<CapFrame>,
    /// How many frames got a synthetic Ethernet header (raw IP, Linux cooked, loopback).
    pub converted: usize,
    /// Set when the file ended in the middle of a record or a block was corrupt.
    pub truncated: Option<Truncation>,
    /// Records read although libpcap's format says they should not exist.
    pub odd: OddRecords,
    /// How the file was compressed, if it was.
    pub compression: Option<Compression>,
    data: Vec<u8>,
}

/// The MAC given to the sender side of frames that had no Ethernet header.
pub const SYNTH_SRC_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];
/// The MAC given to the receiver side (the director) of frames that had no Ethernet header.
pub const SYNTH_DST_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0xfe];

impl Capture {
    /// The frame bytes.
    #[inline]
    pub fn frame(&self, f: &CapFrame) -> &[u8] {
        &self.data[f.off..f.off + f.len as usize]
    }

    /// Its frames as a replay's [`Source`].
    pub fn source(&self) -> MemorySource<'_> {
        MemorySource { cap: self, next: 0 }
    }

    /// What it holds, as a [`CaptureReader`] reports it.
    pub fn info(&self) -> CaptureInfo {
        CaptureInfo {
            format: self.format,
            link: self.link.clone(),
            frames: self.frames.len() as u64,
            converted: self.converted as u64,
            truncated: self.truncated.clone(),
            odd: self.odd,
            compression: self.compression,
        }
    }

    /// Reads a pcap or pcapng file (told apart by its magic number) into memory, gzip- or
    /// zstd-compressed or not; `-` is standard input.
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        Self::drain(CaptureReader::open(path)?)
    }

    /// Parses capture bytes (`path` names it in errors and the report), decompressing them first
    /// if they are gzip or zstd.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Capture, CaptureError> {
        Self::from_bytes_limited(path, bytes, MAX_DECOMPRESSED)
    }

    /// [`Capture::from_bytes`], refusing a compressed capture that decompresses to more than
    /// `limit` bytes.
    pub fn from_bytes_limited(path: &Path, bytes: &[u8], limit: u64) -> Result<Capture, CaptureError> {
        Self::drain(CaptureReader::from_bytes_limited(path, bytes, limit)?)
    }

    /// Reads every frame of `r` into memory. A compressed stream that breaks off is an error
    /// here (the frames before it are not kept).
    pub fn drain(mut r: CaptureReader) -> Result<Capture, CaptureError> {
        let mut data = Vec::new();
        let mut frames = Vec::new();
        loop {
            let off = data.len();
            let Some(ts_ns) = r.next_frame(&mut data) else { break };
            frames.push(CapFrame { ts_ns, off, len: (data.len() - off) as u32 });
        }
        if let Some(reason) = r.decompression_error() {
            let compression = r.info().compression.map_or("compressed", |c| c.name());
            return Err(CaptureError::Compressed { path: r.path().into(), compression, reason: reason.into() });
        }
        let info = r.info().clone();
        Ok(Capture {
            path: r.path().into(),
            format: info.format,
            link: info.link,
            frames,
            converted: info.converted as usize,
            truncated: info.truncated,
            odd: info.odd,
            compression: info.compression,
            data,
        })
    }
}

/// Appends `data`, a frame of link type `link`, to `out` as Ethernet: true when it got a
/// synthetic Ethernet header.
fn to_ethernet(link: DataLink, data: &[u8], out: &mut Vec<u8>) -> bool {
    let ip_ethertype = |b: Option<&u8>| match b.map(|v| v >> 4) {
        Some(6) => [0x86, 0xdd],
        _ => [0x08, 0x00],
    };
    let (src, ethertype, payload) = match link {
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => (SYNTH_SRC_MAC, ip_ethertype(data.first()), data),
        DataLink::NULL | DataLink::LOOP => {
            // A 4-byte address family in host (NULL) or network (LOOP) order: the IP
            // version is what matters.
            let payload = data.get(4..).unwrap_or_default();
            (SYNTH_SRC_MAC, ip_ethertype(payload.first()), payload)
        }
        DataLink::LINUX_SLL => {
            // pkttype(2) arphrd(2) addrlen(2) addr(8) protocol(2)
            let src = sll_addr(data.get(4..6), data.get(6..14));
            let proto = data.get(14..16).map_or([0, 0], |p| [p[0], p[1]]);
            (src, proto, data.get(16..).unwrap_or_default())
        }
        DataLink::LINUX_SLL2 => {
            // protocol(2) reserved(2) ifindex(4) arphrd(2) pkttype(1) addrlen(1) addr(8)
            let proto = data.get(0..2).map_or([0, 0], |p| [p[0], p[1]]);
            let src = sll_addr(data.get(10..12).map(|_| &data[11..12]), data.get(12..20));
            (src, proto, data.get(20..).unwrap_or_default())
        }
        _ => {
            out.extend_from_slice(data);
            return false;
        }
    };
    out.extend_from_slice(&SYNTH_DST_MAC);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype);
    out.extend_from_slice(payload);
    true
}

/// The sender's MAC from a Linux cooked header (its address when it is 6 bytes long).
fn sll_addr(len: Option<&[u8]>, addr: Option<&[u8]>) -> [u8; 6] {
    let n = len.map_or(0, |l| if l.len() == 2 { u16::from_be_bytes([l[0], l[1]]) } else { u16::from(l[0]) });
    match addr {
        Some(a) if n == 6 && a.len() >= 6 => [a[0], a[1], a[2], a[3], a[4], a[5]],
        _ => SYNTH_SRC_MAC,
    }
}

fn check_link(path: &Path, link: DataLink) -> Result<(), CaptureError> {
    match link {
        DataLink::ETHERNET
        | DataLink::RAW
        | DataLink::IPV4
        | DataLink::IPV6
        | DataLink::NULL
        | DataLink::LOOP
        | DataLink::LINUX_SLL
        | DataLink::LINUX_SLL2 => Ok(()),
        other => Err(CaptureError::LinkType { path: path.into(), link: format!("{other:?} ({})", u32::from(other)) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_with(link: u32, frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&link.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            v.extend_from_slice(&(1_000_000 + i as u32).to_le_bytes());
            v.extend_from_slice(&7u32.to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn raw_ip_gets_an_ethernet_header() {
        let ip6 = [0x60u8, 0, 0, 0];
        let ip4 = [0x45u8, 0, 0, 20];
        let c = Capture::from_bytes(Path::new("x.pcap"), &pcap_with(101, &[&ip4, &ip6])).unwrap();
        assert_eq!((c.frames.len(), c.converted), (2, 2));
        assert_eq!(&c.frame(&c.frames[0])[12..], &[0x08, 0x00, 0x45, 0, 0, 20]);
        assert_eq!(&c.frame(&c.frames[1])[12..14], &[0x86, 0xdd]);
        assert_eq!(c.frames[1].ts_ns, 1_000_001_000_007_000);
    }

    #[test]
    fn linux_cooked_keeps_the_sender_mac() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&[0x45, 0, 0, 20]);
        let c = Capture::from_bytes(Path::new("x.pcap"), &pcap_with(113, &[&sll])).unwrap();
        let f = c.frame(&c.frames[0]);
        assert_eq!(&f[6..12], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&f[12..16], &[0x08, 0x00, 0x45, 0]);
    }

    #[test]
    fn bad_inputs_are_named() {
        let e = Capture::from_bytes(Path::new("a.txt"), b"hello").unwrap_err();
        assert_eq!(e.to_string(), "a.txt: not a pcap or pcapng file (starts with 68656c6c)");
        let e = Capture::from_bytes(Path::new("e.pcap"), b"").unwrap_err();
        assert!(e.to_string().contains("empty"));
        let e = Capture::from_bytes(Path::new("usb.pcap"), &pcap_with(189, &[])).unwrap_err();
        assert!(e.to_string().contains("link type") && e.to_string().contains("189"), "{e}");
        // A record cut short: the frames before it are kept and the damage is reported.
        let mut v = pcap_with(1, &[&[0u8; 60], &[0u8; 60]]);
        v.truncate(v.len() - 10);
        let c = Capture::from_bytes(Path::new("t.pcap"), &v).unwrap();
        assert_eq!(c.frames.len(), 1);
        let t = c.truncated.unwrap();
        assert_eq!(t.after_frames, 1);
        assert!(t.reason.contains("middle of a packet"), "{}", t.reason);
    }
}
