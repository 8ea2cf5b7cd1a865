#!/usr/bin/env python3
"""Builds testdata/odd/: captures that tcpdump and tshark read but that break the pcap format's
rules, each made from the first frames of a real capture (testdata/dpkt-http.pcap):

  snaplen0.pcap      the file header's snapshot length is 0
  fcs.pcap           link-type field with the FCS bits (F set, 2 words): every frame ends in its
                     4-byte Ethernet FCS (CRC-32, computed here)
  over_snaplen.pcap  snapshot length 64, records longer than that
  orig_below.pcap    records whose original length is below the included length
  usec_overflow.pcap microsecond fractions of 1,000,000 and more
  dpkt-http.pcap.gz  the whole capture, gzip-compressed
  dpkt-http.pcap.zst the whole capture, zstd-compressed (needs the zstd command)

    scripts/make_odd_captures.py            # from the repository root
"""
import gzip
import os
import struct
import subprocess
import zlib

SRC = "testdata/dpkt-http.pcap"
OUT = "testdata/odd"


def records(path, count):
    data = open(path, "rb").read()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "a little-endian microsecond pcap"
    off, out = 24, []
    while off + 16 <= len(data) and len(out) < count:
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        out.append((sec, usec, data[off + 16:off + 16 + incl], orig))
        off += 16 + incl
    return out


def write(name, recs, snaplen=65535, link=1):
    hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, link)
    body = b"".join(struct.pack("<IIII", s, u, len(f), o) + f for s, u, f, o in recs)
    open(os.path.join(OUT, name), "wb").write(hdr + body)


def main():
    os.makedirs(OUT, exist_ok=True)
    recs = records(SRC, 12)
    write("snaplen0.pcap", recs, snaplen=0)
    fcs = [(s, u, f + struct.pack("<I", zlib.crc32(f)), o + 4) for s, u, f, o in recs]
    write("fcs.pcap", fcs, link=0x24000001)
    write("over_snaplen.pcap", recs, snaplen=64)
    write("orig_below.pcap", [(s, u, f, min(o, 40)) for s, u, f, o in recs])
    write("usec_overflow.pcap", [(s, u + (1_000_000 if i % 3 == 0 else 0), f, o) for i, (s, u, f, o) in enumerate(recs)])
    whole = open(SRC, "rb").read()
    open(os.path.join(OUT, "dpkt-http.pcap.gz"), "wb").write(gzip.compress(whole, mtime=0))
    subprocess.run(["zstd", "-q", "-f", "-19", SRC, "-o", os.path.join(OUT, "dpkt-http.pcap.zst")], check=True)


if __name__ == "__main__":
    main()
