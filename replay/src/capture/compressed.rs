//! Compressed captures, read as tcpdump and tshark read them: gzip (`.pcap.gz`) and zstd
//! (`.pcap.zst`), told apart by their magic numbers, decompressed up to a limit.

use std::io::Read;

/// A compression replay reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (RFC 1952), any number of members.
    Gzip,
    /// Zstandard (RFC 8878).
    Zstd,
}

impl Compression {
    /// The compression `bytes` start with, if any.
    pub fn of(bytes: &[u8]) -> Option<Compression> {
        match bytes {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The decompressed bytes, at most `limit` of them: `Err` says why not.
    pub fn decompress(self, bytes: &[u8], limit: u64) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let read = match self {
            Compression::Gzip => flate2::read::MultiGzDecoder::new(bytes).take(limit + 1).read_to_end(&mut out),
            Compression::Zstd => match ruzstd::decoding::StreamingDecoder::new(bytes) {
                Ok(d) => d.take(limit + 1).read_to_end(&mut out),
                Err(e) => return Err(format!("not a valid zstd stream: {e}")),
            },
        };
        match read {
            Ok(_) if out.len() as u64 > limit => {
                Err(format!("it decompresses to more than {limit} bytes, the most replay reads"))
            }
            Ok(_) => Ok(out),
            Err(e) => Err(format!("{} data: {e}", self.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_round_trips_and_the_limit_holds() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&data).unwrap();
        let gz = e.finish().unwrap();
        assert_eq!(Compression::of(&gz), Some(Compression::Gzip));
        assert_eq!(Compression::Gzip.decompress(&gz, 10_000).unwrap(), data);
        assert!(Compression::Gzip.decompress(&gz, 9_999).unwrap_err().contains("more than 9999 bytes"));
        assert!(Compression::Gzip.decompress(&gz[..gz.len() / 2], 1 << 20).is_err(), "cut short");
    }

    #[test]
    fn zstd_frames_are_recognised_and_bad_ones_refused() {
        assert_eq!(Compression::of(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Compression::Zstd));
        assert_eq!(Compression::of(&[0xd4, 0xc3, 0xb2, 0xa1]), None);
        assert!(Compression::Zstd.decompress(&[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff], 1 << 20).is_err());
    }
}
