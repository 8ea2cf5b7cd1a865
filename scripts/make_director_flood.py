#!/usr/bin/env python3
"""Writes the captures of scripts/bench-director.sh: FLOWS TCP connections from one client
address (client ports 1024, 1025, ...) to a virtual service, as 64-byte frames (60 bytes plus
the FCS on the wire), checksums valid.

    python3 scripts/make_director_flood.py syn FILE FLOWS [CLIENT] [VIP] [PORT]
        one SYN per flow
    python3 scripts/make_director_flood.py ack N FILE FLOWS [CLIENT] [VIP] [PORT]
        N ACKs (the same flows in turn, sequence numbers as after the SYN)

Defaults: client 10.8.0.2, VIP 10.8.0.100, port 80 (scripts/director-netns.sh). The MACs are
placeholders: `replay --iface` puts the interface's MAC as source and the backend's as destination.
(scripts/make_flood.py is the pipeline benchmarks' capture and is left as it is.)
"""
import socket
import struct
import sys


def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(client, vip, port, i, syn):
    sport = 1024 + i
    flags = 0x02 if syn else 0x10
    tcp = struct.pack("!HHIIBBHHH", sport, port, 1000, 0 if syn else 1, 0x50, flags, 64240, 0, 0)
    c_tcp = csum(client + vip + struct.pack("!BBH", 0, 6, 20) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c_tcp) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0x4000, 64, 6, 0, client, vip)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return bytes.fromhex("0200000000fe" "020000000001" "0800") + ip + tcp + bytes(6)


def main():
    kind = sys.argv[1]
    if kind == "syn":
        n, rest = None, sys.argv[2:]
    elif kind == "ack":
        n, rest = int(sys.argv[2]), sys.argv[3:]
    else:
        sys.exit(__doc__)
    path, flows = rest[0], int(rest[1])
    if not 1 <= flows <= 64000:
        sys.exit("FLOWS: 1 to 64000")
    client = socket.inet_aton(rest[2] if len(rest) > 2 else "10.8.0.2")
    vip = socket.inet_aton(rest[3] if len(rest) > 3 else "10.8.0.100")
    port = int(rest[4]) if len(rest) > 4 else 80
    frames = [frame(client, vip, port, i, kind == "syn") for i in range(flows)]
    count = flows if n is None else n
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k in range(count):
            fr = frames[k % flows]
            us = k  # one microsecond apart
            f.write(struct.pack("<IIII", 1_767_225_600 + us // 1_000_000, us % 1_000_000, len(fr), len(fr)))
            f.write(fr)
    print(f"{path}: {count} frames, {flows} flows")


main()
