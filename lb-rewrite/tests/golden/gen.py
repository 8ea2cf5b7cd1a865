#!/usr/bin/env python3
"""Builds lb-rewrite's golden fixtures (cases.txt) with scapy, independently of the Rust code.

Every expected frame is assembled by scapy from field values (scapy computes lengths and
checksums itself); nothing here calls lbkit. The few rules that are ours rather than scapy's are
written out below, each from its source:

* IPVS forwarding (reference/ipvs.md §4): TTL / hop limit decremented; NAT rewrites address and
  port; DR only MACs and TTL; TUN outer header fields (§4.5); ICMP errors under NAT (§4.6).
* "Exactly as wrong": a checksum that was off by e (one's complement) is off by e afterwards.
* Linux fragmentation (ip_options_fragment): options without the copy flag become NOPs after the
  first fragment; data in multiples of 8 bytes.
* Linux icmp_send: TOS 0xC0 | (tos & 0x1E), TTL 64, no DF, quote up to 576 bytes of reply.
* GUE source port: FNV-1a 32 of (src, dst, sport, dport, proto), then the kernel's
  udp_flow_src_port mapping onto 32768..=60999.

Run: python3 gen.py > cases.txt   (needs `pip install scapy`; CI only reads cases.txt)
"""

import ipaddress
import struct
import sys

from scapy.all import (  # noqa: F401
    ARP,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMP,
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IP,
    IPOption_NOP,
    IPOption_RR,
    IPOption_Security,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Raw,
    TCP,
    UDP,
    fragment,
    conf,
)

conf.verb = 0

DIRECTOR_MAC = "02:00:00:00:00:01"  # the director's own MAC (NextHop.src_mac, reply source)
RS_MAC = "02:00:00:00:00:02"  # the real server (NextHop.dst_mac toward it)
ROUTER_MAC = "02:00:00:00:00:0c"  # the client-side router (sent us the requests)
INGRESS_MAC = "02:00:00:00:00:0d"  # the director's ingress MAC (input frames' destination)

CLIENT4, VIP4, RS4, DIR4, TUNSRC4 = "192.0.2.7", "198.51.100.1", "10.0.0.2", "198.51.100.254", "10.0.0.254"
CLIENT6, VIP6, RS6, DIR6, TUNSRC6 = "2001:db8:c::7", "2001:db8:f::1", "fd00::2", "2001:db8:f::fe", "fd00::fe"
CPORT, VPORT, RPORT = 40000, 80, 8080
IDENT = 0x1234
PAYLOAD = bytes(range(32, 32 + 40))


def cases_out(lines):
    sys.stdout.write("\n".join(lines) + "\n")


def hx(p):
    return bytes(p).hex()


def ocadd(a, b):
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def shifted(good_new, bad, good):
    """A checksum off by the same one's-complement amount as `bad` was off from `good`."""
    return ocadd(good_new, ocadd(bad, (~good) & 0xFFFF))


def ttl_down(ip):
    ip = ip.copy()
    if IP in ip and ip.__class__ is IP:
        ip.ttl -= 1
        ip.chksum = None
    else:
        ip.hlim -= 1
    return ip


def eth_in(*tags):
    e = Ether(src=ROUTER_MAC, dst=INGRESS_MAC)
    for t in tags:
        e = e / t
    return e


def eth_out(dst=RS_MAC, *tags):
    e = Ether(src=DIRECTOR_MAC, dst=dst)
    for t in tags:
        e = e / t
    return e


def eth_out_raw(etype, dst=RS_MAC, tags=()):
    """eth_out for a raw (already serialized) IP payload: the ethertype is set explicitly."""
    if not tags:
        return Ether(src=DIRECTOR_MAC, dst=dst, type=etype)
    e = Ether(src=DIRECTOR_MAC, dst=dst)
    for i, t in enumerate(tags):
        t = t.copy()
        if i == len(tags) - 1:
            t.type = etype
        e = e / t
    return e


def rebuild(p):
    """Re-dissects a packet so that every computed field is fixed in the object."""
    return p.__class__(bytes(p))


class Case:
    def __init__(self, name, mode, comment):
        self.lines = [f"# {comment}", f"case {name}", f"mode {mode}"]

    def kv(self, k, v):
        self.lines.append(f"{k} {v}")
        return self

    def hop(self, dst_mac, mtu=1500):
        return self.kv("hop", f"{DIRECTOR_MAC} {dst_mac} {mtu}")

    def done(self):
        self.lines.append("end")
        self.lines.append("")
        return self.lines


ALL = []


def add(c):
    ALL.extend(c.done())


# ---------------------------------------------------------------------------------------------
# NAT
# ---------------------------------------------------------------------------------------------


def nat_pair(name, fam, l4, tags=(), ip_kw=None, exts=None, comment="", payload=PAYLOAD):
    """A DNAT of a request and a SNAT of the matching reply."""
    ip_kw = ip_kw or {}
    if fam == 4:
        ipreq = IP(src=CLIENT4, dst=VIP4, ttl=64, id=7, flags="DF", **ip_kw)
        ipexp = IP(src=CLIENT4, dst=RS4, ttl=63, id=7, flags="DF", **ip_kw)
        iprep = IP(src=RS4, dst=CLIENT4, ttl=64, id=9, flags="DF", **ip_kw)
        iprepexp = IP(src=VIP4, dst=CLIENT4, ttl=63, id=9, flags="DF", **ip_kw)
        target, vs = f"{RS4}:{RPORT}", f"{VIP4}:{VPORT}"
    else:
        ipreq = IPv6(src=CLIENT6, dst=VIP6, hlim=64, **ip_kw)
        ipexp = IPv6(src=CLIENT6, dst=RS6, hlim=63, **ip_kw)
        iprep = IPv6(src=RS6, dst=CLIENT6, hlim=64, **ip_kw)
        iprepexp = IPv6(src=VIP6, dst=CLIENT6, hlim=63, **ip_kw)
        target, vs = f"[{RS6}]:{RPORT}", f"[{VIP6}]:{VPORT}"
    ext = exts() if exts else None

    def with_ext(ip):
        return ip / exts() if exts else ip

    l4req = l4(sport=CPORT, dport=VPORT)
    l4exp = l4(sport=CPORT, dport=RPORT)
    l4rep = l4(sport=RPORT, dport=CPORT)
    l4repexp = l4(sport=VPORT, dport=CPORT)
    del ext
    add(
        Case(f"{name}_dnat", "dnat", comment or f"NAT request, IPv{fam}")
        .kv("target", target)
        .hop(RS_MAC)
        .kv("in", hx(eth_in(*tags) / with_ext(ipreq) / l4req / Raw(payload)))
        .kv("verdict", "forward")
        .kv("out", hx(eth_out(RS_MAC, *tags) / with_ext(ipexp) / l4exp / Raw(payload)))
    )
    add(
        Case(f"{name}_snat", "snat", (comment or f"NAT reply, IPv{fam}") + " (reply)")
        .kv("target", vs)
        .hop(ROUTER_MAC)
        .kv("in", hx(eth_in(*tags) / with_ext(iprep) / l4rep / Raw(payload)))
        .kv("verdict", "forward")
        .kv("out", hx(eth_out(ROUTER_MAC, *tags) / with_ext(iprepexp) / l4repexp / Raw(payload)))
    )


def tcp(**kw):
    return TCP(seq=1000, ack=2000, flags="PA", window=512, **kw)


nat_pair("nat_v4_tcp", 4, tcp, comment="NAT IPv4 TCP")
nat_pair("nat_v6_tcp", 6, tcp, comment="NAT IPv6 TCP")
nat_pair("nat_v4_udp", 4, UDP, comment="NAT IPv4 UDP")
nat_pair("nat_v6_udp", 6, UDP, comment="NAT IPv6 UDP")
nat_pair("nat_v4_qinq", 4, tcp, tags=(Dot1AD(vlan=100), Dot1Q(vlan=200)), comment="NAT IPv4 TCP, 802.1ad + 802.1Q")
nat_pair("nat_v6_vlan", 6, UDP, tags=(Dot1Q(vlan=42, prio=5),), comment="NAT IPv6 UDP, 802.1Q")
nat_pair(
    "nat_v4_options",
    4,
    tcp,
    ip_kw={"options": [IPOption_NOP(), IPOption_RR(routers=["1.1.1.1", "0.0.0.0"])]},
    comment="NAT IPv4 TCP with IP options (NOP, record route)",
)
nat_pair(
    "nat_v6_ext",
    6,
    tcp,
    exts=lambda: IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(segleft=0) / IPv6ExtHdrDestOpt(),
    comment="NAT IPv6 TCP behind hop-by-hop, routing and destination-options headers",
)
nat_pair("nat_v4_small", 4, tcp, payload=b"", comment="NAT IPv4 TCP without payload (54-byte frame)")

# A frame with Ethernet padding: the padding is kept, untouched.
req = eth_in() / IP(src=CLIENT4, dst=VIP4, ttl=9) / UDP(sport=CPORT, dport=53) / Raw(b"ab")
exp = eth_out() / IP(src=CLIENT4, dst=RS4, ttl=8) / UDP(sport=CPORT, dport=5353) / Raw(b"ab")
add(
    Case("nat_v4_udp_padding", "dnat", "NAT IPv4 UDP with Ethernet padding after the IP packet")
    .kv("target", f"{RS4}:5353")
    .hop(RS_MAC)
    .kv("in", bytes(req).hex() + "a5" * 16)
    .kv("verdict", "forward")
    .kv("out", bytes(exp).hex() + "a5" * 16)
)

# UDP zero checksum (IPv4 "none"): IPVS computes a full one.
for fam in (4, 6):
    if fam == 4:
        ipin, ipout, target = IP(src=CLIENT4, dst=VIP4), IP(src=CLIENT4, dst=RS4, ttl=63), f"{RS4}:{RPORT}"
    else:
        ipin, ipout, target = IPv6(src=CLIENT6, dst=VIP6), IPv6(src=CLIENT6, dst=RS6, hlim=63), f"[{RS6}]:{RPORT}"
    add(
        Case(f"nat_v{fam}_udp_zero_checksum_dnat", "dnat", f"NAT IPv{fam} UDP whose checksum is 0: computed in full")
        .kv("target", target)
        .hop(RS_MAC)
        .kv("in", hx(eth_in() / ipin / UDP(sport=CPORT, dport=VPORT, chksum=0) / Raw(PAYLOAD)))
        .kv("verdict", "forward")
        .kv("out", hx(eth_out() / ipout / UDP(sport=CPORT, dport=RPORT) / Raw(PAYLOAD)))
    )

# A UDP datagram whose new checksum is exactly 0x0000: must be sent as 0xFFFF. Search for a
# payload word that makes it so (scapy applies the same rule when it computes).
for w in range(0x10000):
    pl = struct.pack("!H", w) + b"zz"
    o = rebuild(IP(src=CLIENT4, dst=RS4, ttl=63) / UDP(sport=CPORT, dport=RPORT) / Raw(pl))
    if o[UDP].chksum == 0xFFFF:
        break
else:
    raise SystemExit("no payload gives a zero UDP checksum")
add(
    Case("nat_v4_udp_result_zero_dnat", "dnat", "NAT IPv4 UDP whose updated checksum is 0: stored as 0xFFFF")
    .kv("target", f"{RS4}:{RPORT}")
    .hop(RS_MAC)
    .kv("in", hx(eth_in() / IP(src=CLIENT4, dst=VIP4) / UDP(sport=CPORT, dport=VPORT) / Raw(pl)))
    .kv("verdict", "forward")
    .kv("out", hx(eth_out() / o))
)

# Wrong checksums stay exactly as wrong: TCP off by 0x1234, IPv4 header off by 0x0101.
good_in = rebuild(IP(src=CLIENT4, dst=VIP4, id=3) / tcp(sport=CPORT, dport=VPORT) / Raw(PAYLOAD))
good_out = rebuild(IP(src=CLIENT4, dst=RS4, id=3, ttl=63) / tcp(sport=CPORT, dport=RPORT) / Raw(PAYLOAD))
bad_in = good_in.copy()
bad_in[TCP].chksum = ocadd(good_in[TCP].chksum, 0x1234)
bad_in[IP].chksum = ocadd(good_in[IP].chksum, 0x0101)
bad_out = good_out.copy()
bad_out[TCP].chksum = shifted(good_out[TCP].chksum, bad_in[TCP].chksum, good_in[TCP].chksum)
bad_out[IP].chksum = shifted(good_out[IP].chksum, bad_in[IP].chksum, good_in[IP].chksum)
add(
    Case("nat_v4_bad_checksums_dnat", "dnat", "NAT of a packet with wrong IPv4 and TCP checksums: as wrong after")
    .kv("target", f"{RS4}:{RPORT}")
    .hop(RS_MAC)
    .kv("in", hx(eth_in() / bad_in))
    .kv("verdict", "forward")
    .kv("out", hx(eth_out() / bad_out))
)
good_in = rebuild(IPv6(src=CLIENT6, dst=VIP6) / UDP(sport=CPORT, dport=VPORT) / Raw(PAYLOAD))
good_out = rebuild(IPv6(src=CLIENT6, dst=RS6, hlim=63) / UDP(sport=CPORT, dport=RPORT) / Raw(PAYLOAD))
bad_in = good_in.copy()
bad_in[UDP].chksum = ocadd(good_in[UDP].chksum, 0x00FF)
bad_out = good_out.copy()
bad_out[UDP].chksum = shifted(good_out[UDP].chksum, bad_in[UDP].chksum, good_in[UDP].chksum)
add(
    Case("nat_v6_bad_udp_checksum_dnat", "dnat", "NAT of an IPv6 UDP packet with a wrong checksum: as wrong after")
    .kv("target", f"[{RS6}]:{RPORT}")
    .hop(RS_MAC)
    .kv("in", hx(eth_in() / bad_in))
    .kv("verdict", "forward")
    .kv("out", hx(eth_out() / bad_out))
)

# ICMPv6 echo through NAT: only the address and the ICMPv6 checksum (pseudo-header).
add(
    Case("nat_v6_echo_dnat", "dnat", "NAT of an ICMPv6 echo request: address and checksum only")
    .kv("target", f"[{RS6}]:0")
    .hop(RS_MAC)
    .kv("in", hx(eth_in() / IPv6(src=CLIENT6, dst=VIP6) / ICMPv6EchoRequest(id=5, seq=1, data=b"ping")))
    .kv("verdict", "forward")
    .kv("out", hx(eth_out() / IPv6(src=CLIENT6, dst=RS6, hlim=63) / ICMPv6EchoRequest(id=5, seq=1, data=b"ping")))
)

# ---------------------------------------------------------------------------------------------
# TTL expiry and MTU
# ---------------------------------------------------------------------------------------------


def reply_eth(tags):
    e = Ether(dst=ROUTER_MAC, src=DIRECTOR_MAC)
    for t in tags:
        e = e / t
    return e


def reply_v4(orig_ip_bytes, tags, icmp, tos):
    quote = orig_ip_bytes[: 576 - 28]
    ip = IP(src=DIR4, dst=CLIENT4, tos=0xC0 | (tos & 0x1E), id=IDENT, flags=0, ttl=64)
    return reply_eth(tags) / ip / icmp / Raw(quote)


def reply_v6(orig_ip_bytes, tags, icmp):
    quote = orig_ip_bytes[: 1280 - 48]
    return reply_eth(tags) / IPv6(src=DIR6, dst=CLIENT6, hlim=64) / icmp / Raw(quote)


for mode in ("dnat", "dr", "tun"):
    ip = IP(src=CLIENT4, dst=VIP4, ttl=1, tos=0xB8) / tcp(sport=CPORT, dport=VPORT) / Raw(PAYLOAD)
    c = Case(f"ttl_expiry_v4_{mode}", mode, f"IPv4 TTL 1 through {mode}: time exceeded, frame unchanged")
    if mode == "dnat":
        c.kv("target", f"{RS4}:{RPORT}")
    if mode == "tun":
        c.kv("tunnel", f"{TUNSRC4} {RS4} ipip {IDENT}").kv("headroom", "64")
    frame = eth_in(Dot1Q(vlan=7)) / ip
    add(
        c.hop(RS_MAC)
        .kv("reply_from", f"{DIR4} {DIRECTOR_MAC} {IDENT}")
        .kv("in", hx(frame))
        .kv("verdict", "time_exceeded")
        .kv("out", hx(frame))
        .kv("reply", hx(reply_v4(bytes(ip), (Dot1Q(vlan=7),), ICMP(type=11, code=0), 0xB8)))
    )
ip = IPv6(src=CLIENT6, dst=VIP6, hlim=1) / UDP(sport=CPORT, dport=VPORT) / Raw(PAYLOAD)
add(
    Case("hop_limit_expiry_v6_dnat", "dnat", "IPv6 hop limit 1: ICMPv6 time exceeded")
    .kv("target", f"[{RS6}]:{RPORT}")
    .hop(RS_MAC)
    .kv("reply_from", f"{DIR6} {DIRECTOR_MAC} 0")
    .kv("in", hx(eth_in() / ip))
    .kv("verdict", "time_exceeded")
    .kv("out", hx(eth_in() / ip))
    .kv("reply", hx(reply_v6(bytes(ip), (), ICMPv6TimeExceeded(code=0))))
)

# DF + too big: ICMP fragmentation needed with the MTU; the quote has the decremented TTL.
big = IP(src=CLIENT4, dst=VIP4, ttl=20, flags="DF", tos=0x2A) / tcp(sport=CPORT, dport=VPORT) / Raw(bytes(1460))
quoted = bytes(ttl_down(rebuild(big)))
add(
    Case("too_big_v4_df_dnat", "dnat", "IPv4 DF, 1500 bytes over an MTU of 1400: fragmentation needed (MTU 1400)")
    .kv("target", f"{RS4}:{RPORT}")
    .hop(RS_MAC, 1400)
    .kv("reply_from", f"{DIR4} {DIRECTOR_MAC} {IDENT}")
    .kv("in", hx(eth_in() / big))
    .kv("verdict", "too_big 1400")
    .kv("out", hx(eth_in() / IP(quoted)))
    .kv("reply", hx(reply_v4(quoted, (), ICMP(type=3, code=4, nexthopmtu=1400), 0x2A)))
)
big6 = IPv6(src=CLIENT6, dst=VIP6, hlim=20) / tcp(sport=CPORT, dport=VPORT) / Raw(bytes(1440))
quoted6 = bytes(ttl_down(rebuild(big6)))
add(
    Case("too_big_v6_dr", "dr", "IPv6, 1500 bytes over an MTU of 1280: packet too big (1280), 1232 bytes quoted")
    .hop(RS_MAC, 1280)
    .kv("reply_from", f"{DIR6} {DIRECTOR_MAC} 0")
    .kv("in", hx(eth_in() / big6))
    .kv("verdict", "too_big 1280")
    .kv("out", hx(eth_in() / IPv6(quoted6)))
    .kv("reply", hx(reply_v6(quoted6, (), ICMPv6PacketTooBig(mtu=1280))))
)


def linux_later_options(opts):
    """ip_options_fragment: options without the copy flag (0x80) become NOPs."""
    out = bytearray(opts)
    i = 0
    while i < len(out):
        k = out[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        ln = out[i + 1]
        if ln < 2 or i + ln > len(out):
            break
        if not k & 0x80:
            out[i : i + ln] = b"\x01" * ln
        i += ln
    return bytes(out)


def fragments_v4(ip_pkt, mtu):
    """The fragments Linux makes of `ip_pkt` (bytes of a whole IPv4 packet) for `mtu`."""
    p = IP(ip_pkt)
    hl = p.ihl * 4
    chunk = (mtu - hl) // 8 * 8
    frags = fragment(p, fragsize=chunk)
    out = []
    for i, f in enumerate(frags):
        raw = bytearray(bytes(f))
        if i > 0:
            raw[20:hl] = linux_later_options(raw[20:hl])
        g = IP(bytes(raw))
        g.chksum = None
        out.append(bytes(g))
    return out


# No DF, too big, with a copied option (security) and a non-copied one (record route): fragmented.
opts = [IPOption_Security(), IPOption_RR(routers=["0.0.0.0"])]
big = IP(src=CLIENT4, dst=VIP4, ttl=30, id=0x4242, options=opts) / UDP(sport=CPORT, dport=VPORT) / Raw(bytes(range(256)) * 5)
after = rebuild(IP(src=CLIENT4, dst=RS4, ttl=29, id=0x4242, options=opts) / UDP(sport=CPORT, dport=RPORT) / Raw(bytes(range(256)) * 5))
c = (
    Case("fragment_v4_options_dnat", "dnat", "IPv4 without DF over an MTU of 576, options: RFC 791 fragments")
    .kv("target", f"{RS4}:{RPORT}")
    .hop(RS_MAC, 576)
    .kv("in", hx(eth_in(Dot1Q(vlan=3)) / big))
)
fr = fragments_v4(bytes(after), 576)
c.kv("verdict", f"fragmented {len(fr)}")
for f in fr:
    c.kv("frag", hx(eth_out_raw(0x0800, RS_MAC, (Dot1Q(vlan=3),)) / Raw(f)))
add(c)

# ---------------------------------------------------------------------------------------------
# DR
# ---------------------------------------------------------------------------------------------

for fam, tags in ((4, ()), (6, ()), (4, (Dot1Q(vlan=10),))):
    if fam == 4:
        ip = IP(src=CLIENT4, dst=VIP4, ttl=64, flags="DF")
        exp = IP(src=CLIENT4, dst=VIP4, ttl=63, flags="DF")
    else:
        ip = IPv6(src=CLIENT6, dst=VIP6, hlim=64)
        exp = IPv6(src=CLIENT6, dst=VIP6, hlim=63)
    name = f"dr_v{fam}_tcp" + ("_vlan" if tags else "")
    add(
        Case(name, "dr", f"DR IPv{fam}: MACs and TTL only")
        .hop(RS_MAC)
        .kv("in", hx(eth_in(*tags) / ip / tcp(sport=CPORT, dport=VPORT) / Raw(PAYLOAD)))
        .kv("verdict", "forward")
        .kv("out", hx(eth_out(RS_MAC, *tags) / exp / tcp(sport=CPORT, dport=VPORT) / Raw(PAYLOAD)))
    )

# ---------------------------------------------------------------------------------------------
# TUN
# ---------------------------------------------------------------------------------------------


def fnv1a(data):
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def gue_sport(src, dst, sport, dport, proto):
    h = fnv1a(ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed + struct.pack("!HHB", sport, dport, proto))
    h = (h ^ (h << 16)) & 0xFFFFFFFF
    return ((h * (60999 + 1 - 32768)) >> 32) + 32768


def ecn_encap(ds):
    return (ds & ~3 & 0xFF) | (2 if ds & 3 == 3 else ds & 3)


def tun_case(name, inner_fam, outer_fam, gue=None, tos=0x00, df=True, tags=(), mtu=1500, size=0, comment=""):
    if inner_fam == 4:
        inner = IP(src=CLIENT4, dst=VIP4, ttl=50, tos=tos, id=77, flags="DF" if df else 0)
        proto_num, inner_proto = 6, 4
        src, dst = CLIENT4, VIP4
    else:
        inner = IPv6(src=CLIENT6, dst=VIP6, hlim=50, tc=tos, fl=0x12345)
        proto_num, inner_proto = 6, 41
        src, dst = CLIENT6, VIP6
    inner = rebuild(inner / tcp(sport=CPORT, dport=VPORT) / Raw(PAYLOAD + bytes(size)))
    inner_after = bytes(ttl_down(inner))
    ds = ecn_encap(tos)
    if outer_fam == 4:
        tsrc, tdst = TUNSRC4, RS4
        outer_df = "DF" if (inner_fam == 6 or df) else 0
        nxt = 17 if gue else inner_proto
        outer = IP(src=tsrc, dst=tdst, tos=ds, id=IDENT, flags=outer_df, ttl=49, proto=nxt)
    else:
        tsrc, tdst = TUNSRC6, RS6
        nxt = 17 if gue else inner_proto
        outer = IPv6(src=tsrc, dst=tdst, tc=ds, fl=0, hlim=49, nh=nxt)
    if gue:
        sp = gue_sport(src, dst, CPORT, VPORT, proto_num)
        outer = outer / UDP(sport=sp, dport=gue, chksum=0) / Raw(bytes([0, inner_proto, 0, 0]))
    encap = f"gue:{gue}" if gue else "ipip"
    c = (
        Case(name, "tun", comment)
        .kv("tunnel", f"{tsrc} {tdst} {encap} {IDENT}")
        .kv("headroom", "64")
        .hop(RS_MAC, mtu)
        .kv("in", hx(eth_in(*tags) / inner))
    )
    full = bytes(outer / Raw(inner_after))
    if len(full) <= mtu:
        etype = 0x0800 if outer_fam == 4 else 0x86DD
        c.kv("verdict", "forward").kv("out", hx(eth_out_raw(etype, RS_MAC, tags) / Raw(full)))
    return c, full, inner_after


for name, i, o, kw, comment in [
    ("tun_4in4", 4, 4, {"tos": 0xB8}, "IPIP: IPv4 in IPv4, DSCP EF copied, DF copied"),
    ("tun_6in6", 6, 6, {"tos": 0x28}, "IPv6 in IPv6 (next header 41), traffic class copied, flow label 0"),
    ("tun_4in6", 4, 6, {"tos": 0x01}, "IPv4 in IPv6 (next header 4), ECT(1) copied"),
    ("tun_6in4", 6, 4, {"tos": 0x02}, "IPv6 in IPv4 (protocol 41), outer DF set"),
    ("tun_4in4_ce", 4, 4, {"tos": 0xBB, "df": False}, "IPIP: inner CE becomes ECT(0) outside; no DF copied"),
    ("tun_4in4_vlan", 4, 4, {"tags": (Dot1Q(vlan=77),)}, "IPIP keeps the VLAN tag, ethertype IPv4"),
    ("tun_6in4_vlan", 6, 4, {"tags": (Dot1AD(vlan=1), Dot1Q(vlan=2))}, "IPv6 in IPv4 behind QinQ: last ethertype IPv4"),
    ("tun_gue_4in4", 4, 4, {"gue": 6080}, "GUE: UDP to 6080, checksum 0, GUE proto 4"),
    ("tun_gue_6in6", 6, 6, {"gue": 5555}, "GUE over IPv6: UDP checksum 0, GUE proto 41"),
]:
    c, _, _ = tun_case(name, i, o, comment=comment, **kw)
    add(c)

# TUN MTU: DF inner, too big for 1500 - 20 → TooBig 1480; quote with TTL decremented.
c, full, inner_after = tun_case("tun_4in4_too_big", 4, 4, size=1490 - 80, comment="IPIP, DF, inner 1490 > 1480")
assert len(inner_after) == 1490
c.kv("reply_from", f"{DIR4} {DIRECTOR_MAC} {IDENT}").kv("verdict", "too_big 1480")
c.kv("out", hx(eth_in() / IP(inner_after)))
c.kv("reply", hx(reply_v4(inner_after, (), ICMP(type=3, code=4, nexthopmtu=1480), 0)))
add(c)
c, full, inner_after = tun_case("tun_gue_6in6_too_big", 6, 6, gue=6080, size=1450 - 100, comment="GUE over IPv6: 1500 - 40 - 12 = 1448")
assert len(inner_after) == 1450
c.kv("reply_from", f"{DIR6} {DIRECTOR_MAC} 0").kv("verdict", "too_big 1448")
c.kv("out", hx(eth_in() / IPv6(inner_after)))
c.kv("reply", hx(reply_v6(inner_after, (), ICMPv6PacketTooBig(mtu=1448))))
add(c)
# No DF: the outer IPv4 packet is fragmented.
c, full, _ = tun_case("tun_4in4_fragment", 4, 4, df=False, size=1490 - 80, comment="IPIP, no DF, 1490 + 20 > 1500: outer fragments")
fr = fragments_v4(full, 1500)
c.kv("verdict", f"fragmented {len(fr)}")
for f in fr:
    c.kv("frag", hx(eth_out_raw(0x0800) / Raw(f)))
add(c)


def fragments_v6(full, mtu, ident):
    """RFC 8200 §4.5 fragments of an IPv6 packet with a bare header (built field by field)."""
    p = IPv6(full)
    payload = bytes(p.payload)
    chunk = (mtu - 48) // 8 * 8
    out = []
    off = 0
    while off < len(payload):
        n = min(chunk, len(payload) - off)
        m = 1 if off + n < len(payload) else 0
        fh = struct.pack("!BBHI", p.nh, 0, off | m, ident)
        h = IPv6(src=p.src, dst=p.dst, tc=p.tc, fl=p.fl, hlim=p.hlim, nh=44, plen=8 + n)
        out.append(bytes(h) + fh + payload[off : off + n])
        off += n
    return out


c, full, _ = tun_case("tun_4in6_fragment", 4, 6, df=False, size=1490 - 80, comment="IPv4 (no DF) in IPv6, 1530 > 1500: IPv6 fragments")
fr = fragments_v6(full, 1500, IDENT)
c.kv("verdict", f"fragmented {len(fr)}")
for f in fr:
    c.kv("frag", hx(eth_out_raw(0x86DD) / Raw(f)))
add(c)

# ---------------------------------------------------------------------------------------------
# ICMP errors under NAT (reference/ipvs.md §4.6)
# ---------------------------------------------------------------------------------------------

# From the client side, about a reply we sent (VIP:80 -> client): port unreachable, a router's
# time exceeded. Quoted: IP header + 8 bytes (v4); the whole packet (v6).
reply_pkt = rebuild(IP(src=VIP4, dst=CLIENT4, ttl=60, id=99) / tcp(sport=VPORT, dport=CPORT) / Raw(PAYLOAD))
quote_in = bytes(reply_pkt)[:28]
icmp_in = IP(src=CLIENT4, dst=VIP4, ttl=64, id=5) / ICMP(type=3, code=3) / Raw(quote_in)
q_after = rebuild(IP(src=RS4, dst=CLIENT4, ttl=60, id=99) / tcp(sport=VPORT, dport=CPORT) / Raw(PAYLOAD))
q_after_bytes = bytes(q_after)[:20] + struct.pack("!H", RPORT) + bytes(reply_pkt)[22:28]
exp = IP(src=CLIENT4, dst=RS4, ttl=63, id=5) / ICMP(type=3, code=3) / Raw(q_after_bytes)
add(
    Case("nat_icmp_in_v4", "nat_icmp_in", "ICMP port unreachable from the client about a reply: outer dst, quoted src and sport -> RS")
    .kv("target", f"{RS4}:{RPORT}")
    .hop(RS_MAC)
    .kv("in", hx(eth_in() / icmp_in))
    .kv("verdict", "forward")
    .kv("out", hx(eth_out() / exp))
)
# From the real-server side, about a request (client -> RS:8080): outer src -> VIP, quoted dst
# and dport -> VIP:80.
req_pkt = rebuild(IP(src=CLIENT4, dst=RS4, ttl=63, id=11) / UDP(sport=CPORT, dport=RPORT) / Raw(PAYLOAD))
icmp_out = IP(src=RS4, dst=CLIENT4, ttl=64, id=6, tos=0xC0) / ICMP(type=3, code=3) / Raw(bytes(req_pkt)[:28])
# The quoted UDP checksum (within the 8 quoted bytes) follows the new address and port: the whole
# request was valid, so it is the checksum scapy computes for the rewritten request.
q_after = rebuild(IP(src=CLIENT4, dst=VIP4, ttl=63, id=11) / UDP(sport=CPORT, dport=VPORT) / Raw(PAYLOAD))
q_after_bytes = bytes(q_after)[:28]
exp = IP(src=VIP4, dst=CLIENT4, ttl=63, id=6, tos=0xC0) / ICMP(type=3, code=3) / Raw(q_after_bytes)
add(
    Case("nat_icmp_out_v4", "nat_icmp_out", "ICMP port unreachable from the RS about a request: outer src, quoted dst and dport -> VIP")
    .kv("target", f"{VIP4}:{VPORT}")
    .hop(ROUTER_MAC)
    .kv("in", hx(eth_in() / icmp_out))
    .kv("verdict", "forward")
    .kv("out", hx(eth_out(ROUTER_MAC) / exp))
)
# A wrong ICMP checksum: refused (IPVS drops it).
bad = rebuild(IP(src=CLIENT4, dst=VIP4, ttl=64, id=5) / ICMP(type=3, code=3) / Raw(quote_in))
bad[ICMP].chksum ^= 0x0F0F
add(
    Case("nat_icmp_in_v4_bad_checksum", "nat_icmp_in", "ICMP error with a wrong checksum: bad_icmp_checksum")
    .kv("target", f"{RS4}:{RPORT}")
    .hop(RS_MAC)
    .kv("in", hx(eth_in() / bad))
    .kv("verdict", "rewrite_error bad_icmp_checksum")
)

reply6 = rebuild(IPv6(src=VIP6, dst=CLIENT6, hlim=60) / tcp(sport=VPORT, dport=CPORT) / Raw(PAYLOAD))
icmp6_in = IPv6(src=CLIENT6, dst=VIP6, hlim=64) / ICMPv6DestUnreach(code=4) / Raw(bytes(reply6))
# The whole reply is quoted: its TCP checksum follows the new source address and port (IPVS leaves
# it stale; we update it), so it is what scapy computes for the rewritten reply.
q6 = bytearray(bytes(rebuild(IPv6(src=RS6, dst=CLIENT6, hlim=60) / tcp(sport=RPORT, dport=CPORT) / Raw(PAYLOAD))))
exp6 = IPv6(src=CLIENT6, dst=RS6, hlim=63) / ICMPv6DestUnreach(code=4) / Raw(bytes(q6))
add(
    Case("nat_icmp_in_v6", "nat_icmp_in", "ICMPv6 port unreachable about a reply, whole packet quoted; quoted TCP checksum updated")
    .kv("target", f"[{RS6}]:{RPORT}")
    .hop(RS_MAC)
    .kv("in", hx(eth_in() / icmp6_in))
    .kv("verdict", "forward")
    .kv("out", hx(eth_out() / exp6))
)
req6 = rebuild(IPv6(src=CLIENT6, dst=RS6, hlim=63) / tcp(sport=CPORT, dport=RPORT) / Raw(PAYLOAD))
icmp6_out = IPv6(src=RS6, dst=CLIENT6, hlim=64) / ICMPv6PacketTooBig(mtu=1400) / Raw(bytes(req6)[:48])
q6 = bytearray(bytes(req6)[:48])
q6[24:40] = ipaddress.ip_address(VIP6).packed
q6[42:44] = struct.pack("!H", VPORT)
exp6 = IPv6(src=VIP6, dst=CLIENT6, hlim=63) / ICMPv6PacketTooBig(mtu=1400) / Raw(bytes(q6))
add(
    Case("nat_icmp_out_v6", "nat_icmp_out", "ICMPv6 packet too big from the RS side: outer src, quoted dst and dport -> VIP")
    .kv("target", f"[{VIP6}]:{VPORT}")
    .hop(ROUTER_MAC)
    .kv("in", hx(eth_in() / icmp6_out))
    .kv("verdict", "forward")
    .kv("out", hx(eth_out(ROUTER_MAC) / exp6))
)

# ---------------------------------------------------------------------------------------------
# Parse errors: each malformed frame and the reason it must be refused with.
# ---------------------------------------------------------------------------------------------

ok4 = eth_in() / IP(src=CLIENT4, dst=VIP4) / tcp(sport=CPORT, dport=VPORT)
ok6 = eth_in() / IPv6(src=CLIENT6, dst=VIP6) / UDP(sport=CPORT, dport=VPORT)
errors = [
    ("truncated_ethernet", bytes(ok4)[:13]),
    ("unsupported_ethertype", bytes(Ether(src=ROUTER_MAC, dst=INGRESS_MAC) / ARP())),
    ("truncated_vlan", bytes(eth_in(Dot1Q(vlan=1)))[:16]),
    ("too_many_vlan_tags", bytes(eth_in(Dot1AD(vlan=1), Dot1Q(vlan=2), Dot1Q(vlan=3)) / IP() / TCP())),
    ("truncated_ip", bytes(ok4)[:30]),
    ("truncated_ip", bytes(ok4)[:50]),
    ("bad_ip_version", bytes(Ether(src=ROUTER_MAC, dst=INGRESS_MAC, type=0x0800) / IPv6() / TCP())),
    ("bad_ihl", bytes(eth_in() / IP(ihl=4) / TCP())),
    ("bad_ihl", bytes(eth_in() / IP(ihl=15, len=40) / Raw(bytes(60)))),
    ("bad_ip_length", bytes(eth_in() / IP(len=19) / TCP())),
    ("ipv4_fragment", bytes(eth_in() / IP(frag=185, proto=6) / Raw(bytes(40)))),
    ("ipv6_fragment", bytes(eth_in() / IPv6(nh=44) / Raw(struct.pack("!BBHI", 6, 0, 8 * 10, 1) + bytes(40)))),
    ("truncated_ipv6_ext_header", bytes(eth_in() / IPv6(nh=0, plen=8) / Raw(bytes([6, 1]) + bytes(6)))),
    ("unsupported_protocol", bytes(eth_in() / IP(proto=47) / Raw(bytes(8)))),
    ("unsupported_protocol", bytes(eth_in() / IP(proto=41) / IPv6() / TCP())),
    ("truncated_tcp", bytes(eth_in() / IP(proto=6) / Raw(bytes(19)))),
    ("bad_tcp_offset", bytes(eth_in() / IP() / TCP(dataofs=4))),
    ("bad_tcp_offset", bytes(eth_in() / IP() / TCP(dataofs=15))),
    ("truncated_udp", bytes(eth_in() / IPv6(nh=17) / Raw(bytes(7)))),
    ("bad_udp_length", bytes(eth_in() / IP() / UDP(len=7))),
    ("bad_udp_length", bytes(eth_in() / IP() / UDP(len=100) / Raw(bytes(10)))),
    ("truncated_icmp", bytes(eth_in() / IP(proto=1) / Raw(bytes(7)))),
    ("truncated_icmp_quote", bytes(eth_in() / IP() / ICMP(type=3, code=1) / Raw(bytes(bytes(IP() / TCP())[:24])))),
    ("bad_icmp_quote", bytes(eth_in() / IP() / ICMP(type=11) / Raw(bytes(IPv6() / TCP())))),
    ("icmp_quote_fragment", bytes(eth_in() / IP() / ICMP(type=3) / Raw(bytes(IP(frag=3) / TCP())[:28]))),
    ("unsupported_icmp_quote_protocol", bytes(eth_in() / IP() / ICMP(type=3) / Raw(bytes(IP(proto=47) / Raw(bytes(8)))))),
]
for i, (reason, frame) in enumerate(errors):
    add(
        Case(f"parse_error_{i:02}_{reason}", "parse", f"refused as {reason}")
        .kv("in", frame.hex())
        .kv("verdict", f"parse_error {reason}")
    )

print("# Generated by gen.py (scapy); do not edit by hand. One case per block:")
print("#   case NAME / mode dnat|snat|dr|tun|nat_icmp_in|nat_icmp_out|parse / target ADDR:PORT /")
print("#   tunnel SRC DST ipip|gue:PORT IDENT / hop SRC_MAC DST_MAC MTU / headroom N /")
print("#   reply_from ADDR MAC IDENT / in HEX / verdict ... / out HEX / frag HEX... / reply HEX / end")
print()
cases_out(ALL)
