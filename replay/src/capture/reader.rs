//! Captures read as a stream: a record at a time through a bounded buffer, so a capture of any
//! size replays in the same memory. Gzip and zstd are decompressed on the way.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pcap_file::pcapng::{Block, PcapNgReader};

use super::pcap::Records;
use super::{check_link, to_ethernet, CaptureError, Compression, OddRecords, Truncation};

/// The read buffer of a pcapng reader: the largest block it can hold (a classic pcap record is at
/// most [`super::pcap::MAX_RECORD`] bytes; a pcapng block that does not fit is reported as
/// damage).
const PCAPNG_BUFFER: usize = 1 << 20;
/// The read buffer of a classic pcap reader.
const PCAP_BUFFER: usize = 256 << 10;

/// A source of frames for a replay: the frames of a capture, in file order, as Ethernet.
pub trait Source: Send {
    /// Appends the next frame to `buf` and returns its timestamp (nanoseconds since the epoch);
    /// `None` when the capture has no more (its end, or damage the source records).
    fn next_frame(&mut self, buf: &mut Vec<u8>) -> Option<u64>;
    /// Goes back to the first frame, for another loop through the capture.
    fn rewind(&mut self) -> Result<(), CaptureError>;
}

/// What a capture turned out to hold, known once it has been read through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureInfo {
    /// "pcap" or "pcapng".
    pub format: &'static str,
    /// The original link type(s), as pcap-file names them.
    pub link: String,
    /// Frames read (the first time through).
    pub frames: u64,
    /// How many of them got a synthetic Ethernet header (raw IP, Linux cooked, loopback).
    pub converted: u64,
    /// Set when the file ended in the middle of a record, a block was corrupt, or the
    /// compressed stream broke off.
    pub truncated: Option<Truncation>,
    /// Records read although libpcap's format says they should not exist.
    pub odd: OddRecords,
    /// How the file was compressed, if it was.
    pub compression: Option<Compression>,
}

/// Where the bytes come from.
#[derive(Clone)]
enum Origin {
    File,
    Stdin,
    Bytes(Arc<[u8]>),
}

/// The format being read.
enum Format {
    Pcap(Records, Box<dyn Read + Send>),
    PcapNg(Box<PcapNgReader<Box<dyn Read + Send>>>, Vec<String>),
    /// Read to its end (or its damage).
    Done,
}

/// A capture file read a record at a time: pcap or pcapng (told apart by the magic number),
/// gzip- or zstd-compressed or not, from a file, standard input (`-`) or bytes in memory.
///
/// The memory it uses does not depend on the capture's size: one record in hand and a bounded
/// read buffer.
pub struct CaptureReader {
    path: PathBuf,
    origin: Origin,
    limit: Option<u64>,
    format: Format,
    info: CaptureInfo,
    /// Times through the capture (0 on the first pass): the counts are of the first.
    pass: u32,
    /// Set when the compressed stream broke (the reader then ends).
    broken: Option<String>,
    /// A decompression failure met while reading the file header.
    broken_header: Option<String>,
    /// A link type found unreplayable before the first frame: the file is refused.
    refused: Option<CaptureError>,
    /// The first frame, read ahead when the file is opened (see [`CaptureReader::open`]).
    pending: Option<(u64, Vec<u8>)>,
    record: Vec<u8>,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader").field("path", &self.path).field("info", &self.info).finish()
    }
}

/// A decompression failure, carried through `io::Error` so it can be told apart from the
/// capture's own damage.
#[derive(Debug)]
struct Undecodable(String);

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Undecodable {}

/// A decompressor: its errors are [`Undecodable`], and it refuses to give more than `limit`
/// bytes when there is one.
struct Decoded {
    inner: Box<dyn Read + Send>,
    compression: Compression,
    limit: Option<u64>,
    given: u64,
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let undecodable = |m: String| std::io::Error::other(Undecodable(m));
        let n = self.inner.read(buf).map_err(|e| undecodable(format!("{} data: {e}", self.compression.name())))?;
        self.given += n as u64;
        if let Some(limit) = self.limit.filter(|&l| self.given > l) {
            return Err(undecodable(format!("it decompresses to more than {limit} bytes, the most replay reads")));
        }
        Ok(n)
    }
}

/// The decompression failure inside an I/O error, if that is what it is.
fn undecodable(e: &std::io::Error) -> Option<String> {
    e.get_ref().and_then(|i| i.downcast_ref::<Undecodable>()).map(|u| u.0.clone())
}

/// Reads up to `n` bytes (fewer only at the end of the stream).
fn read_up_to(r: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut v)?;
    Ok(v)
}

impl CaptureReader {
    /// Opens a capture file; `-` is standard input (which can be read only once: see
    /// [`Source::rewind`]). The file header is read, and the records up to the first frame.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let origin = if path == Path::new("-") { Origin::Stdin } else { Origin::File };
        Self::start(path, origin, None)
    }

    /// Reads capture bytes held in memory (`path` names them in errors and the report).
    pub fn from_bytes(path: &Path, bytes: impl Into<Arc<[u8]>>) -> Result<CaptureReader, CaptureError> {
        Self::start(path, Origin::Bytes(bytes.into()), None)
    }

    /// [`CaptureReader::from_bytes`], refusing a compressed capture that decompresses to more
    /// than `limit` bytes.
    pub fn from_bytes_limited(path: &Path, bytes: &[u8], limit: u64) -> Result<CaptureReader, CaptureError> {
        Self::start(path, Origin::Bytes(bytes.into()), Some(limit))
    }

    /// The file (as given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What has been read so far (all of it, once [`Source::next_frame`] has returned `None`).
    pub fn info(&self) -> &CaptureInfo {
        &self.info
    }

    /// The decompression failure that ended the reading, if one did.
    pub fn decompression_error(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    fn start(path: &Path, origin: Origin, limit: Option<u64>) -> Result<CaptureReader, CaptureError> {
        let mut r = CaptureReader {
            path: path.into(),
            origin,
            limit,
            format: Format::Done,
            info: CaptureInfo { format: "pcap", ..CaptureInfo::default() },
            pass: 0,
            broken: None,
            broken_header: None,
            refused: None,
            pending: None,
            record: Vec::new(),
        };
        r.format = r.begin()?;
        // Read up to the first frame, so a pcapng interface replay cannot use is refused before
        // anything is replayed.
        let mut first = Vec::new();
        let ts = r.read_frame(&mut first);
        if let Some(e) = r.refused.take() {
            return Err(e);
        }
        r.pending = ts.map(|ts| (ts, first));
        Ok(r)
    }

    /// Opens the origin, undoes its compression and reads the file header.
    fn begin(&mut self) -> Result<Format, CaptureError> {
        let path = self.path.clone();
        let read_err = |e: std::io::Error| CaptureError::Read { path: path.clone(), reason: e.to_string() };
        let mut raw: Box<dyn Read + Send> = match &self.origin {
            Origin::File => Box::new(File::open(&self.path).map_err(read_err)?),
            Origin::Stdin => Box::new(std::io::stdin()),
            Origin::Bytes(b) => Box::new(Cursor::new(Arc::clone(b))),
        };
        let head = read_up_to(&mut *raw, 4).map_err(read_err)?;
        let mut stream: Box<dyn Read + Send> = Box::new(Cursor::new(head.clone()).chain(raw));
        let compression = Compression::of(&head);
        if let Some(c) = compression {
            let failed =
                |reason: String| CaptureError::Compressed { path: path.clone(), compression: c.name(), reason };
            let inner: Box<dyn Read + Send> = match c {
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
                Compression::Zstd => match ruzstd::decoding::StreamingDecoder::new(stream) {
                    Ok(d) => Box::new(d),
                    Err(e) => return Err(failed(format!("not a valid zstd stream: {e}"))),
                },
            };
            stream = Box::new(Decoded { inner, compression: c, limit: self.limit, given: 0 });
            let head = read_up_to(&mut *stream, 4).map_err(|e| failed(undecodable(&e).unwrap_or(e.to_string())))?;
            stream = Box::new(Cursor::new(head.clone()).chain(stream));
            let format = self.parse_header(&head, stream, compression);
            // A header the decompressor broke off is the compression's failure.
            match self.broken_header.take() {
                Some(reason) => Err(failed(reason)),
                None => format,
            }
        } else {
            self.parse_header(&head, stream, None)
        }
    }

    fn parse_header(
        &mut self,
        head: &[u8],
        mut stream: Box<dyn Read + Send>,
        compression: Option<Compression>,
    ) -> Result<Format, CaptureError> {
        let first = self.pass == 0;
        if first {
            self.info.compression = compression;
        }
        let magic = (head.len() == 4).then(|| u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
        match magic {
            Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1) => {
                let mut hdr = [0u8; 24];
                let got = read_up_to(&mut *stream, 24).map_err(|e| self.header_io("pcap", &e))?;
                if got.len() < 24 {
                    return Err(CaptureError::BadHeader {
                        path: self.path.clone(),
                        format: "pcap",
                        reason: format!("the file ends inside the 24-byte file header ({} bytes)", got.len()),
                    });
                }
                hdr.copy_from_slice(&got);
                let recs = Records::from_header(&self.path, &hdr)?;
                if first {
                    self.info.format = "pcap";
                    self.info.link = format!("{:?}", recs.link());
                }
                let buffered: Box<dyn Read + Send> = Box::new(std::io::BufReader::with_capacity(PCAP_BUFFER, stream));
                Ok(Format::Pcap(recs, buffered))
            }
            Some(0x0a0d_0d0a) => {
                if first {
                    self.info.format = "pcapng";
                }
                let r = match PcapNgReader::with_capacity(stream, PCAPNG_BUFFER) {
                    Ok(r) => r,
                    Err(pcap_file::pcapng::PcapNgReadError::Io(io)) => return Err(self.header_io("pcapng", &io)),
                    Err(e) => {
                        return Err(CaptureError::BadHeader {
                            path: self.path.clone(),
                            format: "pcapng",
                            reason: e.to_string(),
                        })
                    }
                };
                Ok(Format::PcapNg(Box::new(r), Vec::new()))
            }
            _ => {
                let magic = head.iter().map(|b| format!("{b:02x}")).collect::<String>();
                let magic = if magic.is_empty() { "nothing: the file is empty".to_string() } else { magic };
                Err(CaptureError::NotACapture { path: self.path.clone(), magic })
            }
        }
    }

    fn header_io(&mut self, format: &'static str, e: &std::io::Error) -> CaptureError {
        if let Some(m) = undecodable(e) {
            self.broken_header = Some(m);
        }
        CaptureError::BadHeader { path: self.path.clone(), format, reason: e.to_string() }
    }

    /// Ends the reading at damage: recorded on the first pass.
    fn damaged(&mut self, reason: String) {
        if self.pass == 0 {
            self.info.truncated = Some(Truncation { after_frames: self.info.frames as usize, reason });
        }
        self.format = Format::Done;
    }

    /// The damage an I/O error means: a broken compressed stream, or the file's own.
    fn io_damage(&mut self, e: &std::io::Error, otherwise: String) {
        match undecodable(e) {
            Some(m) => {
                let c = self.info.compression.map_or("compressed", |c| c.name());
                self.broken = Some(m.clone());
                self.damaged(format!("cannot decompress the {c} capture: {m}"));
            }
            None => self.damaged(otherwise),
        }
    }

    fn counted(&mut self, converted: bool) {
        if self.pass == 0 {
            self.info.frames += 1;
            self.info.converted += u64::from(converted);
        }
    }

    fn next_pcap(&mut self, buf: &mut Vec<u8>) -> Option<u64> {
        let Format::Pcap(recs, r) = &mut self.format else { return None };
        let mut odd = OddRecords::default();
        let got = recs.next(&mut **r, &mut self.record, &mut odd);
        let link = recs.link();
        let fcs = recs.fcs();
        match got {
            Ok(Some(ts)) => {
                if self.pass == 0 {
                    self.info.odd.over_snaplen += odd.over_snaplen;
                    self.info.odd.orig_below_incl += odd.orig_below_incl;
                    self.info.odd.fraction_over_second += odd.fraction_over_second;
                }
                let data = &self.record[..self.record.len().saturating_sub(fcs)];
                let converted = to_ethernet(link, data, buf);
                self.counted(converted);
                Some(ts)
            }
            Ok(None) => {
                self.format = Format::Done;
                None
            }
            Err(super::pcap::RecordError::Damage(reason)) => {
                self.damaged(reason);
                None
            }
            Err(super::pcap::RecordError::Io(e)) => {
                self.io_damage(&e, format!("cannot read: {e}"));
                None
            }
        }
    }

    fn next_pcapng(&mut self, buf: &mut Vec<u8>) -> Option<u64> {
        loop {
            let Format::PcapNg(r, links) = &mut self.format else { return None };
            let Some(b) = r.next_block() else {
                let joined = links.join(",");
                if self.pass == 0 {
                    self.info.link = joined;
                }
                self.format = Format::Done;
                return None;
            };
            let (block, state) = match b {
                Ok(b) => b,
                Err(e) => {
                    let reason = e.to_string();
                    let io = match e {
                        pcap_file::pcapng::PcapNgReadError::Io(io) => Some(io),
                        _ => None,
                    };
                    let joined = links.join(",");
                    if self.pass == 0 {
                        self.info.link = joined;
                    }
                    match io {
                        Some(io) => self.io_damage(&io, reason),
                        None => self.damaged(reason),
                    }
                    return None;
                }
            };
            let (link, ts, data) = match block {
                Block::EnhancedPacket(p) => {
                    let Some(link) = state.interfaces().get(p.interface_id as usize).map(|i| i.linktype) else {
                        let reason = format!("packet on undeclared interface {}", p.interface_id);
                        let joined = links.join(",");
                        if self.pass == 0 {
                            self.info.link = joined;
                        }
                        self.damaged(reason);
                        return None;
                    };
                    (link, p.timestamp, p.data)
                }
                Block::SimplePacket(p) => match state.interfaces().first() {
                    Some(i) => (i.linktype, Duration::ZERO, p.data),
                    None => continue,
                },
                Block::InterfaceDescription(i) => {
                    let linktype = i.linktype;
                    let name = format!("{linktype:?}");
                    if !links.contains(&name) {
                        links.push(name);
                    }
                    if let Err(e) = check_link(&self.path, linktype) {
                        // Before the first frame, the file is refused; later, the frames of that
                        // interface cannot be replayed: the reading ends there.
                        let reason = e.to_string();
                        if self.pass == 0 && self.info.frames == 0 {
                            self.refused = Some(e);
                        }
                        let joined = links.join(",");
                        if self.pass == 0 {
                            self.info.link = joined;
                        }
                        self.damaged(reason);
                        return None;
                    }
                    continue;
                }
                _ => continue,
            };
            let converted = to_ethernet(link, &data, buf);
            let ts = ts.as_nanos().min(u128::from(u64::MAX)) as u64;
            self.counted(converted);
            return Some(ts);
        }
    }
}

impl CaptureReader {
    fn read_frame(&mut self, buf: &mut Vec<u8>) -> Option<u64> {
        match self.format {
            Format::Pcap(..) => self.next_pcap(buf),
            Format::PcapNg(..) => self.next_pcapng(buf),
            Format::Done => None,
        }
    }
}

impl Source for CaptureReader {
    fn next_frame(&mut self, buf: &mut Vec<u8>) -> Option<u64> {
        if let Some((ts, first)) = self.pending.take() {
            buf.extend_from_slice(&first);
            return Some(ts);
        }
        self.read_frame(buf)
    }

    fn rewind(&mut self) -> Result<(), CaptureError> {
        if matches!(self.origin, Origin::Stdin) {
            return Err(CaptureError::Read {
                path: self.path.clone(),
                reason: "standard input can be read only once".into(),
            });
        }
        self.pass = self.pass.saturating_add(1);
        self.pending = None;
        self.format = self.begin()?;
        Ok(())
    }
}

/// The frames of a capture held in memory ([`super::Capture::source`]).
#[derive(Debug)]
pub struct MemorySource<'a> {
    pub(super) cap: &'a super::Capture,
    pub(super) next: usize,
}

impl Source for MemorySource<'_> {
    fn next_frame(&mut self, buf: &mut Vec<u8>) -> Option<u64> {
        let f = self.cap.frames.get(self.next)?;
        self.next += 1;
        buf.extend_from_slice(self.cap.frame(f));
        Some(f.ts_ns)
    }

    fn rewind(&mut self) -> Result<(), CaptureError> {
        self.next = 0;
        Ok(())
    }
}
