#!/usr/bin/env python3
"""Independent known-answer values for lb-sched's hash schedulers.

Written from reference/ipvs.md (sections 1.4 and 1.5) and the lbkit docs of `maglev`, without
reading lb-sched's code. Run it to regenerate the numbers pasted into tests/kat.rs:

    python3 lb-sched/tests/kat/ipvs_kat.py
"""
import ipaddress

M64 = (1 << 64) - 1


def rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & M64


def sipround(v):
    v0, v1, v2, v3 = v
    v0 = (v0 + v1) & M64; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
    v2 = (v2 + v3) & M64; v3 = rotl(v3, 16); v3 ^= v2
    v0 = (v0 + v3) & M64; v3 = rotl(v3, 21); v3 ^= v0
    v2 = (v2 + v1) & M64; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
    return [v0, v1, v2, v3]


def siphash13(k0, k1, data: bytes) -> int:
    """SipHash-1-3, 64-bit output (v0^v1^v2^v3)."""
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]
    n = len(data)
    full = n - n % 8
    for i in range(0, full, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v[3] ^= m
        v = sipround(v)
        v[0] ^= m
    tail = data[full:]
    b = (n & 0xFF) << 56
    for i, byte in enumerate(tail):
        b |= byte << (8 * i)
    v[3] ^= b
    v = sipround(v)
    v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(3):
        v = sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def hsiphash_u32(x, key):
    return siphash13(key[0], key[1], (x & 0xFFFFFFFF).to_bytes(4, "little")) & 0xFFFFFFFF


def fold(addr):
    a = ipaddress.ip_address(addr)
    if a.version == 4:
        return int(a)
    o = a.packed
    w = [int.from_bytes(o[i:i + 4], "big") for i in range(0, 16, 4)]
    return w[0] ^ w[1] ^ w[2] ^ w[3]


def hash_32(v, bits):
    return ((v * 0x61C88647) & 0xFFFFFFFF) >> (32 - bits)


# ---- sh (ipvs.md 1.4) ----
def sh_table(weights, bits):
    t = 1 << bits
    table, p, cnt = [], 0, 0
    for _ in range(t):
        table.append(p)
        cnt += 1
        if cnt >= weights[p]:
            p = (p + 1) % len(weights)
            cnt = 0
    return table


def sh_bucket(src, port, bits):
    return hash_32((port + fold(src)) & 0xFFFFFFFF, bits)


# ---- mh (ipvs.md 1.5) ----
PRIMES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]
H1 = (2654435761, 2654435761)
H2 = (2654446892, 2654446892)


def mh_hashkey(addr, port, key, offset):
    return hsiphash_u32((offset + port + fold(addr)) & 0xFFFFFFFF, key)


def gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def fls(x):
    return x.bit_length()


def mh_table(dests, m):
    """dests: list of (addr, port, last_weight) in IPVS list order."""
    index = PRIMES.index(m) + 8
    tab_bits = index // 2
    g = 0
    for (_, _, lw) in dests:
        if lw > 0:
            g = gcd(lw, g) if g else lw
    if g < 1:
        return [None] * m
    mw = max(lw for (_, _, lw) in dests) // g
    rshift = max(0, fls(mw) - tab_bits)
    setup = []
    for (a, p, lw) in dests:
        off = mh_hashkey(a, p, H1, 0) % m
        skip = mh_hashkey(a, p, H2, 0) % (m - 1) + 1
        t = (lw // g) >> rshift
        if t == 0:
            t = 1 if lw != 0 else 0
        setup.append([off, skip, t])
    table = [None] * m
    n = 0
    while True:
        for i, s in enumerate(setup):
            for _ in range(s[2]):
                while table[s[0]] is not None:
                    s[0] = (s[0] + s[1]) % m
                table[s[0]] = i
                n += 1
                if n == m:
                    return table


def mh_slot(src, port, m, offset=0):
    return mh_hashkey(src, port, H1, offset) % m


# ---- lbkit maglev: stable hashes (lb-sched maglev.rs docs) ----
ID_KEY1 = (0x6C62_6B69_742D_6D61, 0x676C_6576_2D6F_6666)
ID_KEY2 = (0x6C62_6B69_742D_6D61, 0x676C_6576_2D73_6B70)
K0, K1, K2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def addr16(addr):
    a = ipaddress.ip_address(addr)
    if a.version == 4:
        return ipaddress.IPv6Address("::ffff:" + str(a)).packed
    return a.packed


def identity_hashes(addr, port):
    data = addr16(addr) + port.to_bytes(2, "big")
    return siphash13(*ID_KEY1, data), siphash13(*ID_KEY2, data)


def fold_mul(a, b):
    r = a * b
    return (r & M64) ^ (r >> 64)


def words(addr):
    a = ipaddress.ip_address(addr)
    x = int(a)
    if a.version == 4:
        return 0, x
    return x >> 64, x & M64


def flow_hash(proto, src, sport, dst, dport):
    s_hi, s_lo = words(src)
    d_hi, d_lo = words(dst)
    ports = (sport << 32) | (dport << 16) | proto
    a = fold_mul(s_lo ^ K0, d_lo ^ K1)
    b = fold_mul(s_hi ^ (((d_hi << 32) | (d_hi >> 32)) & M64) ^ K2, ports ^ K0)
    return fold_mul(a ^ K1, b ^ K2)


if __name__ == "__main__":
    print("# sh, bits 8, weights [3,1,2] (list order A,B,C): table")
    print(sh_table([3, 1, 2], 8)[:16], "...")
    for src, port in [("10.0.0.1", 0), ("192.168.1.77", 0), ("10.0.0.1", 40000), ("2001:db8::1", 0)]:
        print(f"sh bucket bits=8 src={src} port={port}:", sh_bucket(src, port, 8))
    print("sh bucket bits=4 src=10.0.0.1:", sh_bucket("10.0.0.1", 0, 4))
    for dst in ["192.0.2.10", "198.51.100.7", "2001:db8::80"]:
        print(f"dh bucket dst={dst}:", hash_32(fold(dst), 8))
    dests = [("10.0.0.3", 80, 1), ("10.0.0.2", 80, 2), ("10.0.0.1", 80, 1)]
    t = mh_table(dests, 251)
    print("mh M=251 dests (list order)", dests)
    print("mh table:", "".join("ABC"[i] if i is not None else "." for i in t))
    print("mh counts:", [t.count(i) for i in range(3)])
    for src in ["192.0.2.1", "192.0.2.2", "203.0.113.9", "2001:db8::7"]:
        print(f"mh slot M=251 src={src}:", mh_slot(src, 0, 251))
    print("mh slot M=251 src=192.0.2.1 port=5555:", mh_slot("192.0.2.1", 5555, 251))
    print("mh fallback probe slots src=192.0.2.1 offsets 0..4 from ihash:",
          [mh_slot("192.0.2.1", 0, 251, (k + mh_slot("192.0.2.1", 0, 251)) % 251) for k in range(5)])
    print("mh offset/skip 10.0.0.1:80 M=4093:", mh_hashkey("10.0.0.1", 80, H1, 0) % 4093,
          mh_hashkey("10.0.0.1", 80, H2, 0) % 4092 + 1)
    print("identity 10.0.0.1:80:", [hex(h) for h in identity_hashes("10.0.0.1", 80)])
    print("identity [2001:db8::1]:443:", [hex(h) for h in identity_hashes("2001:db8::1", 443)])
    print("flow_hash tcp 192.0.2.1:40000->198.51.100.1:80:", hex(flow_hash(6, "192.0.2.1", 40000, "198.51.100.1", 80)))
    print("flow_hash udp [2001:db8::1]:53->[2001:db8::2]:53:", hex(flow_hash(17, "2001:db8::1", 53, "2001:db8::2", 53)))
