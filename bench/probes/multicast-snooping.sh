#!/usr/bin/env bash
# A bridge port's ADD and DEL, and the `ip link del` floor of a port, on the node as it is (run by
# bench/probes/node.sh inside the node namespace; medians over ROUNDS). Run it on a node whose
# bridge tether made (no multicast snooping) and on one whose bridge snoops, each fresh:
#   bench/probes/node.sh bridge 1000 /tmp/bin "bench/probes/multicast-snooping.sh 25"
#   BRIDGE_ARGS='mcast_snooping 1' bench/probes/node.sh bridge 1000 /tmp/bin "bench/probes/multicast-snooping.sh 25"
set -euo pipefail
source "$(dirname "$0")/timing.sh"
ROUNDS=${1:-25}
# shellcheck disable=SC2046  # timed prints a command line
for ((r = 0; r < ROUNDS; r++)); do
  add port-add "f$r"
  $(timed floor) ip link del "$(node_end)"
  del "f$r"
  P ADD "d$r" "$OUT/conf" >"$OUT/r"
  prev_for "$OUT/conf"
  P DEL "d$r" "$OUT/prev" $(timed port-del)
done
echo "tb-br0 mcast_snooping $(ip -j -d link show tb-br0 | jq '.[0].linkinfo.info_data.mcast_snooping'), $(ip -o link show master tb-br0 | wc -l) ports"
medians port-add ADD
medians port-del DEL
medians floor DEL
