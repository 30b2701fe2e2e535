#!/usr/bin/env bash
# A bridge port's ADD and DEL, and the `ip link del` floor of a port, on the node as it is (run by
# bench/probes/node.sh inside the node namespace; medians over ROUNDS). Run it on a node whose
# bridge tether made (no multicast snooping) and on one whose bridge snoops, each fresh:
#   bench/probes/node.sh bridge 1000 /tmp/bin "bench/probes/multicast-snooping.sh 25"
#   BRIDGE_ARGS='mcast_snooping 1' bench/probes/node.sh bridge 1000 /tmp/bin "bench/probes/multicast-snooping.sh 25"
set -euo pipefail
source "$(dirname "$0")/timing.sh"
ROUNDS=${1:-25}
stat() { echo perf stat -x, -e duration_time,task-clock -o "$OUT/$1.$RANDOM$RANDOM"; }
prev() { jq -c --slurpfile p "$OUT/r" '.prevResult = $p[0]' "$OUT/conf" >"$OUT/prev"; }
node_end() { jq -r '.interfaces[] | select(.sandbox == null and .name != "tb-br0") | .name' "$OUT/r"; }
for ((r = 0; r < ROUNDS; r++)); do
  P ADD "f$r" "$OUT/conf" $(stat ADD) >"$OUT/r"
  $(stat floor-DEL) ip link del "$(node_end)"
  prev
  P DEL "f$r" "$OUT/prev"
  P ADD "d$r" "$OUT/conf" >"$OUT/r"
  prev
  P DEL "d$r" "$OUT/prev" $(stat DEL)
done
echo "tb-br0 mcast_snooping $(ip -j -d link show tb-br0 | jq '.[0].linkinfo.info_data.mcast_snooping'), $(ip -o link show master tb-br0 | wc -l) ports"
for l in ADD DEL floor-DEL; do medians "$l" | sed "s/^ADD /    /"; done
