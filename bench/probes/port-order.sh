#!/usr/bin/env bash
# The kernel's own cost of each step of a bridge port and of a DEL, by order, at the node's B
# (run by bench/probes/node.sh inside the node namespace; needs tb-br0, i.e. MODE bridge):
# each step is one `ip` under `strace -T`, its netlink send + receive times summed; median of ROUNDS.
#   bench/probes/node.sh bridge 1000 /tmp/bin "bench/probes/port-order.sh 15"
set -euo pipefail
: "${CONF:?run me through bench/probes/node.sh}" "${CTR:?}" "${TDIR:?}"
ROUNDS=${1:-15}
OUT=$(mktemp -d /tmp/tb-probe-order.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
step() {  # step LABEL ip-args...: append this step's netlink time (ms) to $OUT/LABEL
  strace -T -e trace=sendmsg,recvmsg -o "$OUT/trace" "${@:2}" >/dev/null
  awk -F'<' '/sendmsg|recvmsg/ {gsub(">", "", $NF); s += $NF} END {printf "%.3f\n", s * 1000}' "$OUT/trace" >>"$OUT/$1"
}
IN_CTR=(nsenter --net="/run/netns/$CTR")
# B = 0: no tether ADD made the bridge; make it as tether does (up, with the gateway address).
if ! ip link show tb-br0 >/dev/null 2>&1; then
  ip -batch - <<<$'link add tb-br0 type bridge\naddress add 198.18.0.1/16 dev tb-br0\nlink set tb-br0 up'
fi
# `ip -o link show dev lo` begins with iproute2's own RTM_NEWLINK probe, which takes the rtnl lock:
# its time is how long an rtnl request waits right then (R-after-* against R-idle, after a pause).
for ((r = 0; r < ROUNDS; r++)); do
  # A: tether's order: created enslaved and up, in one request.
  step A1-add-enslaved-up ip link add tbx master tb-br0 up type veth peer name eth0 netns "$CTR"
  step A2-ctr-addr "${IN_CTR[@]}" ip addr add 198.18.250.2/16 dev eth0
  step A3-ctr-up "${IN_CTR[@]}" ip link set eth0 up
  step R-after-ctr-up ip -o link show dev lo
  step D1-del-node-end ip link del tbx
  # B: created, up, then enslaved.
  step B1-add-plain ip link add tbx type veth peer name eth0 netns "$CTR"
  step B2-up ip link set tbx up
  step B3-enslave-after-up ip link set tbx master tb-br0
  step R-after-enslave ip -o link show dev lo
  step D2-del-ctr-end-from-ctr "${IN_CTR[@]}" ip link del eth0
  # C: created, enslaved while down, the container side configured, then up.
  step C1-add-plain ip link add tbx type veth peer name eth0 netns "$CTR"
  step C2-enslave-down ip link set tbx master tb-br0
  step C3-ctr-addr-up "${IN_CTR[@]}" ip -batch - <<<$'addr add 198.18.250.2/16 dev eth0\nlink set eth0 up'
  step C4-up-last ip link set tbx up
  step R-after-up-last ip -o link show dev lo
  step D3-del-node-end-2 ip link del tbx
  sleep 0.3
  step R-idle ip -o link show dev lo
done
for f in "$OUT"/[A-Z]*; do
  sort -n "$f" | awk -v n="$(basename "$f")" '{v[NR] = $1} END {printf "%-28s median %7.2f ms  (min %.2f, max %.2f, n %d)\n", n, v[int((NR + 1) / 2)], v[1], v[NR], NR}'
done
