#!/usr/bin/env bash
# Locate where tether's ADD/DEL time goes at B attachments (run by bench/probes/node.sh, inside the
# node namespace, with cni/CONF/CTR/TDIR/DATA from it): strace -c, strace -T of the netlink traffic,
# perf stat page faults, /bin/true, and the kernel's own cost of the bridge-port orders with `ip`.
#   bench/probes/node.sh bridge 1000 /tmp/bin "bench/probes/locate.sh OUTDIR"
set -euo pipefail
: "${CONF:?run me through bench/probes/node.sh}" "${CTR:?}" "${TDIR:?}"
OUT=$1
mkdir -p "$OUT"
P() { CNI_COMMAND=$1 CNI_CONTAINERID=probe-$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 CNI_ARGS='' \
  CNI_PATH=$TDIR PATH=/usr/sbin:/usr/bin:/sbin:/bin "${@:4}" "$TDIR/tether" <"$3"; }
conf_with_prev() { jq -c --slurpfile p "$2" '.prevResult = $p[0]' "$1"; }
echo "$CONF" >"$DATA/conf"
jq -c '.ipMasq = false' "$DATA/conf" >"$DATA/conf-nomasq"
ms() { awk '/seconds time elapsed/ {printf "%.2f", $1 * 1000}' "$1"; }
cycle() {  # cycle TAG CONF: ADD, CHECK, DEL of $CTR, each under perf stat, then under strace
  local tag=$1 conf=$2
  for i in 1 2 3 4 5; do
    P ADD "$CTR" "$conf" perf stat -e page-faults,task-clock -o "$OUT/$tag.add.perf.$i" >"$DATA/r"
    conf_with_prev "$conf" "$DATA/r" >"$DATA/prev"
    P CHECK "$CTR" "$DATA/prev" perf stat -e page-faults,task-clock -o "$OUT/$tag.check.perf.$i"
    P DEL "$CTR" "$DATA/prev" perf stat -e page-faults,task-clock -o "$OUT/$tag.del.perf.$i"
    echo "$tag $i: ADD $(ms "$OUT/$tag.add.perf.$i") CHECK $(ms "$OUT/$tag.check.perf.$i") DEL $(ms "$OUT/$tag.del.perf.$i") ms"
  done
  P ADD "$CTR" "$conf" strace -f -c -o "$OUT/$tag.add.strace-c" >"$DATA/r"
  conf_with_prev "$conf" "$DATA/r" >"$DATA/prev"
  P DEL "$CTR" "$DATA/prev" strace -f -c -o "$OUT/$tag.del.strace-c"
  local tr=(strace -f -tt -T -e "trace=socket,bind,sendto,sendmsg,recvfrom,recvmsg,close,execve,openat,renameat2,rename,wait4,setns")
  P ADD "$CTR" "$conf" "${tr[@]}" -o "$OUT/$tag.add.strace-T" >"$DATA/r"
  conf_with_prev "$conf" "$DATA/r" >"$DATA/prev"
  P CHECK "$CTR" "$DATA/prev" "${tr[@]}" -o "$OUT/$tag.check.strace-T"
  P DEL "$CTR" "$DATA/prev" "${tr[@]}" -o "$OUT/$tag.del.strace-T"
}
cycle "$MODE" "$DATA/conf"
cycle "$MODE-nomasq" "$DATA/conf-nomasq"
for i in 1 2 3 4 5; do perf stat -e page-faults,task-clock -o "$OUT/true.perf.$i" /bin/true; done
echo "/bin/true: $(for i in 1 2 3 4 5; do ms "$OUT/true.perf.$i"; echo -n ' '; done) ms"
strace -f -c -o "$OUT/true.strace-c" /bin/true

# The kernel's own cost, with ip: the node end's orders (bridge) and the DEL of either end.
ipt() {  # ipt LABEL ip-args...: one ip invocation under strace -T (netlink send/recv times)
  strace -f -T -e trace=sendmsg,recvmsg -o "$OUT/ip.$1" ip "${@:2}" || echo "ip $*: failed"
  awk -F'<' '/sendmsg|recvmsg/ {gsub(">", "", $NF); s += $NF} END {printf "%s: %.2f ms in netlink calls\n", "'"$1"'", s * 1000}' "$OUT/ip.$1"
}
if ip link show tb-br0 >/dev/null 2>&1; then
  for round in 1 2 3; do
    ipt "enslaved-up.$round" link add tbx master tb-br0 up type veth peer name eth0 netns "$CTR"
    ipt "del-node.$round" link del tbx
    ipt "plain.$round" link add tbx type veth peer name eth0 netns "$CTR"
    ipt "up-then.$round" link set tbx up
    ipt "master-after-up.$round" link set tbx master tb-br0
    ipt "del-node2.$round" link del tbx
    ipt "plain2.$round" link add tbx type veth peer name eth0 netns "$CTR"
    ipt "master-first.$round" link set tbx master tb-br0
    ipt "up-after-master.$round" link set tbx up
    nsenter --net="/run/netns/$CTR" strace -f -T -e trace=sendmsg,recvmsg -o "$OUT/ip.del-ctr.$round" ip link del eth0
    awk -F'<' '/sendmsg|recvmsg/ {gsub(">", "", $NF); s += $NF} END {printf "del-ctr: %.2f ms in netlink calls\n", s * 1000}' "$OUT/ip.del-ctr.$round"
  done
else
  for round in 1 2 3; do
    ipt "ptp-add.$round" link add tbx up type veth peer name eth0 netns "$CTR"
    ipt "del-node.$round" link del tbx
    ipt "ptp-add2.$round" link add tbx up type veth peer name eth0 netns "$CTR"
    nsenter --net="/run/netns/$CTR" strace -f -T -e trace=sendmsg,recvmsg -o "$OUT/ip.del-ctr.$round" ip link del eth0
    awk -F'<' '/sendmsg|recvmsg/ {gsub(">", "", $NF); s += $NF} END {printf "del-ctr: %.2f ms in netlink calls\n", s * 1000}' "$OUT/ip.del-ctr.$round"
  done
fi
