#!/usr/bin/env bash
# A scratch node for locating costs (the other scripts here run inside it):
# a private mount namespace whose /run/netns is its own tmpfs (nothing in the machine's mount table;
# all of it goes with the last process), a node namespace `node` with B containers attached by
# tether (ptp or bridge, IPv4, ipMasq on), then a shell command run inside the node namespace with
# $CONF (the network configuration), $CTR (a free container namespace) and `cni VERB CTR` defined.
# With BRIDGE_ARGS set (bridge mode), the bridge is made first by `ip link add tb-br0 type bridge
# $BRIDGE_ARGS`, as an operator would make it, and tether's ADDs use it.
#
#   bench/probes/node.sh MODE B TETHER_DIR 'COMMAND'
#   bench/probes/node.sh bridge 1000 /tmp/bin 'strace -c -f -o /tmp/x cni ADD $CTR'
#   BRIDGE_ARGS='mcast_snooping 1' bench/probes/node.sh bridge 1000 /tmp/bin '...'
#
# Root only. Addresses 198.18.0.0/16, no traffic sent.
set -euo pipefail
if [[ ${TB_PROBE_INNER:-} != 1 ]]; then
  [[ $# == 4 ]] || { sed -n '2,10p' "$0" >&2; exit 2; }
  exec env TB_PROBE_INNER=1 unshare --mount --propagation private "$0" "$@"
fi
MODE=$1 B=$2 TDIR=$3 CMD=$4
mount -t tmpfs -o mode=0755 tmpfs /run/netns
DATA=$(mktemp -d /tmp/tb-probe.XXXXXX)
trap 'rm -rf "$DATA"' EXIT
ip netns add node
if [[ $MODE == bridge && -n ${BRIDGE_ARGS:-} ]]; then
  # shellcheck disable=SC2086  # BRIDGE_ARGS is a list of ip arguments
  ip -n node link add tb-br0 type bridge $BRIDGE_ARGS
fi
for ((k = 0; k <= B; k++)); do ip netns add "c$k"; done
case $MODE in
  ptp) EXTRA='"mode": "ptp"' ;;
  bridge) EXTRA='"mode": "bridge", "bridge": "tb-br0", "isGateway": true' ;;
  *) echo "MODE: ptp or bridge" >&2; exit 2 ;;
esac
export CONF="{\"cniVersion\": \"1.0.0\", \"name\": \"tbnet\", \"type\": \"tether\", $EXTRA, \"ipMasq\": true,
  \"ipam\": {\"type\": \"tether-ipam\", \"dataDir\": \"$DATA/ipam\", \"ranges\": [[{\"subnet\": \"198.18.0.0/16\"}]],
  \"routes\": [{\"dst\": \"0.0.0.0/0\"}]}}"
export TDIR CTR="c$B" DATA MODE
# The inner script is single-quoted on purpose: it expands inside the node namespace.
# shellcheck disable=SC2016
ip netns exec node bash -c '
  set -euo pipefail
  cni() {  # cni VERB CTR [prevResult file]: one tether invocation as a runtime makes it
    local conf=$CONF
    [[ -n ${3:-} ]] && conf=$(jq -c --slurpfile p "$3" ".prevResult = \$p[0]" <<<"$CONF")
    CNI_COMMAND=$1 CNI_CONTAINERID=probe-$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 CNI_ARGS='' \
      CNI_PATH=$TDIR PATH=/usr/sbin:/usr/bin:/sbin:/bin "$TDIR/tether" <<<"$conf"
  }
  export -f cni
  for ((k = 0; k < '"$B"'; k++)); do cni ADD c$k >/dev/null; done
  echo "node: $(ip -o link show type veth | wc -l) veths" >&2
  eval "$0"
' "$CMD"
