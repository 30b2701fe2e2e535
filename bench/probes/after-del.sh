#!/usr/bin/env bash
# Does an ADD cost more right after a DEL than after a pause? (run by bench/probes/node.sh inside the
# node namespace): medians over ROUNDS of tether ADD elapsed / CPU, right after a DEL and after 1 s idle.
#   bench/probes/node.sh ptp 1000 /tmp/bin "bench/probes/after-del.sh 15"
set -euo pipefail
: "${CONF:?run me through bench/probes/node.sh}" "${CTR:?}" "${TDIR:?}"
ROUNDS=${1:-15}
OUT=$(mktemp -d /tmp/tb-probe-afterdel.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
echo "$CONF" >"$OUT/conf"
P() { CNI_COMMAND=$1 CNI_CONTAINERID=ad-$2 CNI_NETNS=/run/netns/$CTR CNI_IFNAME=eth0 CNI_ARGS='' \
  CNI_PATH=$TDIR PATH=/usr/sbin:/usr/bin:/sbin:/bin "${@:4}" "$TDIR/tether" <"$3"; }
add() {  # add LABEL ID: a timed ADD, its result kept for the DEL
  P ADD "$2" "$OUT/conf" perf stat -x, -e duration_time,task-clock -o "$OUT/$1.$2" >"$OUT/r"
  jq -c --slurpfile p "$OUT/r" '.prevResult = $p[0]' "$OUT/conf" >"$OUT/prev"
}
del() { P DEL "$1" "$OUT/prev"; }
for ((r = 0; r < ROUNDS; r++)); do
  sleep 1
  add idle "i$r"
  del "i$r"
  add after-del "d$r"
  del "d$r"
done
for label in idle after-del; do
  el=$(cat "$OUT/$label".* | awk -F, '$3 == "duration_time" {print $1 / 1e6}' | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  cpu=$(cat "$OUT/$label".* | awk -F, '$3 == "task-clock" {print $1}' | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  printf "ADD %-10s median elapsed %6.2f ms, CPU %5.2f ms (n %d)\n" "$label" "$el" "$cpu" "$ROUNDS"
done
