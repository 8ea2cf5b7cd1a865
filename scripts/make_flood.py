#!/usr/bin/env python3
"""Writes a benchmark capture: N 64-byte frames (60 bytes plus the FCS on the wire) of F TCP
connections from 203.0.113.0/24-ish clients to 198.51.100.10:80, each connection a SYN followed by
ACKs, interleaved. Checksums valid.

    python3 scripts/make_flood.py N FILE [FLOWS]
"""
import struct
import sys

n, path = int(sys.argv[1]), sys.argv[2]
flows = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
VIP = bytes([198, 51, 100, 10])


def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(i, syn):
    c = struct.pack("!I", 0xCB000000 + i)
    sport = 10000 + i % 50000
    flags = 0x02 if syn else 0x10
    tcp = struct.pack("!HHIIBBHHH", sport, 80, 1, 0 if syn else 1, 0x50, flags, 64240, 0, 0)
    c_tcp = csum(c + VIP + struct.pack("!BBH", 0, 6, 20) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c_tcp) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0x4000, 64, 6, 0, c, VIP)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return bytes.fromhex("0200000000fe" "020000000001" "0800") + ip + tcp + bytes(6)


syns = [frame(i, True) for i in range(flows)]
acks = [frame(i, False) for i in range(flows)]
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for k in range(n):
        i = k % flows
        fr = syns[i] if k < flows else acks[i]
        us = k  # one microsecond apart
        f.write(struct.pack("<IIII", 1_767_225_600 + us // 1_000_000, us % 1_000_000, len(fr), len(fr)))
        f.write(fr)
print(f"{path}: {n} frames, {flows} connections")
