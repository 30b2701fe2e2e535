#!/usr/bin/env bash
# Does an ADD cost more right after a DEL than after a pause? (run by bench/probes/node.sh inside the
# node namespace): medians over ROUNDS of tether ADD elapsed / CPU, right after a DEL and after 1 s idle.
#   bench/probes/node.sh ptp 1000 /tmp/bin "bench/probes/after-del.sh 15"
set -euo pipefail
source "$(dirname "$0")/timing.sh"
ROUNDS=${1:-15}
for ((r = 0; r < ROUNDS; r++)); do
  sleep 1
  add idle "i$r"
  del "i$r"
  add after-del "d$r"
  del "d$r"
done
medians idle
medians after-del
