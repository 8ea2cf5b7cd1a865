//! Classic pcap, read as libpcap reads it (`sf-pcap.c`): either byte order, micro- or
//! nanosecond timestamps, a snapshot length of 0 meaning "the largest", the link-type field's FCS
//! bits honoured, and the oddities libpcap lets through (a record longer than the snapshot
//! length, an original length below the included one, a fraction of a second of a second or
//! more) read and counted rather than refused. Only a record longer than any capture can hold,
//! or a file cut inside a record, ends the reading (as damage, with the frames before it kept).

use std::io::Read;
use std::path::Path;

use pcap_file::DataLink;

use super::{check_link, CaptureError, OddRecords};

/// The largest record accepted (libpcap's maximum snapshot length for most link types).
pub const MAX_RECORD: u32 = 262_144;
/// The link-type field's "FCS length present" bit.
const FCS_PRESENT: u32 = 0x0400_0000;

fn u32_at(b: &[u8], at: usize, le: bool) -> u32 {
    let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if le {
        u32::from_le_bytes(w)
    } else {
        u32::from_be_bytes(w)
    }
}

/// Why the records stopped before the end of the file.
#[derive(Debug)]
pub(super) enum RecordError {
    /// The file is damaged there (the text says how).
    Damage(String),
    /// The bytes could not be read.
    Io(std::io::Error),
}

/// The records of a classic pcap file, read one at a time.
#[derive(Debug)]
pub(super) struct Records {
    le: bool,
    snaplen: u32,
    link: DataLink,
    fcs: usize,
    /// Fractions of a second per second: 10^9 (nanosecond files) or 10^6.
    per_second: u32,
}

impl Records {
    /// Reads the 24-byte file header.
    pub(super) fn from_header(path: &Path, h: &[u8; 24]) -> Result<Records, CaptureError> {
        let bad = |reason: String| CaptureError::BadHeader { path: path.into(), format: "pcap", reason };
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let le = matches!(magic, 0xa1b2_c3d4 | 0xa1b2_3c4d);
        let nanos = matches!(magic, 0xa1b2_3c4d | 0x4d3c_b2a1);
        let u16_at = |at: usize| {
            let w = [h[at], h[at + 1]];
            if le {
                u16::from_le_bytes(w)
            } else {
                u16::from_be_bytes(w)
            }
        };
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != 2 {
            return Err(bad(format!("version {major}.{minor} (pcap files are version 2)")));
        }
        let snaplen = u32_at(h, 16, le);
        let link_field = u32_at(h, 20, le);
        let link = DataLink::from(link_field & 0xffff);
        let fcs = if link_field & FCS_PRESENT != 0 { ((link_field >> 28) * 2) as usize } else { 0 };
        check_link(path, link)?;
        let per_second: u32 = if nanos { 1_000_000_000 } else { 1_000_000 };
        Ok(Records { le, snaplen, link, fcs, per_second })
    }

    /// The file's link type.
    pub(super) fn link(&self) -> DataLink {
        self.link
    }

    /// Bytes of frame check sequence at the end of each record (the link-type field's FCS bits).
    pub(super) fn fcs(&self) -> usize {
        self.fcs
    }

    /// Reads the next record into `record` (replacing what it held) and returns its time in
    /// nanoseconds; `None` at the end of the file. Odd records are counted in `odd`.
    pub(super) fn next(
        &mut self,
        r: &mut dyn Read,
        record: &mut Vec<u8>,
        odd: &mut OddRecords,
    ) -> Result<Option<u64>, RecordError> {
        let mut h = [0u8; 16];
        match fill(r, &mut h).map_err(RecordError::Io)? {
            0 => return Ok(None),
            16 => {}
            _ => return Err(RecordError::Damage(CUT.into())),
        }
        let le = self.le;
        let (sec, frac) = (u32_at(&h, 0, le), u32_at(&h, 4, le));
        let (incl, orig) = (u32_at(&h, 8, le), u32_at(&h, 12, le));
        if incl > MAX_RECORD {
            return Err(RecordError::Damage(format!(
                "a record of {incl} bytes, more than the {MAX_RECORD} a record may hold"
            )));
        }
        record.resize(incl as usize, 0);
        if fill(r, record).map_err(RecordError::Io)? < incl as usize {
            return Err(RecordError::Damage(CUT.into()));
        }
        if self.snaplen != 0 && incl > self.snaplen {
            odd.over_snaplen += 1;
        }
        if orig < incl {
            odd.orig_below_incl += 1;
        }
        if frac >= self.per_second {
            odd.fraction_over_second += 1;
        }
        let frac_ns = if self.per_second == 1_000_000_000 { u64::from(frac) } else { u64::from(frac) * 1000 };
        Ok(Some(u64::from(sec) * 1_000_000_000 + frac_ns))
    }
}

/// What a file cut inside a record says.
const CUT: &str = "the file ends in the middle of a packet record";

/// Reads until `buf` is full or the stream ends: the bytes read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::Capture;
    use super::*;

    /// A pcap file: little- or big-endian, micro- or nanoseconds, the given snaplen and link-type
    /// field, and records of (seconds, fraction, included bytes, original length).
    fn file(le: bool, nanos: bool, snaplen: u32, link: u32, records: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
        let w32 = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let w16 = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut v = Vec::new();
        v.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        v.extend_from_slice(&w16(2));
        v.extend_from_slice(&w16(4));
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&w32(snaplen));
        v.extend_from_slice(&w32(link));
        for (s, f, data, orig) in records {
            v.extend_from_slice(&w32(*s));
            v.extend_from_slice(&w32(*f));
            v.extend_from_slice(&w32(data.len() as u32));
            v.extend_from_slice(&w32(*orig));
            v.extend_from_slice(data);
        }
        v
    }

    fn read_bytes(b: &[u8]) -> Capture {
        Capture::from_bytes(Path::new("t.pcap"), b).unwrap()
    }

    const FRAME: [u8; 20] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 20, 0, 0];

    #[test]
    fn both_byte_orders_and_resolutions() {
        for le in [true, false] {
            for nanos in [true, false] {
                let c = read_bytes(&file(le, nanos, 65535, 1, &[(10, 5, &FRAME, 20)]));
                assert_eq!(c.frames.len(), 1);
                let want = 10_000_000_000 + if nanos { 5 } else { 5_000 };
                assert_eq!(c.frames[0].ts_ns, want, "le {le} nanos {nanos}");
                assert_eq!(c.frame(&c.frames[0]), &FRAME);
            }
        }
    }

    #[test]
    fn a_snaplen_of_zero_reads_every_record() {
        let c = read_bytes(&file(true, false, 0, 1, &[(1, 0, &FRAME, 20), (2, 0, &FRAME, 20)]));
        assert_eq!(c.frames.len(), 2);
        assert_eq!(c.odd, Default::default(), "snaplen 0 means the largest: nothing odd");
    }

    #[test]
    fn the_fcs_bits_of_the_link_type_strip_the_fcs() {
        // FCS present, 2 words (4 bytes), Ethernet.
        let mut with_fcs = FRAME.to_vec();
        with_fcs.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let c = read_bytes(&file(true, false, 65535, 0x2400_0001, &[(1, 0, &with_fcs, 24)]));
        assert_eq!(c.link, "ETHERNET");
        assert_eq!(c.frame(&c.frames[0]), &FRAME);
    }

    #[test]
    fn odd_records_are_read_and_counted() {
        let c = read_bytes(&file(
            true,
            false,
            16,
            1,
            &[(1, 0, &FRAME, 20), (1, 1_500_000, &FRAME, 20), (2, 0, &FRAME, 10)],
        ));
        assert_eq!(c.frames.len(), 3);
        assert_eq!(c.odd.over_snaplen, 3);
        assert_eq!(c.odd.fraction_over_second, 1);
        assert_eq!(c.odd.orig_below_incl, 1);
        // 1 s + 1,500,000 µs is 2.5 s, as libpcap computes it.
        assert_eq!(c.frames[1].ts_ns, 2_500_000_000);
        assert!(c.truncated.is_none());
    }

    #[test]
    fn damage_keeps_the_frames_before_it() {
        let mut b = file(true, false, 65535, 1, &[(1, 0, &FRAME, 20), (2, 0, &FRAME, 20)]);
        b.truncate(b.len() - 5);
        let c = read_bytes(&b);
        assert_eq!(c.frames.len(), 1);
        assert_eq!(c.truncated.as_ref().unwrap().reason, "the file ends in the middle of a packet record");
        // A record longer than any capture holds.
        let mut b = file(true, false, 65535, 1, &[(1, 0, &FRAME, 20)]);
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        let c = read_bytes(&b);
        assert_eq!(c.frames.len(), 1);
        assert!(c.truncated.as_ref().unwrap().reason.contains("more than the 262144"));
        // A header cut short, or of another version, is refused.
        assert!(Capture::from_bytes(Path::new("t.pcap"), &b[..20]).unwrap_err().to_string().contains("24-byte"));
        let mut v3 = file(true, false, 65535, 1, &[]);
        v3[4] = 3;
        assert!(Capture::from_bytes(Path::new("t.pcap"), &v3).unwrap_err().to_string().contains("version 3.4"));
    }
}
