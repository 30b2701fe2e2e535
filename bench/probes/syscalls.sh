#!/usr/bin/env bash
# System calls and sockets per ADD and DEL of a release tether (strace -f -c), in namespaces of its own
# (tt-sc-<pid>-*, removed on exit). Usage: bench/probes/syscalls.sh BIN_DIR [IPMASQ true|false] [RUNS]
#   bench/probes/syscalls.sh target/x86_64-unknown-linux-musl/release false 4   # the 2nd.. ADDs are the steady state
set -euo pipefail
bin=$(cd "$1" && pwd); masq=${2:-false}; runs=${3:-5}
command -v strace >/dev/null || { echo "needs strace (apt-get install strace)" >&2; exit 2; }
tag=tt-sc-$$
data=$(mktemp -d)
cleanup() {
  for ((i = 1; i <= runs; i++)); do ip netns del "$tag-c$i" 2>/dev/null || true; done
  ip netns del "$tag-node" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
ip netns add "$tag-node"
ip netns exec "$tag-node" ip link set lo up
conf="{\"cniVersion\":\"1.1.0\",\"name\":\"tt-sc\",\"type\":\"tether\",\"ipMasq\":$masq,
 \"ipam\":{\"type\":\"tether-ipam\",\"dataDir\":\"$data\",\"ranges\":[[{\"subnet\":\"198.18.90.0/24\"}]]}}"
for ((i = 1; i <= runs; i++)); do
  ip netns add "$tag-c$i"
  for verb in ADD DEL; do
    ip netns exec "$tag-node" env CNI_COMMAND="$verb" CNI_CONTAINERID="sc$i" CNI_NETNS="/run/netns/$tag-c$i" \
      CNI_IFNAME=eth0 CNI_PATH="$bin" strace -f -qq -c -o "$data/$verb.$i" "$bin/tether" <<<"$conf" >/dev/null
    total=$(awk '$NF=="total" {print $4}' "$data/$verb.$i")
    sockets=$(awk '$NF=="socket" {print $4}' "$data/$verb.$i")
    echo "$verb run $i: $total syscalls, ${sockets:-0} socket()"
  done
done
