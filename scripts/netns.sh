#!/usr/bin/env bash
# Sets up (and tears down) a director -> real server link for trying replay over AF_XDP by hand,
# and for replay's AF_XDP tests. Needs root and iproute2.
#
#   scripts/netns.sh up NAME [QUEUES]   veth NAME-d (here: replay --iface NAME-d) <-> NAME-r in
#                                        namespace NAME-rs, the real server 10.77.0.2/24; prints
#                                        the real server's MAC
#   scripts/netns.sh vip NAME ADDR...   the real server owns ADDR on lo (DR, TUN)
#   scripts/netns.sh down NAME          removes the namespace and both veth ends
#
# The real server answers clients through a default route to 10.77.0.1 (this side) with a static
# neighbour entry, so its SYN-ACKs leave NAME-r at once (capture them there, in the namespace:
# a capture on NAME-d does not see AF_XDP copy-mode transmits). This side has a permanent
# neighbour entry for 10.77.0.2, which replay reads for backends given without mac=.
set -euo pipefail
cmd=${1:?usage: netns.sh up|vip|down NAME ...}
name=${2:?usage: netns.sh up|vip|down NAME ...}
ns="$name-rs" d="$name-d" r="$name-r"
case "$cmd" in
  up)
    q=${3:-1}
    ip netns add "$ns"
    ip link add "$d" numtxqueues "$q" numrxqueues "$q" type veth peer name "$r" numtxqueues "$q" numrxqueues "$q"
    ip link set "$r" netns "$ns"
    sysctl -qw "net.ipv6.conf.$d.disable_ipv6=1" || true
    ip link set "$d" up
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$r.disable_ipv6=1" || true
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
    ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$r.rp_filter=0"
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add 10.77.0.2/24 dev "$r"
    ip netns exec "$ns" ip link set "$r" up
    dmac=$(cat "/sys/class/net/$d/address")
    rmac=$(ip netns exec "$ns" cat "/sys/class/net/$r/address")
    ip netns exec "$ns" ip neigh replace 10.77.0.1 lladdr "$dmac" dev "$r" nud permanent
    ip netns exec "$ns" ip route add default via 10.77.0.1 dev "$r"
    ip neigh replace 10.77.0.2 lladdr "$rmac" dev "$d" nud permanent
    echo "$rmac"
    ;;
  vip)
    shift 2
    for a in "$@"; do ip netns exec "$ns" ip addr add "$a/32" dev lo; done
    ;;
  down)
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$d" 2>/dev/null || true
    ;;
  *)
    echo "usage: netns.sh up|vip|down NAME ..." >&2
    exit 2
    ;;
esac
