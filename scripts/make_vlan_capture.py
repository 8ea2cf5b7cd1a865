#!/usr/bin/env python3
"""Makes a VLAN-tagged capture from a real one: every Ethernet frame of a classic pcap gets an
802.1Q tag (TPID 0x8100, priority 0, VLAN ID given) after its two MAC addresses.

    scripts/make_vlan_capture.py testdata/dpkt-http.pcap testdata/dpkt-http-vlan.pcap 100

Only the tag is added: addresses, payloads, timestamps and checksums are the original's.
"""
import struct
import sys


def main(src, dst, vid):
    data = open(src, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        sys.exit(f"{src}: not a classic pcap file")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        sys.exit(f"{src}: link type {linktype}, not Ethernet")
    tag = struct.pack(">HH", 0x8100, vid & 0x0FFF)
    out = [data[:24]]
    off = 24
    while off + 16 <= len(data):
        ts_s, ts_f, caplen, length = struct.unpack(end + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        if len(frame) >= 14:
            frame = frame[:12] + tag + frame[12:]
            caplen += 4
            length += 4
        out.append(struct.pack(end + "IIII", ts_s, ts_f, caplen, length) + frame)
    open(dst, "wb").write(b"".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
