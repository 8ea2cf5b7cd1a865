//! The pcap writer for what the director emits.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

use super::CaptureError;

/// A pcap writer (Ethernet, nanosecond timestamps).
///
/// It writes to a temporary file beside `path` and renames it into place in
/// [`PcapOut::finish`], so an existing file at `path` is replaced only by a complete capture, and
/// a run that fails or is abandoned (the writer dropped unfinished) leaves it as it was. A path
/// that is not a regular file (`/dev/null`, a FIFO) is written directly, and `-` is standard
/// output.
pub struct PcapOut {
    path: PathBuf,
    /// The temporary file renamed to `path` at the end; `None`: writing to `path` itself.
    tmp: Option<PathBuf>,
    w: Option<PcapWriter<BufWriter<Target>>>,
    /// Frames written.
    pub frames: u64,
}

impl std::fmt::Debug for PcapOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapOut").field("path", &self.path).field("frames", &self.frames).finish()
    }
}

/// Where the bytes go: a file, or standard output.
enum Target {
    File(File),
    Stdout(std::io::Stdout),
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Target::File(f) => f.write(buf),
            Target::Stdout(o) => o.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Target::File(f) => f.flush(),
            Target::Stdout(o) => o.flush(),
        }
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
        let (f, tmp) = if path == Path::new("-") {
            (Target::Stdout(std::io::stdout()), None)
        } else if special {
            (Target::File(std::fs::OpenOptions::new().write(true).open(path).map_err(|e| err(e.to_string()))?), None)
        } else {
            let name = path.file_name().ok_or_else(|| err("not a file name".into()))?;
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".replay-{}.tmp", std::process::id()));
            let tmp = path.with_file_name(tmp_name);
            let f =
                std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| err(e.to_string()))?;
            (Target::File(f), Some(tmp))
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
        let mut file = w.into_inner().into_inner().map_err(|e| err(e.error().to_string()))?;
        file.flush().map_err(|e| err(e.to_string()))?;
        if let (Some(tmp), Target::File(f)) = (&self.tmp, &file) {
            f.sync_all().map_err(|e| err(e.to_string()))?;
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
    use crate::capture::Capture;

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
}
