#!/usr/bin/env bash
# What the reference plugin's containers elsewhere on the machine cost a tether ADD (run by
# bench/probes/node.sh inside the node): N timed ADD+DEL cycles, then R containers attached by the
# reference plugin of the same mode (/usr/lib/cni, host-local, 198.19.0.0/16) on another node
# namespace, then N cycles again. The benchmark gives each side its own procfs for what this shows
# with MODE=bridge (bench/src/nsbox.rs, NsBox::view).
#   bench/probes/node.sh bridge 1000 /tmp/bin "bench/probes/beside-reference.sh 1000 30"
set -euo pipefail
source "$(dirname "$0")/timing.sh"
R=${1:-1000} N=${2:-30}
cycles alone "$N"
medians alone
ip netns add ref-node
REF="{\"cniVersion\": \"1.0.0\", \"name\": \"refnet\", \"type\": \"$MODE\", \"bridge\": \"rb0\", \"isGateway\": true,
  \"ipMasq\": true, \"ipam\": {\"type\": \"host-local\", \"dataDir\": \"$OUT/ref-ipam\",
  \"ranges\": [[{\"subnet\": \"198.19.0.0/16\"}]], \"routes\": [{\"dst\": \"0.0.0.0/0\"}]}}"
for ((k = 0; k < R; k++)); do
  ip netns add "ref-c$k"
  out=$(ip netns exec ref-node env CNI_COMMAND=ADD CNI_CONTAINERID="ref-$k" CNI_NETNS="/run/netns/ref-c$k" \
    CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "/usr/lib/cni/$MODE" <<<"$REF") || { echo "reference ADD $k: $out" >&2; exit 1; }
done
echo "$R containers of the reference $MODE attached on another node namespace"
cycles beside-reference "$N"
medians beside-reference
