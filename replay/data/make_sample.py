#!/usr/bin/env python3
"""Builds replay's bundled sample capture, sample.pcap (our own traffic, no third-party data).

30 HTTP connections from clients 203.0.113.1..30 to the demo virtual service 198.51.100.10:80
(handshake, request, response, close, both directions), 3 DNS queries to 198.51.100.10:53 (no
service there: dropped, with a reason), and one SYN arriving with TTL 1 (the director answers
ICMP time exceeded). Frames arrive from the upstream router 02:00:00:00:00:01 at the director
02:00:00:00:00:fe. Deterministic: run it again and the bytes are the same.

    python3 replay/data/make_sample.py   # writes replay/data/sample.pcap
"""
import os
import struct

ROUTER = bytes.fromhex("020000000001")
DIRECTOR = bytes.fromhex("0200000000fe")
VIP = bytes([198, 51, 100, 10])


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ident, ttl=64):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, ttl, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def tcp(src, dst, sport, dport, seq, ack, flags, data=b""):
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(h) + len(data))
    c = csum(pseudo + h + data)
    return h[:16] + struct.pack("!H", c) + h[18:] + data


def udp(src, dst, sport, dport, data):
    h = struct.pack("!HHHH", sport, dport, 8 + len(data), 0)
    c = csum(src + dst + struct.pack("!BBH", 0, 17, 8 + len(data)) + h + data) or 0xFFFF
    return h[:6] + struct.pack("!H", c) + data


def eth(dst, src, payload):
    return dst + src + b"\x08\x00" + payload


FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
packets = []  # (time in µs, frame)
ident = [1000]


def nid():
    ident[0] = (ident[0] + 7) & 0xFFFF
    return ident[0]


for i in range(30):
    c = bytes([203, 0, 113, 1 + i])
    cp = 40000 + 17 * i
    t = 1_000_000 + i * 80_000
    cs, ss = 1000 * (i + 1), 5000 * (i + 1)
    req = b"GET /item/%d HTTP/1.1\r\nHost: demo.example\r\nUser-Agent: lbkit-sample\r\n\r\n" % i
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\nContent-Type: text/plain\r\n\r\n" + bytes(
        (i + k) % 26 + 97 for k in range(200)
    )

    def up(flags, seq, ack, data=b"", dt=0, ttl=64):
        packets.append((t + dt, eth(DIRECTOR, ROUTER, ipv4(c, VIP, 6, tcp(c, VIP, cp, 80, seq, ack, flags, data), nid(), ttl))))

    def down(flags, seq, ack, data=b"", dt=0):
        packets.append((t + dt, eth(ROUTER, DIRECTOR, ipv4(VIP, c, 6, tcp(VIP, c, 80, cp, seq, ack, flags, data), nid()))))

    up(SYN, cs, 0, dt=0)
    down(SYN | ACK, ss, cs + 1, dt=400)
    up(ACK, cs + 1, ss + 1, dt=800)
    up(PSH | ACK, cs + 1, ss + 1, req, dt=900)
    down(ACK, ss + 1, cs + 1 + len(req), dt=1300)
    down(PSH | ACK, ss + 1, cs + 1 + len(req), resp, dt=2500)
    up(ACK, cs + 1 + len(req), ss + 1 + len(resp), dt=2900)
    up(FIN | ACK, cs + 1 + len(req), ss + 1 + len(resp), dt=40_000)
    down(FIN | ACK, ss + 1 + len(resp), cs + 2 + len(req), dt=40_400)
    up(ACK, cs + 2 + len(req), ss + 2 + len(resp), dt=40_800)

for i in range(3):
    c = bytes([203, 0, 113, 200 + i])
    q = struct.pack("!HHHHHH", 0x1000 + i, 0x0100, 1, 0, 0, 0) + b"\x04demo\x07example\x00\x00\x01\x00\x01"
    packets.append((1_500_000 + i * 300_000, eth(DIRECTOR, ROUTER, ipv4(c, VIP, 17, udp(c, VIP, 53000 + i, 53, q), nid()))))

c = bytes([203, 0, 113, 250])
packets.append((2_000_000, eth(DIRECTOR, ROUTER, ipv4(c, VIP, 6, tcp(c, VIP, 41000, 80, 777, 0, SYN), nid(), ttl=1))))

packets.sort(key=lambda p: p[0])
out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
base = 1_767_225_600  # 2026-01-01T00:00:00Z
for us, frame in packets:
    out += struct.pack("<IIII", base + us // 1_000_000, us % 1_000_000, len(frame), len(frame)) + frame
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample.pcap")
with open(path, "wb") as f:
    f.write(out)
print(f"{path}: {len(packets)} frames, {len(out)} bytes")
