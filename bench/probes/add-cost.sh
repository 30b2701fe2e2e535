#!/usr/bin/env bash
# Where one tether ADD's time goes against /bin/true (run by bench/probes/node.sh inside the node):
# medians over N ADD+DEL cycles of elapsed, task-clock (CPU) and page faults (perf stat, the plugin
# and its children), and the wall time per syscall (strace -c -w, summed over the N ADDs / N).
#   bench/probes/node.sh ptp 1 /tmp/bin "bench/probes/add-cost.sh 20"
set -euo pipefail
: "${CONF:?run me through bench/probes/node.sh}" "${CTR:?}" "${TDIR:?}"
N=${1:-20}
OUT=$(mktemp -d /tmp/tb-probe-cost.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
echo "$CONF" >"$OUT/conf"
jq -c '.ipMasq = false' "$OUT/conf" >"$OUT/conf-nomasq"
P() { CNI_COMMAND=$1 CNI_CONTAINERID=cost-$2 CNI_NETNS=/run/netns/$CTR CNI_IFNAME=eth0 CNI_ARGS='' \
  CNI_PATH=$TDIR PATH=/usr/sbin:/usr/bin:/sbin:/bin "${@:4}" "$TDIR/tether" <"$3"; }
med() { sort -n | awk '{v[NR] = $1} END {printf "%.2f", v[int((NR + 1) / 2)]}'; }
stat_line() {  # stat_line LABEL FILES...: medians of perf stat -x, outputs
  local label=$1; shift
  local el cpu pf
  el=$(cat "$@" | awk -F, '$3 == "duration_time" {print $1 / 1e6}' | med)
  cpu=$(cat "$@" | awk -F, '$3 == "task-clock" {print $1}' | med)
  pf=$(cat "$@" | awk -F, '$3 == "page-faults" {print $1}' | med)
  printf "%-22s elapsed %6s ms, CPU %6s ms, page faults %5s (medians of %d)\n" "$label" "$el" "$cpu" "$pf" "$#"
}
EV=duration_time,task-clock,page-faults
for conf in conf conf-nomasq; do
  for ((i = 0; i < N; i++)); do
    P ADD "$i" "$OUT/$conf" perf stat -x, -e $EV -o "$OUT/$conf.add.$i" >"$OUT/r"
    jq -c --slurpfile p "$OUT/r" '.prevResult = $p[0]' "$OUT/$conf" >"$OUT/prev"
    P DEL "$i" "$OUT/prev" perf stat -x, -e $EV -o "$OUT/$conf.del.$i"
    P ADD "s$i" "$OUT/$conf" strace -f -c -w -o "$OUT/$conf.strace.$i" >"$OUT/r"
    jq -c --slurpfile p "$OUT/r" '.prevResult = $p[0]' "$OUT/$conf" >"$OUT/prev"
    P DEL "s$i" "$OUT/prev"
    perf stat -x, -e $EV -o "$OUT/true.$conf.$i" /bin/true
  done
  stat_line "$MODE ADD ($conf)" "$OUT/$conf".add.*
  stat_line "$MODE DEL ($conf)" "$OUT/$conf".del.*
  stat_line "/bin/true" "$OUT"/true.$conf.*
  echo "  wall time per ADD in syscalls (strace -c -w, mean over $N, strace inflates each call):"
  cat "$OUT/$conf".strace.* | awk -v n="$N" '$NF ~ /^[a-z_0-9]+$/ && $2 ~ /^[0-9.]+$/ && $NF != "total" {s[$NF] += $2; c[$NF] += $4}
    END {for (k in s) printf "    %-16s %7.3f ms  %5.1f calls\n", k, s[k] * 1000 / n, c[k] / n}' | sort -k2 -rn | head -12
done
