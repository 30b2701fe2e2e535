#!/usr/bin/env bash
# DEL against its floor (run by bench/probes/node.sh inside the node namespace): medians over ROUNDS,
# interleaved, of a tether DEL with ipMasq, a tether DEL without it (a second network), and
# `ip link del` of a node end tether made.
#   bench/probes/node.sh bridge 1 /tmp/bin "bench/probes/del-cost.sh 30"
set -euo pipefail
source "$(dirname "$0")/timing.sh"
ROUNDS=${1:-30}
jq -c '.ipMasq = false | .name = "tbplain" | .bridge = "tb-br1" | .ipam.ranges = [[{"subnet": "198.19.0.0/16"}]]' \
  "$OUT/conf" >"$OUT/plain"
# shellcheck disable=SC2046  # timed prints a command line
for ((r = 0; r < ROUNDS; r++)); do
  P ADD "m$r" "$OUT/conf" >"$OUT/r"
  prev_for "$OUT/conf"
  P DEL "m$r" "$OUT/prev" $(timed masq)
  P ADD "p$r" "$OUT/plain" >"$OUT/r"
  prev_for "$OUT/plain"
  P DEL "p$r" "$OUT/prev" $(timed plain)
  P ADD "f$r" "$OUT/conf" >"$OUT/r"
  prev_for "$OUT/conf"
  $(timed floor) ip link del "$(node_end)"
  P DEL "f$r" "$OUT/prev"
done
for l in masq plain floor; do medians "$l" DEL; done
