#!/usr/bin/env bash
# DEL against its floor (run by bench/probes/node.sh inside the node namespace): medians over ROUNDS,
# interleaved, of a tether DEL with ipMasq, a tether DEL without it, and `ip link del` of the node end.
#   bench/probes/node.sh bridge 1 /tmp/bin "bench/probes/del-cost.sh 30"
set -euo pipefail
source "$(dirname "$0")/timing.sh"
ROUNDS=${1:-30}
jq -c '.ipMasq = false | .name = "tbplain" | .bridge = "tb-br1" | .ipam.ranges = [[{"subnet": "198.19.0.0/16"}]]' "$OUT/conf" >"$OUT/plain"
stat() { echo perf stat -x, -e duration_time,task-clock -o "$OUT/$1.$RANDOM$RANDOM"; }
prev_of() { jq -c --slurpfile p "$OUT/r" '.prevResult = $p[0]' "$1" >"$OUT/prev"; }
for ((r = 0; r < ROUNDS; r++)); do
  P ADD m$r "$OUT/conf" >"$OUT/r"; prev_of "$OUT/conf"
  P DEL m$r "$OUT/prev" $(stat del-masq)
  P ADD p$r "$OUT/plain" >"$OUT/r"; prev_of "$OUT/plain"
  P DEL p$r "$OUT/prev" $(stat del-plain)
  P ADD f$r "$OUT/conf" >"$OUT/r"; prev_of "$OUT/conf"
  node_end=$(jq -r '.interfaces[] | select(.sandbox == null and .name != "tb-br0") | .name' "$OUT/r")
  $(stat floor) ip link del "$node_end"
  P DEL f$r "$OUT/prev"
done
for l in del-masq del-plain floor; do medians "$l" | sed "s/^ADD/   /"; done
