#!/usr/bin/env bash
# director over AF_XDP on scripts/director-netns.sh's namespaces (issue 15, "Measure"). A manual
# benchmark (root; not run by CI). Needs iproute2, bridge, ethtool, python3, taskset, and for the
# HTTP part wrk and nginx (apt-get install wrk nginx-light); tshark, if present, checks the
# generator's frames on the bridge once.
#
#   sudo scripts/bench-director.sh [RUNS] [FRAMES] [FLOWS]     (default 5, 1000000, 1000)
#
# Environment: DIRECTOR, REPLAY (the binaries; default target/release/...), CONNS (wrk's
# connection counts, default "16 64"), SECS (wrk's duration, default 5), ONLY=flood|http (one
# part only), NAME (namespace prefix, default lbkbd). Generator pinned to vCPU 0, director to
# vCPU 1.
#
# 1. ACK flood. scripts/make_director_flood.py makes FLOWS SYNs and FRAMES ACKs of the same flows,
#    10.8.0.2:1024.. -> 10.8.0.100:80, 64-byte frames. `replay --mode dr --backend
#    10.8.0.100,mac=<director's MAC> --iface eth0` sends them from the client over AF_XDP, the SYNs
#    at 20,000 pps (the director creates the connections), then the ACKs --topspeed (replay's own
#    pipeline takes them with --sloppy-tcp; the director has no --sloppy-tcp). XDP_DROP on both
#    servers' eth0 (scripts/xdp_drop.py); delivered = the bridge ports s1 + s2's TX packets over
#    the ACK phase, divided by the generator's elapsed time. The bridge has static FDB entries for
#    every host (nothing flooded) and the director permanent neighbours for the servers (they
#    answer no ARP behind XDP_DROP). Alternating with the kernel's own DR forwarding of the same
#    frames: ip_forward=1, the VIP off the director's eth0, 10.8.0.100/32 via 10.7.0.11,
#    send_redirects=0 (all, eth0), the client's accept_redirects=0; "kernel" as it comes (the
#    director namespace's receive work runs in softirq on the sending vCPU 0, beside the
#    generator), "kernel-rps" with RPS steering it to vCPU 1 (where lbkit's director runs).
# 2. HTTP connections per second: nginx (worker_processes 1, a 3-byte file) in each server,
#    `wrk -t 1 -c N -d SECS -H 'Connection: close'` from the client, alternating straight to
#    http://10.7.0.11/ (the client gets a route 10.7.0.0/24 dev eth0; the DR servers have the
#    client's network on-link) and through the director at http://10.8.0.100/, DR; then NAT on
#    namespaces brought up for NAT. The client's ip_local_port_range is 1024-65000.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
frames=${2:-1000000}
flows=${3:-1000}
DIRECTOR=${DIRECTOR:-target/release/director}
REPLAY=${REPLAY:-target/release/replay}
CONNS=${CONNS:-16 64}
SECS=${SECS:-5}
ONLY=${ONLY:-}
P=${NAME:-lbkbd}
VIP=10.8.0.100
DIRECTOR=$(realpath "$DIRECTOR")
REPLAY=$(realpath "$REPLAY")
tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx's worker (www-data) reads its files here
res=$tmp/results.tsv
: > "$res"
bg_pids=()
dir_pid=

cleanup() {
  [ -n "$dir_pid" ] && kill -INT "$dir_pid" 2>/dev/null || true
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/director-netns.sh down "$P" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

log() { echo "# $*" >&2; }
tx() { ip -n "$P-br" -s -j link show "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["packets"])'; }
veth_drops() { ip netns exec "$P-dir" ethtool -S eth0 | awk '/rx_queue_0_drops/ {print $2}'; }
backlog_drops() { python3 -c 'print(sum(int(l.split()[1], 16) for l in open("/proc/net/softnet_stat")))'; }

up() { # up dr|nat: the namespaces without the python servers, nothing flooded on the bridge
  scripts/director-netns.sh down "$P" >/dev/null 2>&1 || true
  NO_SERVERS=1 scripts/director-netns.sh up "$P" "$1"
  for h in cl dir s1 s2; do
    local m
    m=$(ip netns exec "$P-$h" cat /sys/class/net/eth0/address)
    bridge -n "$P-br" fdb replace "$m" dev "$h" master static
  done
  for i in 1 2; do
    ip -n "$P-dir" neigh replace "10.7.0.1$i" dev eth0 nud permanent \
      lladdr "$(ip netns exec "$P-s$i" cat /sys/class/net/eth0/address)"
  done
  dmac=$(ip netns exec "$P-dir" cat /sys/class/net/eth0/address)
}

start_director() { # start_director MODE: pinned to vCPU 1, waits for "ready" (10 s at most)
  ip netns exec "$P-dir" taskset -c 1 "$DIRECTOR" --iface eth0 --mode "$1" --sched rr \
    --vip "$VIP:80" --backend 10.7.0.11 --backend 10.7.0.12 --json \
    > "$tmp/director.json" 2> "$tmp/director.err" &
  dir_pid=$!
  for _ in $(seq 100); do grep -q ready "$tmp/director.err" 2>/dev/null && return 0; sleep 0.1; done
  cat "$tmp/director.err" >&2
  echo "director did not get ready" >&2
  exit 1
}

stop_director() { # SIGINT, 10 s at most, then SIGKILL; the JSON report stays in director.json
  kill -INT "$dir_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$dir_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$dir_pid" 2>/dev/null || true
  wait "$dir_pid" 2>/dev/null || true
  dir_pid=
}

gen() { # gen FILE ARGS...: replay from the client to the director's MAC, pinned to vCPU 0
  local f=$1
  shift
  ip netns exec "$P-cl" timeout 120 taskset -c 0 "$REPLAY" "$f" --mode dr --vip "$VIP:80" \
    --backend "$VIP,mac=$dmac" --iface eth0 --json "$@"
}

kernel_fwd() { # kernel_fwd on|rps|off: the director namespace as a kernel DR forwarder (rps: its
  # receive processing steered to vCPU 1 with RPS, as the director is pinned there), or as set up
  if [ "$1" != off ]; then
    [ "$1" = rps ] && ip netns exec "$P-dir" sh -c 'echo 2 > /sys/class/net/eth0/queues/rx-0/rps_cpus'

    ip -n "$P-dir" addr del "$VIP/32" dev eth0
    ip netns exec "$P-dir" sysctl -qw net.ipv4.conf.all.send_redirects=0
    ip netns exec "$P-dir" sysctl -qw net.ipv4.conf.eth0.send_redirects=0
    ip -n "$P-dir" route add "$VIP/32" via 10.7.0.11
    ip netns exec "$P-dir" sysctl -qw net.ipv4.ip_forward=1
  else
    ip netns exec "$P-dir" sh -c 'echo 0 > /sys/class/net/eth0/queues/rx-0/rps_cpus'
    ip netns exec "$P-dir" sysctl -qw net.ipv4.ip_forward=0
    ip -n "$P-dir" route del "$VIP/32" via 10.7.0.11
    ip -n "$P-dir" addr add "$VIP/32" dev eth0
  fi
}

flood_run() { # flood_run lbkit|kernel|kernel-rps RUN
  local v=$1 run=$2
  case "$v" in
    lbkit) start_director dr ;;
    kernel) kernel_fwd on ;;
    kernel-rps) kernel_fwd rps ;;
  esac
  if [ "$run" = 1 ] && [ "$v" = lbkit ] && command -v tshark >/dev/null; then
    # What the client sends: its MAC to the director's, the rest as the capture has it.
    ip netns exec "$P-br" timeout 10 tshark -q -i cl -c 3 -f tcp -w "$tmp/check.pcap" >/dev/null 2>&1 &
    local tpid=$!
    sleep 2
  fi
  gen "$tmp/syn.pcap" --pps 20000 > /dev/null
  if [ -n "${tpid:-}" ]; then
    wait "$tpid" || true
    log "frames on the bridge from the client (client MAC $(ip netns exec "$P-cl" cat /sys/class/net/eth0/address), director MAC $dmac):"
    tshark -r "$tmp/check.pcap" -T fields -e eth.src -e eth.dst -e ip.src -e ip.dst -e ip.ttl \
      -e tcp.srcport -e tcp.dstport -e tcp.flags.str 2>/dev/null | sed 's/^/#   /' >&2 || true
  fi
  sleep 0.3
  local b1 b2 vd bd
  b1=$(tx s1); b2=$(tx s2); vd=$(veth_drops); bd=$(backlog_drops)
  gen "$tmp/ack.pcap" --topspeed --sloppy-tcp > "$tmp/gen.json"
  sleep 0.5
  local d1 d2
  d1=$(( $(tx s1) - b1 )); d2=$(( $(tx s2) - b2 ))
  vd=$(( $(veth_drops) - vd )); bd=$(( $(backlog_drops) - bd ))
  if [ "$v" = lbkit ]; then stop_director; cp "$tmp/director.json" "$tmp/director-flood-$run.json"; else kernel_fwd off; fi
  python3 - "$v" "$run" "$d1" "$d2" "$vd" "$bd" "$tmp/gen.json" "$tmp/director.json" >> "$res" <<'EOF'
import json, sys
v, run, d1, d2, vd, bd, genf, dirf = sys.argv[1:]
g = json.load(open(genf))
el = g["elapsed_s"]
sent = g["packets"]["forwarded"]
extra = f"sent {sent} at {sent / el / 1e6:.3f} Mpps; s1 {d1} s2 {d2}; veth rx-ring drops {vd}; backlog drops {bd}"
if v == "lbkit":
    d = json.load(open(dirf))
    p = d["packets"]
    extra += f"; director read {p['read']} forwarded {p['forwarded']} dropped {sum(p['dropped'].values())} {p['dropped']}"
print(f"flood\t{v}\t-\t{run}\t{(int(d1) + int(d2)) / el / 1e6:.3f}\t{extra}")
EOF
  tail -1 "$res" >&2
}

flood() {
  log "ACK flood: $frames ACKs of $flows flows, $runs runs each"
  python3 scripts/make_director_flood.py syn "$tmp/syn.pcap" "$flows" >/dev/null
  python3 scripts/make_director_flood.py ack "$frames" "$tmp/ack.pcap" "$flows" >/dev/null
  up dr
  ip netns exec "$P-cl" sysctl -qw net.ipv4.conf.all.accept_redirects=0
  ip netns exec "$P-cl" sysctl -qw net.ipv4.conf.eth0.accept_redirects=0
  for i in 1 2; do
    ip netns exec "$P-s$i" python3 scripts/xdp_drop.py eth0 > "$tmp/drop$i.out" &
    bg_pids+=($!)
  done
  for i in 1 2; do
    for _ in $(seq 50); do grep -q attached "$tmp/drop$i.out" 2>/dev/null && break; sleep 0.1; done
  done
  for run in $(seq "$runs"); do
    # Alternate which goes first.
    if [ $((run % 2)) = 1 ]; then order="lbkit kernel kernel-rps"; else order="kernel-rps kernel lbkit"; fi
    for v in $order; do flood_run "$v" "$run"; done
  done
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bg_pids=()
}

start_nginx() {
  for i in 1 2; do
    local d=$tmp/nginx-s$i
    mkdir -p "$d/www" "$d/tmp"
    echo "s$i" > "$d/www/index.html"
    cat > "$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
  uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
  server { listen 80 backlog=4096; root $d/www; }
}
EOF
    ip netns exec "$P-s$i" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" &
    bg_pids+=($!)
    for _ in $(seq 50); do
      ip netns exec "$P-s$i" python3 -c "import socket; socket.create_connection(('127.0.0.1', 80), 0.2)" \
        2>/dev/null && break
      sleep 0.1
    done
  done
}

stop_nginx() {
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bg_pids=()
}

wrk_run() { # wrk_run TEST VARIANT N RUN URL
  local out
  out=$(ip netns exec "$P-cl" timeout $((SECS + 30)) taskset -c 0 wrk -t 1 -c "$3" -d "${SECS}s" \
    -H 'Connection: close' "$5" 2>&1) || true
  local rps errs
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  errs=$(echo "$out" | grep -E 'Socket errors|Non-2xx' | tr -s ' ' | tr '\n' ';' || true)
  printf 'http\t%s\t%s\t%s\t%s\t%s\n' "$2" "$3" "$4" "${rps:-0}" "$(echo "$out" | awk '/requests in/ {print $1, "requests"}') ${errs}" >> "$res"
  tail -1 "$res" >&2
}

http() {
  command -v wrk >/dev/null && command -v nginx >/dev/null || {
    log "wrk or nginx missing (apt-get install wrk nginx-light): HTTP part skipped"
    return
  }
  for mode in dr nat; do
    log "HTTP: $mode, N = $CONNS, $runs runs, ${SECS}s each"
    up "$mode"
    ip netns exec "$P-cl" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
    [ "$mode" = dr ] && ip -n "$P-cl" route add 10.7.0.0/24 dev eth0
    start_nginx
    start_director "$mode"
    ip netns exec "$P-cl" timeout 5 curl -s "http://$VIP/" >&2 || log "curl through the director failed"
    [ "$mode" = dr ] && { ip netns exec "$P-cl" timeout 5 curl -s http://10.7.0.11/ >&2 || log "curl to 10.7.0.11 failed"; }
    for run in $(seq "$runs"); do
      for n in $CONNS; do
        if [ "$mode" = dr ]; then
          if [ $((run % 2)) = 1 ]; then order="direct director"; else order="director direct"; fi
        else
          order=director
        fi
        for v in $order; do
          if [ "$v" = direct ]; then wrk_run http direct "$n" "$run" http://10.7.0.11/
          else wrk_run http "lbkit-$mode" "$n" "$run" "http://$VIP/"; fi
        done
      done
    done
    stop_director
    cp "$tmp/director.json" "$tmp/director-http-$mode.json"
    python3 - "$tmp/director.json" "$mode" >&2 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
p, c = d["packets"], d["connections"]
print(f"# director ({sys.argv[2]}) after the HTTP runs: read {p['read']} forwarded {p['forwarded']} "
      f"dropped {p['dropped']}; connections created {c['created']}; per server "
      + ", ".join(f"{x['address']} {x['connections']}" for x in d["destinations"]))
EOF
    stop_nginx
  done
}

[ "$ONLY" = http ] || flood
[ "$ONLY" = flood ] || http

echo
echo "| test | variant | N | runs | median | min–max |"
echo "|---|---|---|---|---|---|"
python3 - "$res" <<'EOF'
import statistics, sys
import re
rows, sent = {}, {}
for line in open(sys.argv[1]):
    t, v, n, run, val, extra = line.rstrip("\n").split("\t")
    rows.setdefault((t, v, n), []).append(float(val))
    m = re.search(r"at ([0-9.]+) Mpps", extra)
    if m:
        sent.setdefault((t, v, n), []).append(float(m.group(1)))
for k, vals in rows.items():
    t, v, n = k
    unit = "Mpps at the servers" if t == "flood" else "conn/s"
    fmt = (lambda x: f"{x:.3f}") if t == "flood" else (lambda x: f"{x:.0f}")
    note = f" (generator sent: median {statistics.median(sent[k]):.3f} Mpps)" if k in sent else ""
    print(f"| {t} | {v} | {n} | {len(vals)} | {fmt(statistics.median(vals))} {unit}{note} | {fmt(min(vals))}–{fmt(max(vals))} |")
EOF
echo
echo "Runs:"
cat "$res"
