#!/usr/bin/env bash
# A one-armed LVS setup in network namespaces, for trying `director` by hand and for its tests.
# Needs root, iproute2, ethtool and python3.
#
#   scripts/director-netns.sh up P dr|nat   namespaces P-br (a bridge), P-cl (the client),
#                                           P-dir (the director), P-s1 and P-s2 (real servers,
#                                           each serving its name over HTTP on port 80)
#   scripts/director-netns.sh down P        removes them all (and the servers with them)
#
# DIRECTOR_QUEUES=N (default 1): the director's veth (both ends) gets N RX and TX queues, for
# `director --workers N`.
#
# One L2 segment (the bridge); every host's interface is eth0:
#   client   10.8.0.2/24, default route via 10.8.0.1 (the director)
#   director 10.7.0.1/24 and 10.8.0.1/24, and the VIP 10.8.0.100/32 (so its kernel answers ARP
#            for it); net.ipv4.ip_forward=0: whatever reaches a real server went through lbkit
#   s1, s2   10.7.0.11/24, 10.7.0.12/24
#     dr:    the VIP on lo, arp_ignore=1 / arp_announce=2, the client's network on-link (they
#            answer the client directly)
#     nat:   default route via 10.7.0.1 (their replies pass the director)
# veth leaves TCP checksums for the receiver to finish (offload); AF_XDP sees them so. The
# client and the servers turn transmit checksum offload off (`ethtool -K eth0 tx off`), as a real
# NIC puts full checksums on the wire.
#
# NO_SERVERS=1 (environment) leaves the servers out: no python HTTP servers, nothing listening
# (scripts/bench-director.sh puts its own load there); everything else is the same.
#
# Then, for example:
#   ip netns exec P-dir director --iface eth0 --mode dr --sched rr --vip 10.8.0.100:80 \
#       --backend 10.7.0.11 --backend 10.7.0.12 &
#   ip netns exec P-cl curl http://10.8.0.100/
set -euo pipefail
usage="usage: director-netns.sh up P dr|nat | down P"
cmd=${1:?$usage}
p=${2:?$usage}
VIP=10.8.0.100
case "$cmd" in
  up)
    mode=${3:?$usage}
    case "$mode" in dr|nat) ;; *) echo "$usage" >&2; exit 2 ;; esac
    ip netns add "$p-br"
    ip -n "$p-br" link add br0 type bridge
    ip -n "$p-br" link set br0 up
    for h in cl dir s1 s2; do
      ip netns add "$p-$h"
      ip -n "$p-$h" link set lo up
      q=1
      if [ "$h" = dir ]; then q=${DIRECTOR_QUEUES:-1}; fi
      ip link add eth0 netns "$p-$h" numtxqueues "$q" numrxqueues "$q" type veth \
        peer name "$h" netns "$p-br" numtxqueues "$q" numrxqueues "$q"
      ip -n "$p-br" link set "$h" master br0 up
      ip netns exec "$p-$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
      ip netns exec "$p-$h" sysctl -qw net.ipv4.conf.all.rp_filter=0
      ip netns exec "$p-$h" sysctl -qw net.ipv4.conf.eth0.rp_filter=0
      ip -n "$p-$h" link set eth0 up
    done
    for h in cl s1 s2; do ip netns exec "$p-$h" ethtool -K eth0 tx off >/dev/null; done
    ip netns exec "$p-dir" sysctl -qw net.ipv4.ip_forward=0
    ip -n "$p-dir" addr add 10.7.0.1/24 dev eth0
    ip -n "$p-dir" addr add 10.8.0.1/24 dev eth0
    ip -n "$p-dir" addr add "$VIP/32" dev eth0
    ip -n "$p-cl" addr add 10.8.0.2/24 dev eth0
    ip -n "$p-cl" route add default via 10.8.0.1
    for i in 1 2; do
      s="$p-s$i"
      ip -n "$s" addr add "10.7.0.1$i/24" dev eth0
      if [ "$mode" = dr ]; then
        ip -n "$s" addr add "$VIP/32" dev lo
        for k in all eth0; do
          ip netns exec "$s" sysctl -qw "net.ipv4.conf.$k.arp_ignore=1"
          ip netns exec "$s" sysctl -qw "net.ipv4.conf.$k.arp_announce=2"
        done
        ip -n "$s" route add 10.8.0.0/24 dev eth0
      else
        ip -n "$s" route add default via 10.7.0.1
      fi
      [ -n "${NO_SERVERS:-}" ] && continue
      # The server: its name for /, and /big (8 MiB) for a long transfer; one log line per
      # request on stderr, in /tmp/$p-s$i.log.
      dir=$(mktemp -d "/tmp/$p-s$i.XXXX")
      echo "s$i" > "$dir/index.html"
      head -c 8388608 /dev/zero > "$dir/big"
      ip netns exec "$s" setsid python3 -m http.server 80 --bind 0.0.0.0 --directory "$dir" \
        >"/tmp/$p-s$i.log" 2>&1 < /dev/null &
    done
    # Wait until both servers listen.
    [ -n "${NO_SERVERS:-}" ] || for i in 1 2; do
      for _ in $(seq 50); do
        ip netns exec "$p-s$i" python3 -c "import socket; socket.create_connection(('127.0.0.1', 80), 0.2)" \
          2>/dev/null && break
        sleep 0.1
      done
    done
    ;;
  down)
    for h in cl dir s1 s2; do
      # The servers (and anything else) in the namespace go with it.
      for pid in $(ip netns pids "$p-$h" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
      ip netns del "$p-$h" 2>/dev/null || true
    done
    ip netns del "$p-br" 2>/dev/null || true
    rm -rf "/tmp/$p-s1".* "/tmp/$p-s2".*
    ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
