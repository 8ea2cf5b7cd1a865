#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ (deterministic; standard library only).

    python3 fuzz/make_seeds.py [PCAP_DIR]     # default: ../shared/testdata/pcaps from the repo root

Packet targets get frames cut from the shared captures (IPv4 and IPv6, TCP handshakes, data,
FIN and RST, UDP, tunnels, truncated records, frames with bad checksums) plus synthesized ones
the captures lack (VLAN and QinQ tags, ICMP and ICMPv6 errors quoting a connection, echo,
fragments, IPv4 options, IPv6 extension headers, zero UDP checksums, a jumbo frame, truncations).
The rewrite targets' seeds are a 58-byte knobs prefix (fuzz/src/rewrite.rs, `Knobs`) followed by
the frame; pipeline seeds are flows in the record format of fuzz_targets/pipeline.rs; pcap_source
gets small captures in every format and link type replay reads; rules_file realistic
ipvsadm-save files; the two operation targets a few random byte strings.
"""

import hashlib
import os
import random
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "testdata", "pcaps")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


# ---------------------------------------------------------------------------------------------
# Reading captures

def read_pcap(path):
    """(linktype, [(ts_ns, caplen, wirelen, bytes)]) of a classic pcap."""
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    else:
        e = ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, wire = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + caplen]
        off += caplen
        out.append((sec * 10**9 + (frac if nano else frac * 1000), caplen, wire, frame))
    return linktype, out


def to_ethernet(linktype, frame):
    if linktype == 1:
        return frame
    if linktype == 113 and len(frame) >= 16:  # Linux cooked v1: protocol at 14..16
        return b"\x02\x00\x00\x00\x00\xfe" + b"\x02\x00\x00\x00\x00\x01" + frame[14:16] + frame[16:]
    return None


# ---------------------------------------------------------------------------------------------
# Checksums and builders

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4_hdr(src, dst, proto, payload_len, ttl=64, ident=1, flags_frag=0x4000, tos=0, options=b""):
    ihl = (20 + len(options)) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, 20 + len(options) + payload_len, ident, flags_frag, ttl,
                    proto, 0, bytes(src), bytes(dst)) + options
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def pseudo4(src, dst, proto, length):
    return bytes(src) + bytes(dst) + struct.pack("!BBH", 0, proto, length)


def pseudo6(src, dst, proto, length):
    return bytes(src) + bytes(dst) + struct.pack("!IxxxB", length, proto)


def tcp_seg(sport, dport, flags, payload=b"", seq=1000, ack=0):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0) + payload


def with_l4_csum(seg, pseudo, at):
    c = csum(pseudo + seg)
    return seg[:at] + struct.pack("!H", c) + seg[at + 2:]


def udp_dgram(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


ETH_DST = bytes([2, 0, 0, 0, 0, 0xfe])
ETH_SRC = bytes([2, 0, 0, 0, 0, 0x01])


def eth(ethertype, payload, tags=()):
    b = ETH_DST + ETH_SRC
    for i, tpid in enumerate(tags):
        b += struct.pack("!HH", tpid, 0x2000 | (10 + i))
    return b + struct.pack("!H", ethertype) + payload


def v4_packet(src, dst, proto, l4, csum_at=None, **kw):
    if csum_at is not None:
        l4 = with_l4_csum(l4, pseudo4(src, dst, proto, len(l4)), csum_at)
    return ipv4_hdr(src, dst, proto, len(l4), **kw) + l4


def v6_packet(src, dst, proto, l4, csum_at=None, hlim=64, exts=b"", first=None):
    if csum_at is not None:
        l4 = with_l4_csum(l4, pseudo6(src, dst, proto, len(l4)), csum_at)
    nh = proto if first is None else first
    return struct.pack("!IHBB", 0x60000000, len(exts) + len(l4), nh, hlim) + bytes(src) + bytes(dst) + exts + l4


C4, V4 = [192, 0, 2, 7], [198, 51, 100, 1]
C6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]
V6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]


def synthesized():
    """Frames the captures do not have."""
    f = {}
    syn4 = v4_packet(C4, V4, 6, tcp_seg(40000, 80, 0x02), 16)
    syn6 = v6_packet(C6, V6, 6, tcp_seg(40000, 80, 0x02), 16)
    f["vlan_v4_syn"] = eth(0x0800, syn4, tags=(0x8100,))
    f["qinq_v6_syn"] = eth(0x86DD, syn6, tags=(0x88A8, 0x8100))
    f["vlan3_v4_syn"] = eth(0x0800, syn4, tags=(0x88A8, 0x8100, 0x8100))
    # ICMP "fragmentation needed" from a router near the real server, quoting a reply
    # (VIP -> client), and "port unreachable" from the client quoting one.
    quoted = v4_packet(V4, C4, 6, tcp_seg(80, 40000, 0x12, b"x" * 20), 16)
    icmp = struct.pack("!BBHHH", 3, 4, 0, 0, 1400) + quoted[:28]
    f["icmp4_frag_needed"] = eth(0x0800, v4_packet([203, 0, 113, 1], V4, 1, icmp, 2))
    quoted = v4_packet(V4, C4, 17, udp_dgram(53, 40000, b"q" * 12), 6)
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
    f["icmp4_port_unreach"] = eth(0x0800, v4_packet(C4, V4, 1, icmp, 2))
    quoted = v4_packet(C4, V4, 6, tcp_seg(40000, 80, 0x02), 16, ttl=1)
    icmp = struct.pack("!BBHI", 11, 0, 0, 0) + quoted[:28]
    f["icmp4_time_exceeded"] = eth(0x0800, v4_packet([203, 0, 113, 9], C4, 1, icmp, 2))
    quoted = v6_packet(V6, C6, 6, tcp_seg(80, 40000, 0x18, b"y" * 1400), 16)
    icmp6 = struct.pack("!BBHI", 2, 0, 0, 1280) + quoted[:1232 - 8]
    f["icmp6_too_big"] = eth(0x86DD, v6_packet(C6, V6, 58, icmp6, 2))
    quoted = v6_packet(C6, V6, 17, udp_dgram(40000, 53, b"q" * 12), 6)
    icmp6 = struct.pack("!BBHI", 1, 4, 0, 0) + quoted
    f["icmp6_unreach"] = eth(0x86DD, v6_packet(V6, C6, 58, icmp6, 2))
    f["icmp4_echo"] = eth(0x0800, v4_packet(C4, V4, 1, struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"ping" * 8, 2))
    f["icmp6_echo"] = eth(0x86DD, v6_packet(C6, V6, 58, struct.pack("!BBHHH", 128, 0, 0, 7, 1) + b"ping" * 8, 2))
    # Fragments: a first IPv4 fragment (MF), a later one, an IPv6 first fragment.
    big = tcp_seg(40000, 80, 0x18, bytes(range(256)) * 4)
    seg = with_l4_csum(big, pseudo4(C4, V4, 6, len(big)), 16)
    f["v4_first_fragment"] = eth(0x0800, ipv4_hdr(C4, V4, 6, 512, ident=77, flags_frag=0x2000) + seg[:512])
    f["v4_later_fragment"] = eth(0x0800, ipv4_hdr(C4, V4, 6, len(seg) - 512, ident=77, flags_frag=64) + seg[512:])
    seg6 = with_l4_csum(big, pseudo6(C6, V6, 6, len(big)), 16)
    fh = struct.pack("!BBHI", 6, 0, 1, 0x1234)
    f["v6_first_fragment"] = eth(0x86DD, v6_packet(C6, V6, 6, seg6[:512], exts=fh, first=44))
    # IPv4 options (record route, not copied; security, copied), IPv6 hop-by-hop + dest options.
    opts = bytes([7, 7, 4, 0, 0, 0, 0, 1, 130, 4, 0xAA, 0xBB])
    f["v4_options"] = eth(0x0800, v4_packet(C4, V4, 6, tcp_seg(40000, 80, 0x10, b"opt"), 16, options=opts))
    exts = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([6, 0, 1, 4, 0, 0, 0, 0])
    seg = with_l4_csum(tcp_seg(40000, 80, 0x10, b"ext"), pseudo6(C6, V6, 6, 23), 16)
    f["v6_ext_headers"] = eth(0x86DD, v6_packet(C6, V6, 6, seg, exts=exts, first=0))
    # UDP with checksum "none" (IPv4) and with a wrong one; a jumbo frame without DF.
    f["v4_udp_zero_csum"] = eth(0x0800, v4_packet(C4, V4, 17, udp_dgram(40000, 53, b"zero" * 5)))
    bad = bytearray(eth(0x0800, v4_packet(C4, V4, 17, udp_dgram(40000, 53, b"bad!" * 5), 6)))
    bad[14 + 20 + 6] ^= 0x5A
    bad[14 + 10] ^= 0x01  # and a wrong IPv4 header checksum
    f["v4_udp_bad_csums"] = bytes(bad)
    f["v4_jumbo_no_df"] = eth(0x0800, v4_packet(C4, V4, 17, udp_dgram(40000, 53, bytes(range(256)) * 12), 6,
                                                flags_frag=0))
    f["v6_jumbo"] = eth(0x86DD, v6_packet(C6, V6, 17, udp_dgram(40000, 53, bytes(range(256)) * 12), 6))
    f["v4_ttl1"] = eth(0x0800, v4_packet(C4, V4, 6, tcp_seg(40000, 80, 0x02), 16, ttl=1))
    # Ethernet padding after a short packet.
    f["v4_padded_rst"] = eth(0x0800, v4_packet(C4, V4, 6, tcp_seg(40000, 80, 0x04), 16)) + b"\0" * 6
    # Truncations: inside the IPv4 header, inside TCP, an IPv6 header alone.
    f["trunc_ip"] = f["vlan_v4_syn"][:30]
    f["trunc_tcp"] = eth(0x0800, syn4)[:14 + 20 + 10]
    f["trunc_v6"] = eth(0x86DD, syn6)[:14 + 40]
    return f


# ---------------------------------------------------------------------------------------------
# Picking frames from the captures

def classify(frame):
    """A coarse key: what kind of packet this is."""
    if len(frame) < 14:
        return "short"
    et = struct.unpack("!H", frame[12:14])[0]
    off = 14
    tags = 0
    while et in (0x8100, 0x88A8) and len(frame) >= off + 4:
        et = struct.unpack("!H", frame[off + 2:off + 4])[0]
        off += 4
        tags += 1
    if et == 0x0800 and len(frame) >= off + 20:
        proto = frame[off + 9]
        ihl = (frame[off] & 15) * 4
        l4 = frame[off + ihl:]
        fam = "v4"
        frag = struct.unpack("!H", frame[off + 6:off + 8])[0] & 0x3FFF
        if frag:
            return "v4_fragment"
    elif et == 0x86DD and len(frame) >= off + 40:
        proto = frame[off + 6]
        l4 = frame[off + 40:]
        fam = "v6"
    else:
        return "eth_%04x" % et
    if proto == 6 and len(l4) >= 14:
        fl = l4[13]
        kind = "syn" if fl & 2 and not fl & 0x10 else "synack" if fl & 2 else "rst" if fl & 4 else \
            "fin" if fl & 1 else "data" if len(l4) > (l4[12] >> 4) * 4 else "ack"
        return "%s_tcp_%s%s" % (fam, kind, "_vlan" if tags else "")
    if proto == 17:
        return "%s_udp" % fam
    if proto in (1, 58) and len(l4) >= 1:
        return "%s_icmp_%d" % (fam, l4[0])
    return "%s_proto%d" % (fam, proto)


def captured_frames():
    picked = {}
    for name in sorted(os.listdir(PCAPS)):
        linktype, recs = read_pcap(os.path.join(PCAPS, name))
        per_file = {}
        for i, (_, caplen, wire, raw) in enumerate(recs):
            frame = to_ethernet(linktype, raw)
            if frame is None:
                continue
            key = classify(frame) + ("_truncated" if caplen < wire else "")
            if per_file.get(key, 0) >= 1 or len(picked) >= 60:
                continue
            per_file[key] = per_file.get(key, 0) + 1
            picked["%s_%d_%s" % (name.replace(".pcap", ""), i + 1, key)] = frame
    return picked


def flows():
    """Whole conversations for the pipeline target: (name, [(ts_ns, frame)])."""
    out = []
    for name, limit in [("gopacket-test_ethernet.pcap", 40), ("dpkt-http.pcap", 43), ("dpkt-nb6-http.pcap", 40),
                        ("443-curl.pcap", 30), ("KakaoTalk_chat.pcap", 30), ("WebattackSQLinj.pcap", 30),
                        ("reddit.pcap", 30), ("teams.pcap", 30), ("6in4tunnel.pcap", 12)]:
        linktype, recs = read_pcap(os.path.join(PCAPS, name))
        frames = [(ts, to_ethernet(linktype, raw)) for ts, _, _, raw in recs[:limit]]
        out.append((name.replace(".pcap", ""), [(ts, f) for ts, f in frames if f is not None]))
    linktype, recs = read_pcap(os.path.join(ROOT, "replay", "data", "sample.pcap"))
    out.append(("sample", [(ts, to_ethernet(linktype, raw)) for ts, _, _, raw in recs[:60]]))
    return out


# ---------------------------------------------------------------------------------------------
# Target formats

def addr_knob(v6, host):
    if v6:
        return b"\x01" + bytes([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host])
    return b"\x00" + bytes([10, 0, 0, host]) + b"\0" * 12


def knobs(mtu, select, a, b, headroom=64, port=8080, ident=0x1234):
    k = struct.pack("<BH", headroom, mtu) + bytes([2, 0, 0, 0, 0, 0xfe]) + bytes([2, 0, 0, 0, 1, 2])
    k += bytes([select]) + a + b + struct.pack("<HHBHB", port, ident, 0, 0, 0)
    assert len(k) == 58, len(k)
    return k


def family(frame):
    key = classify(frame)
    return key.startswith("v6")


def is_icmp_error(frame):
    key = classify(frame)
    return any(key.startswith(p) for p in ("v4_icmp_3", "v4_icmp_11", "v6_icmp_1", "v6_icmp_2", "v6_icmp_3"))


def pipeline_seed(mtu_choice, frames):
    b = bytes([mtu_choice])
    prev = frames[0][0]
    for ts, f in frames:
        dt = max(0, min(239, (ts - prev) // 1_000_000))
        prev = ts
        b += bytes([0, dt]) + struct.pack("!H", len(f)) + f
    return b


def pcap_bytes(linktype, frames, big_endian=False, nano=False):
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    b = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        b += struct.pack(e + "IIII", 1_700_000_000 + i, 1000 * i, len(f), len(f)) + f
    return b


def pcapng_bytes(linktype, frames):
    def block(t, body):
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", t, n) + body + struct.pack("<I", n)
    b = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    b += block(1, struct.pack("<HHI", linktype, 0, 65535))
    for i, f in enumerate(frames):
        ts = (1_700_000_000 + i) * 1_000_000
        b += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f)
    return b


RULES = {
    "dr_two_services": """-A -t 198.51.100.1:80 -s wlc
-a -t 198.51.100.1:80 -r 10.0.0.1:80 -g -w 1
-a -t 198.51.100.1:80 -r 10.0.0.2:80 -g -w 2
-A -u 198.51.100.1:53 -s rr -o
-a -u 198.51.100.1:53 -r 10.0.0.1:53 -g -w 1
""",
    "nat_persistent_v6": """# ipvsadm-save -n
-A -t [2001:db8::1]:443 -s mh -b mh-port,mh-fallback -p 600 -M 64
-a -t [2001:db8::1]:443 -r [2001:db8:1::1]:8443 -m -w 5 -x 100 -y 50
-a -t [2001:db8::1]:443 -r [2001:db8:1::2]:8443 -m -w 0
""",
    "tun_gue_long_options": """--add-service --tcp-service 203.0.113.10:0 --scheduler sh --sched-flags sh-port --persistent
--add-server --tcp-service 203.0.113.10:0 --real-server 10.1.0.1 --ipip --weight 3 --tun-type gue --tun-port 6080
--add-server --tcp-service 203.0.113.10:0 --real-server 10.1.0.2 --ipip --weight 1 --tun-type ipip
""",
    "every_scheduler": "".join(
        "-A -t 198.51.100.%d:80 -s %s\n-a -t 198.51.100.%d:80 -r 10.0.%d.1:80 -m -w %d\n" % (i + 1, s, i + 1, i, i)
        for i, s in enumerate(["rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "twos", "sh", "dh", "mh",
                               "maglev"])),
    "error_fwmark": "-A -f 1 -s rr\n-a -f 1 -r 10.0.0.1 -g\n",
    "error_unknown_option": "-A -t 198.51.100.1:80 -s rr\n\n-a -t 198.51.100.1:80 -r 10.0.0.1 --gue-cksum\n",
}


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as fh:
        fh.write(data)


def main():
    frames = dict(captured_frames())
    frames.update(synthesized())
    mtus = [1500, 1500, 576, 1280, 9000]
    for i, (name, f) in enumerate(sorted(frames.items())):
        v6 = family(f)
        write("parse_frame", name, f)
        mtu = mtus[i % len(mtus)]
        select = (2 + i % 2) if is_icmp_error(f) else i % 2
        write("rewrite_nat", name, knobs(mtu, select, addr_knob(v6, 2), addr_knob(v6, 2)) + f)
        write("rewrite_dr", name, knobs(mtu, 0, addr_knob(v6, 2), addr_knob(v6, 2)) + f)
        outer_v6 = (i // 2) % 2 == 1
        write("rewrite_tun", name,
              knobs(mtu, i % 2, addr_knob(outer_v6, 254), addr_knob(outer_v6, 3), port=6080) + f)
    for i, (name, fl) in enumerate(flows()):
        write("pipeline", name, pipeline_seed(i % 4, fl))
    # Synthesized traffic for the paths captures rarely take: ICMP errors about connections
    # (both directions), fragmentation (IPv4 without DF over the MTU), too big (IPv6), TTL 1,
    # VLAN tags, the explicit VIP and its reply; at MTU 1500 and 576.
    syn_frames = synthesized()
    udp4 = eth(0x0800, v4_packet(C4, V4, 17, udp_dgram(40000, 53, b"q" * 12), 6))
    udp6 = eth(0x86DD, v6_packet(C6, V6, 17, udp_dgram(40000, 53, b"q" * 12), 6))
    syn4 = eth(0x0800, v4_packet(C4, V4, 6, tcp_seg(40000, 80, 0x02), 16))
    vip = [192, 0, 2, 80]
    vip_syn = eth(0x0800, v4_packet(C4, vip, 6, tcp_seg(40001, 80, 0x02), 16))
    vip_synack = eth(0x0800, v4_packet(vip, C4, 6, tcp_seg(80, 40001, 0x12, ack=1001), 16))
    story = [udp4, syn_frames["icmp4_port_unreach"], syn4, syn_frames["icmp4_frag_needed"],
             syn_frames["v4_jumbo_no_df"], syn_frames["v4_ttl1"], syn_frames["vlan_v4_syn"], vip_syn, vip_synack,
             syn_frames["v4_options"], syn_frames["v4_udp_zero_csum"], syn_frames["icmp4_echo"], udp6,
             syn_frames["icmp6_unreach"], syn_frames["v6_jumbo"], syn_frames["qinq_v6_syn"],
             syn_frames["v6_ext_headers"], syn_frames["v6_first_fragment"], syn_frames["trunc_tcp"]]
    timed = [(i * 1_000_000, f) for i, f in enumerate(story)]
    write("pipeline", "synthetic_mtu1500", pipeline_seed(0, timed))
    write("pipeline", "synthetic_mtu576", pipeline_seed(2, timed))
    # One with operator events between frames: drain, remove and re-add backends.
    _, fl = flows()[1]
    seq = pipeline_seed(0, fl[:10])
    events = bytes([0xF0, 1, 0xF2, 1, 0xF7, 1, 0xF3, 1])
    write("pipeline", "events", seq + events + pipeline_seed(0, fl[10:])[1:])

    for name in ["dpkt-truncated_dns.pcap", "gopacket-test_ethernet.pcap", "4in6tunnel.pcap"]:
        write("pcap_source", name, open(os.path.join(PCAPS, name), "rb").read())
    write("pcap_source", "sample.pcap", open(os.path.join(ROOT, "replay", "data", "sample.pcap"), "rb").read())
    linktype, recs = read_pcap(os.path.join(PCAPS, "KakaoTalk_chat.pcap"))
    write("pcap_source", "linux_sll.pcap", pcap_bytes(linktype, [r[3] for r in recs[:6]]))
    eth_frames = [frames[k] for k in sorted(frames)[:6]]
    ip_only = [f[14:] for f in eth_frames]
    write("pcap_source", "raw_ip.pcap", pcap_bytes(101, ip_only))
    write("pcap_source", "raw_ip_228.pcap", pcap_bytes(228, [f for f in ip_only if f[0] >> 4 == 4]))
    write("pcap_source", "bsd_null.pcap", pcap_bytes(0, [struct.pack("<I", 2 if f[0] >> 4 == 4 else 24) + f
                                                        for f in ip_only]))
    sll2 = [struct.pack("!HHIHBB8s", struct.unpack("!H", f[12:14])[0], 0, 1, 1, 0, 6, f[6:12] + b"\0\0") + f[14:]
            for f in eth_frames]
    write("pcap_source", "linux_sll2.pcap", pcap_bytes(276, sll2))
    write("pcap_source", "big_endian_nano.pcap", pcap_bytes(1, eth_frames, big_endian=True, nano=True))
    write("pcap_source", "ethernet.pcapng", pcapng_bytes(1, eth_frames))
    write("pcap_source", "truncated.pcapng", pcapng_bytes(1, eth_frames)[:-30])
    write("pcap_source", "unsupported_link.pcap", pcap_bytes(105, eth_frames[:2]))

    for name, text in RULES.items():
        write("rules_file", name, text.encode())

    rng = random.Random(8)
    for target in ["conntrack_ops", "sched_ops"]:
        for n in [64, 256, 1024]:
            write(target, "random_%d" % n, bytes(rng.randrange(256) for _ in range(n)))


if __name__ == "__main__":
    main()
