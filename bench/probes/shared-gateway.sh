#!/usr/bin/env bash
# What the gateway address shared by every ptp node end costs an ADD (run by bench/probes/node.sh
# inside a ptp node): N timed ADD+DEL cycles, then the gateway removed from every other node end
# (which leaves the node's local table one entry for it instead of one alias per node end), then
# N cycles again. The attachments lose their gateway: a scratch node only.
# It measures the reference's layout, which tether used until it held the gateway once on `lo`
# (plugin/src/ptp/gateway.rs): run it with a build of 71548ba or earlier.
#   bench/probes/node.sh ptp 1000 /tmp/bin "bench/probes/shared-gateway.sh 30"
set -euo pipefail
source "$(dirname "$0")/timing.sh"
[[ $MODE == ptp ]] || { echo "shared-gateway.sh: ptp nodes only (bridge ports carry no address)" >&2; exit 2; }
N=${1:-30}
cycles shared "$N"
medians shared
ip -4 -o addr show type veth | awk '{print "address del " $4 " dev " $2}' >"$OUT/batch"
[[ -s $OUT/batch ]] || { echo "shared-gateway.sh: no node end carries the gateway (a build that holds it on lo)" >&2; exit 2; }
echo "removing the gateway from $(wc -l <"$OUT/batch") node ends"
ip -batch "$OUT/batch"
cycles unshared "$N"
medians unshared
