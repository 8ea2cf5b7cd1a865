//! Captures in and out: pcap and pcapng read into memory with every frame turned into Ethernet,
//! and a pcap writer for what the director emits.

use std::fs::File;
use std::io::{BufWriter, Cursor};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReadError, PcapReader, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

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

    /// Reads a pcap or pcapng file (told apart by its magic number).
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        let bytes = std::fs::read(path).map_err(|e| CaptureError::Read { path: path.into(), reason: e.to_string() })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses capture bytes (`path` names it in errors and the report).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Capture, CaptureError> {
        let magic = bytes.get(..4).map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        let mut cap = Capture {
            path: path.into(),
            format: "pcap",
            link: String::new(),
            frames: Vec::new(),
            converted: 0,
            truncated: None,
            data: Vec::with_capacity(bytes.len()),
        };
        match magic {
            Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1) => cap.read_pcap(bytes)?,
            Some(0x0a0d_0d0a) => {
                cap.format = "pcapng";
                cap.read_pcapng(bytes)?
            }
            _ => {
                let magic = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>();
                let magic = if magic.is_empty() { "nothing: the file is empty".to_string() } else { magic };
                return Err(CaptureError::NotACapture { path: path.into(), magic });
            }
        }
        Ok(cap)
    }

    fn read_pcap(&mut self, bytes: &[u8]) -> Result<(), CaptureError> {
        let mut r = PcapReader::new(Cursor::new(bytes)).map_err(|e| CaptureError::BadHeader {
            path: self.path.clone(),
            format: "pcap",
            reason: e.to_string(),
        })?;
        let link = r.header().datalink;
        self.link = format!("{link:?}");
        check_link(&self.path, link)?;
        while let Some(p) = r.next_packet() {
            match p {
                Ok(p) => self.push(link, p.timestamp(), p.data()),
                Err(e) => {
                    self.truncated = Some(Truncation { after_frames: self.frames.len(), reason: describe(&e) });
                    break;
                }
            }
        }
        Ok(())
    }

    fn read_pcapng(&mut self, bytes: &[u8]) -> Result<(), CaptureError> {
        let mut r = PcapNgReader::new(Cursor::new(bytes)).map_err(|e| CaptureError::BadHeader {
            path: self.path.clone(),
            format: "pcapng",
            reason: e.to_string(),
        })?;
        let mut links: Vec<String> = Vec::new();
        while let Some(b) = r.next_block() {
            let (block, state) = match b {
                Ok(b) => b,
                Err(e) => {
                    self.truncated = Some(Truncation { after_frames: self.frames.len(), reason: e.to_string() });
                    break;
                }
            };
            let (link, ts, data) = match block {
                Block::EnhancedPacket(p) => {
                    let Some(link) = state.interfaces().get(p.interface_id as usize).map(|i| i.linktype) else {
                        self.truncated = Some(Truncation {
                            after_frames: self.frames.len(),
                            reason: format!("packet on undeclared interface {}", p.interface_id),
                        });
                        break;
                    };
                    (link, p.timestamp, p.data)
                }
                Block::SimplePacket(p) => match state.interfaces().first() {
                    Some(i) => (i.linktype, Duration::ZERO, p.data),
                    None => continue,
                },
                Block::InterfaceDescription(i) => {
                    check_link(&self.path, i.linktype)?;
                    let name = format!("{:?}", i.linktype);
                    if !links.contains(&name) {
                        links.push(name);
                    }
                    continue;
                }
                _ => continue,
            };
            self.push(link, ts, &data);
        }
        self.link = links.join(",");
        Ok(())
    }

    /// Appends one frame, turned into Ethernet.
    fn push(&mut self, link: DataLink, ts: Duration, data: &[u8]) {
        let off = self.data.len();
        let ip_ethertype = |b: Option<&u8>| match b.map(|v| v >> 4) {
            Some(6) => [0x86, 0xdd],
            _ => [0x08, 0x00],
        };
        match link {
            DataLink::ETHERNET => self.data.extend_from_slice(data),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => {
                self.synth(&SYNTH_SRC_MAC, ip_ethertype(data.first()), data);
            }
            DataLink::NULL | DataLink::LOOP => {
                // A 4-byte address family in host (NULL) or network (LOOP) order: the IP
                // version is what matters.
                let payload = data.get(4..).unwrap_or_default();
                self.synth(&SYNTH_SRC_MAC, ip_ethertype(payload.first()), payload);
            }
            DataLink::LINUX_SLL => {
                // pkttype(2) arphrd(2) addrlen(2) addr(8) protocol(2)
                let src = sll_addr(data.get(4..6), data.get(6..14));
                let proto = data.get(14..16).map_or([0, 0], |p| [p[0], p[1]]);
                self.synth(&src, proto, data.get(16..).unwrap_or_default());
            }
            DataLink::LINUX_SLL2 => {
                // protocol(2) reserved(2) ifindex(4) arphrd(2) pkttype(1) addrlen(1) addr(8)
                let proto = data.get(0..2).map_or([0, 0], |p| [p[0], p[1]]);
                let src = sll_addr(data.get(10..12).map(|_| &data[11..12]), data.get(12..20));
                self.synth(&src, proto, data.get(20..).unwrap_or_default());
            }
            _ => self.data.extend_from_slice(data),
        }
        let len = (self.data.len() - off) as u32;
        self.frames.push(CapFrame { ts_ns: ts.as_nanos().min(u128::from(u64::MAX)) as u64, off, len });
    }

    fn synth(&mut self, src: &[u8; 6], ethertype: [u8; 2], payload: &[u8]) {
        self.data.extend_from_slice(&SYNTH_DST_MAC);
        self.data.extend_from_slice(src);
        self.data.extend_from_slice(&ethertype);
        self.data.extend_from_slice(payload);
        self.converted += 1;
    }
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

fn describe(e: &PcapReadError) -> String {
    match e {
        PcapReadError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends in the middle of a packet record".into()
        }
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(e) = src {
                s.push_str(": ");
                s.push_str(&e.to_string());
                src = e.source();
            }
            s
        }
    }
}

/// A pcap writer (Ethernet, nanosecond timestamps).
///
/// It writes to a temporary file beside `path` and renames it into place in
/// [`PcapOut::finish`], so an existing file at `path` is replaced only by a complete capture, and
/// a run that fails or is abandoned (the writer dropped unfinished) leaves it as it was. A path
/// that is not a regular file (`/dev/null`, a FIFO) is written directly.
pub struct PcapOut {
    path: PathBuf,
    /// The temporary file renamed to `path` at the end; `None`: writing to `path` itself.
    tmp: Option<PathBuf>,
    w: Option<PcapWriter<BufWriter<File>>>,
    /// Frames written.
    pub frames: u64,
}

impl std::fmt::Debug for PcapOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapOut").field("path", &self.path).field("frames", &self.frames).finish()
    }
}

/// Whether `a` and `b` name the same file (through links, `..` or hard links). A path that does
/// not exist is the same as nothing.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

impl PcapOut {
    /// Starts a capture that [`PcapOut::finish`] puts at `path`.
    pub fn create(path: &Path) -> Result<Self, CaptureError> {
        let err = |e: String| CaptureError::Write { path: path.into(), reason: e };
        let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file());
        let (f, tmp) = if special {
            (std::fs::OpenOptions::new().write(true).open(path).map_err(|e| err(e.to_string()))?, None)
        } else {
            let name = path.file_name().ok_or_else(|| err("not a file name".into()))?;
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".replay-{}.tmp", std::process::id()));
            let tmp = path.with_file_name(tmp_name);
            let f =
                std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| err(e.to_string()))?;
            (f, Some(tmp))
        };
        let header = PcapHeader {
            ts_resolution: pcap_file::pcap::PcapTsResolution::NanoSecond,
            datalink: DataLink::ETHERNET,
            snaplen: 262_144,
            ..PcapHeader::default()
        };
        let w = match PcapWriter::with_header(BufWriter::new(f), header) {
            Ok(w) => w,
            Err(e) => {
                if let Some(t) = &tmp {
                    let _ = std::fs::remove_file(t);
                }
                return Err(err(e.to_string()));
            }
        };
        Ok(PcapOut { path: path.into(), tmp, w: Some(w), frames: 0 })
    }

    /// Writes one frame.
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> Result<(), CaptureError> {
        let err = |e: String| CaptureError::Write { path: self.path.clone(), reason: e };
        let w = self.w.as_mut().ok_or_else(|| err("already finished".into()))?;
        let ts = Duration::from_nanos(ts_ns);
        let p = PcapPacket::new(ts, frame.len() as u32, frame).map_err(|e| err(e.to_string()))?;
        w.write_packet(&p).map_err(|e| err(e.to_string()))?;
        self.frames += 1;
        Ok(())
    }

    /// Flushes to disk and puts the capture at its path.
    pub fn finish(mut self) -> Result<u64, CaptureError> {
        let err = |e: String| CaptureError::Write { path: self.path.clone(), reason: e };
        let w = self.w.take().ok_or_else(|| err("already finished".into()))?;
        let file = w.into_inner().into_inner().map_err(|e| err(e.error().to_string()))?;
        if let Some(tmp) = &self.tmp {
            file.sync_all().map_err(|e| err(e.to_string()))?;
            drop(file);
            std::fs::rename(tmp, &self.path).map_err(|e| err(e.to_string()))?;
        }
        Ok(self.frames)
    }
}

impl Drop for PcapOut {
    fn drop(&mut self) {
        // Unfinished: the temporary file goes, whatever was at the path stays.
        if let (Some(_), Some(tmp)) = (self.w.take(), &self.tmp) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lbkit-capture-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_output_replaces_its_path_only_when_finished() {
        let d = temp_dir("finish");
        let path = d.join("out.pcap");
        std::fs::write(&path, b"precious").unwrap();
        // Abandoned: the old file stays, no temporary file is left.
        let mut w = PcapOut::create(&path).unwrap();
        w.write(1, &[0u8; 60]).unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "no temporary file left behind");
        // Finished: a whole capture, readable, in its place.
        let mut w = PcapOut::create(&path).unwrap();
        w.write(1_000_000_000, &[0xab; 60]).unwrap();
        w.write(2_000_000_000, &[0xcd; 64]).unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        let cap = Capture::open(&path).unwrap();
        assert_eq!(cap.frames.len(), 2);
        assert_eq!(cap.frame(&cap.frames[1]), &[0xcd; 64]);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_device_is_written_in_place() {
        let mut w = PcapOut::create(Path::new("/dev/null")).unwrap();
        w.write(1, &[0u8; 60]).unwrap();
        assert_eq!(w.finish().unwrap(), 1);
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device_like());
    }

    trait CharDevice {
        fn is_char_device_like(&self) -> bool;
    }

    impl CharDevice for std::fs::FileType {
        #[cfg(unix)]
        fn is_char_device_like(&self) -> bool {
            use std::os::unix::fs::FileTypeExt;
            self.is_char_device()
        }
        #[cfg(not(unix))]
        fn is_char_device_like(&self) -> bool {
            true
        }
    }

    #[test]
    fn same_file_sees_through_links() {
        let d = temp_dir("same");
        let a = d.join("a.pcap");
        std::fs::write(&a, b"x").unwrap();
        let b = d.join("b.pcap");
        std::fs::write(&b, b"x").unwrap();
        assert!(same_file(&a, &a));
        assert!(same_file(&a, &d.join(".").join("a.pcap")));
        assert!(!same_file(&a, &b));
        assert!(!same_file(&a, &d.join("missing.pcap")));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&a, d.join("sym.pcap")).unwrap();
            std::fs::hard_link(&a, d.join("hard.pcap")).unwrap();
            assert!(same_file(&d.join("sym.pcap"), &a));
            assert!(same_file(&d.join("hard.pcap"), &a));
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

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
