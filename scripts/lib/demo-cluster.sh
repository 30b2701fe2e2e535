#!/usr/bin/env bash
# scripts/demo --cluster: a three-node Kubernetes-style cluster in throwaway namespaces.
#
#   fabric   a namespace holding the bridge the nodes share (their "network")
#   k1..k3   node namespaces; node i has pod range 198.18.<i>.0/24 and fd7e:7e7e:<i>::/64, and static routes
#            to the other nodes' ranges via their fabric addresses (198.18.250.<i>, fd7e:7e7e:250::<i>)
#   outside  behind k1 (198.19.0.2, fd7e:7e7e:260::2); it knows the nodes, not the pods
#   pod1..3  one pod per node, ADDed with the conflist tether-install wrote for that node (ptp, masquerade,
#            nonMasqueradeCIDRs = the cluster's ranges)
#
# Shows the source address each receiver sees (nftables counters on the receiving side): pod to pod keeps the
# pods' addresses, pod to outside is masqueraded. Exits non-zero on any surprise; removes everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/deps.sh
ensure_packages iproute2 iputils-ping jq nftables

source scripts/lib/release.sh
echo "== building tether and tether-install (release)"
BIN="$(build_release)"

TAG="tc$$"
DATA="$(mktemp -d /tmp/tether-cluster-demo.XXXXXX)"
CLUSTER="198.18.0.0/20,fd7e:7e7e::/44"
NAMESPACES=("$TAG-fabric" "$TAG-outside")
declare -A ADDED=()

cleanup() {
  set +e
  for i in "${!ADDED[@]}"; do cni "$i" DEL "${ADDED[$i]}" >/dev/null; done
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$DATA"
}
trap cleanup EXIT

mkns() { ip netns add "$1"; ip -n "$1" link set lo up; NAMESPACES+=("$1"); }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cni() { # node verb [prevResult]
  local i=$1 verb=$2 prev=${3:-} conf
  conf=$(jq -c '.plugins[0] + {cniVersion: .cniVersion, name: .name}' "$DATA/k$i/net.d/10-tether.conflist")
  [[ -n $prev ]] && conf=$(jq -c --argjson p "$prev" '. + {prevResult: $p}' <<<"$conf")
  in_ns "$TAG-k$i" env -i PATH="$PATH" CNI_COMMAND="$verb" CNI_CONTAINERID="$TAG-pod$i" \
    CNI_NETNS="/run/netns/$TAG-pod$i" CNI_IFNAME=eth0 CNI_PATH="$DATA/k$i/bin" "$DATA/k$i/bin/tether" <<<"$conf"
}

echo "== fabric, nodes k1..k3 (tether-install writes each node's conflist), outside behind k1"
ip netns add "$TAG-fabric"; ip -n "$TAG-fabric" link set lo up
ip -n "$TAG-fabric" link add fab0 type bridge
ip -n "$TAG-fabric" link set fab0 up
for i in 1 2 3; do
  mkns "$TAG-k$i"
  ip -n "$TAG-fabric" link add "fab$i" type veth peer name eth0 netns "$TAG-k$i"
  ip -n "$TAG-fabric" link set "fab$i" master fab0 up
  ip -n "$TAG-k$i" addr add "198.18.250.$i/24" dev eth0
  ip -n "$TAG-k$i" addr add "fd7e:7e7e:250::$i/64" dev eth0 nodad
  ip -n "$TAG-k$i" link set eth0 up
  for j in 1 2 3; do
    [[ $j == "$i" ]] && continue
    ip -n "$TAG-k$i" route add "198.18.$j.0/24" via "198.18.250.$j"
    ip -n "$TAG-k$i" -6 route add "fd7e:7e7e:$j::/64" via "fd7e:7e7e:250::$j"
  done
  if [[ $i != 1 ]]; then
    ip -n "$TAG-k$i" route add default via 198.18.250.1
    ip -n "$TAG-k$i" -6 route add default via fd7e:7e7e:250::1
  fi
  in_ns "$TAG-k$i" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  env -i TETHER_POD_CIDRS="198.18.$i.0/24,fd7e:7e7e:$i::/64" TETHER_NON_MASQUERADE_CIDRS="$CLUSTER" \
    TETHER_NETWORK_NAME=k8s TETHER_CNI_VERSION=1.1.0 TETHER_IPAM_DATA_DIR="$DATA/k$i/ipam" \
    TETHER_BIN_DIR="$DATA/k$i/bin" TETHER_CONF_DIR="$DATA/k$i/net.d" TETHER_LOG=warn "$BIN/tether-install" --once
done
mkns "$TAG-outside"
ip -n "$TAG-k1" link add up0 type veth peer name eth0 netns "$TAG-outside"
ip -n "$TAG-k1" addr add 198.19.0.1/24 dev up0
ip -n "$TAG-k1" addr add fd7e:7e7e:260::1/64 dev up0 nodad
ip -n "$TAG-k1" link set up0 up
ip -n "$TAG-outside" addr add 198.19.0.2/24 dev eth0
ip -n "$TAG-outside" addr add fd7e:7e7e:260::2/64 dev eth0 nodad
ip -n "$TAG-outside" link set eth0 up
ip -n "$TAG-outside" route add 198.18.250.0/24 via 198.19.0.1
ip -n "$TAG-outside" -6 route add fd7e:7e7e:250::/64 via fd7e:7e7e:260::1
echo "   k1's conflist: $(jq -c '.plugins[0] | {mode, ipMasq, nonMasqueradeCIDRs, ranges: .ipam.ranges}' "$DATA/k1/net.d/10-tether.conflist")"

echo "== ADD one pod per node"
declare -A V4=() V6=()
for i in 1 2 3; do
  mkns "$TAG-pod$i"
  result=$(cni "$i" ADD)
  ADDED[$i]=$result
  V4[pod$i]=$(jq -r '[.ips[].address | select(test(":") | not)][0] | split("/")[0]' <<<"$result")
  V6[pod$i]=$(jq -r '[.ips[].address | select(test(":"))][0] | split("/")[0]' <<<"$result")
  printf '   pod%s on k%s: %-14s %s\n' "$i" "$i" "${V4[pod$i]}" "${V6[pod$i]}"
done
V4[outside]=198.19.0.2; V6[outside]=fd7e:7e7e:260::2

# The source address `to` sees for one ping from `from` (a dynamic nftables set on the receiving side).
seen_source() { # from to family
  local from=$1 to=$2 fam=$3 addr set proto
  if [[ $fam == 4 ]]; then addr=${V4[$to]}; set=seen4; proto="icmp type echo-request add @seen4 { ip saddr }"
  else addr=${V6[$to]}; set=seen6; proto="icmpv6 type echo-request add @seen6 { ip6 saddr }"; fi
  in_ns "$TAG-$to" nft delete table inet probe 2>/dev/null || true
  in_ns "$TAG-$to" nft "table inet probe {
    set seen4 { type ipv4_addr; flags dynamic; }
    set seen6 { type ipv6_addr; flags dynamic; }
    chain input { type filter hook input priority 0; policy accept; $proto; }
  }"
  # A few tries: a new IPv6 path can lose its first packet while a link-local address is still tentative.
  for _ in 1 2 3 4 5; do in_ns "$TAG-$from" ping -c1 -W1 -q "$addr" >/dev/null 2>&1 && break; done
  in_ns "$TAG-$to" nft -j list set inet probe "$set" | jq -r '[.nftables[].set.elem // empty | .[]] | join(",")'
}

surprises=0
check() { # from to family expected-source
  local got
  got=$(seen_source "$1" "$2" "$3")
  local mark=ok
  if [[ $got != "$4" ]]; then mark="!! expected $4"; surprises=$((surprises + 1)); fi
  printf '   %-5s -> %-8s v%s  seen from %-18s %s\n' "$1" "$2" "$3" "${got:-nothing}" "$mark"
}

echo "== who the receiver sees (pod to pod: the pod itself; to the outside: the node)"
for pair in "pod1 pod2" "pod2 pod3" "pod3 pod1"; do
  read -r a b <<<"$pair"
  check "$a" "$b" 4 "${V4[$a]}"; check "$a" "$b" 6 "${V6[$a]}"
done
check pod1 outside 4 198.19.0.1;   check pod1 outside 6 fd7e:7e7e:260::1
check pod2 outside 4 198.18.250.2; check pod3 outside 6 fd7e:7e7e:250::3

echo "== DEL"
for i in 1 2 3; do cni "$i" DEL "${ADDED[$i]}" && unset "ADDED[$i]"; done
for i in 1 2 3; do
  echo "   k$i links left: $(ip -n "$TAG-k$i" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | tr '\n' ' ')"
done

if ((surprises > 0)); then
  echo "FAILED: $surprises surprise(s)"
  exit 1
fi
echo "OK: pods talk across nodes with their own addresses; the outside sees the nodes"
