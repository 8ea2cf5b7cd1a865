#!/usr/bin/env python3
"""Attaches an XDP program that drops every frame (`r0 = XDP_DROP; exit`) to an interface, and
keeps it attached until killed. No clang, no object file: the two instructions are loaded with
the bpf() syscall and attached with a BPF link (released when this process exits).

    ip netns exec NS python3 scripts/xdp_drop.py IFACE
"""
import ctypes
import os
import signal
import socket
import struct
import sys
import time

SYS_BPF = 321  # x86_64
BPF_PROG_LOAD, BPF_LINK_CREATE = 5, 28
BPF_PROG_TYPE_XDP, BPF_XDP = 6, 37

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, ctypes.c_uint(128))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r


ifindex = socket.if_nametoindex(sys.argv[1])
insns = bytes.fromhex("b700000001000000" "9500000000000000")  # r0 = 1 (XDP_DROP); exit
insns_buf = ctypes.create_string_buffer(insns, len(insns))
lic = ctypes.create_string_buffer(b"GPL")
attr = struct.pack(
    "=IIQQIIQII16sII",
    BPF_PROG_TYPE_XDP, 2, ctypes.addressof(insns_buf), ctypes.addressof(lic),
    0, 0, 0, 0, 0, b"lbkit_drop", 0, BPF_XDP,
)
prog = bpf(BPF_PROG_LOAD, attr)
link = bpf(BPF_LINK_CREATE, struct.pack("=IIII", prog, ifindex, BPF_XDP, 0))
print("attached", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
