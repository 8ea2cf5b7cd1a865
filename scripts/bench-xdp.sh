#!/usr/bin/env bash
# replay over AF_XDP against tcpreplay --topspeed on the same veth pair and the same capture,
# into the peer's kernel stack and into an XDP_DROP program on the peer. Needs root, iproute2,
# tcpreplay (tcpreplay, tcprewrite), python3. Prints a Markdown table for BENCHMARKS.md.
#
#   scripts/bench-xdp.sh [FRAMES] [RUNS]      (default 1,000,000 frames, 3 runs each)
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${1:-1000000}
runs=${2:-3}
name=lbkbench
tmp=$(mktemp -d)
cleanup() {
  [ -n "${drop_pid:-}" ] && kill "$drop_pid" 2>/dev/null || true
  scripts/netns.sh down "$name" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p lb-replay
python3 scripts/make_flood.py "$frames" "$tmp/in.pcap" >/dev/null
scripts/netns.sh down "$name" >/dev/null 2>&1 || true
rs_mac=$(scripts/netns.sh up "$name")
d_mac=$(cat "/sys/class/net/$name-d/address")
# tcpreplay sends the capture as it is: give it the MACs replay's output has, so the peer's
# kernel treats both the same.
tcprewrite --enet-dmac="$rs_mac" --enet-smac="$d_mac" -i "$tmp/in.pcap" -o "$tmp/tcpreplay.pcap"
rx() { ip netns exec "$name-rs" cat "/sys/class/net/$name-r/statistics/rx_packets"; }

echo "| peer | tool | run | frames | pps | peer received |"
echo "|---|---|---|---|---|---|"
for peer in stack xdp_drop; do
  if [ "$peer" = xdp_drop ]; then
    ip netns exec "$name-rs" python3 scripts/xdp_drop.py "$name-r" > "$tmp/drop.out" &
    drop_pid=$!
    for _ in $(seq 50); do grep -q attached "$tmp/drop.out" 2>/dev/null && break; sleep 0.1; done
  fi
  for run in $(seq "$runs"); do
    before=$(rx)
    pps=$(./target/release/replay "$tmp/in.pcap" --mode dr --vip 198.51.100.10:80 --backend 10.77.0.2 \
      --iface "$name-d" --topspeed --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(int(r["packets"]["forwarded"]/r["elapsed_s"]))')
    sleep 0.5
    echo "| $peer | replay (AF_XDP, whole pipeline) | $run | $frames | $pps | $(( $(rx) - before )) |"
    before=$(rx)
    pps=$(tcpreplay --topspeed -i "$name-d" "$tmp/tcpreplay.pcap" 2>&1 | sed -n 's/.*Rated: .* \([0-9.]*\) pps.*/\1/p' | head -1)
    sleep 0.5
    echo "| $peer | tcpreplay --topspeed | $run | $frames | ${pps%.*} | $(( $(rx) - before )) |"
  done
  if [ "$peer" = xdp_drop ]; then kill "$drop_pid"; wait "$drop_pid" 2>/dev/null || true; drop_pid=; fi
done
