# shellcheck shell=bash
# Timed tether invocations for the probes that run inside bench/probes/node.sh (sourced, not run):
#   P VERB ID CONF_FILE [WRAPPER...]   one tether invocation on $CTR, as a runtime makes it
#   timed LABEL                        a WRAPPER: `perf stat` into one sample of LABEL
#   prev_for CONF_FILE                 $OUT/prev: CONF_FILE with the last result ($OUT/r) as prevResult
#   node_end                           the node end of the last result
#   cycles LABEL N                     N ADD+DEL cycles of $CTR, each ADD under perf stat
#   medians LABEL [VERB]               "VERB LABEL median elapsed X ms, CPU Y ms (n N)" (VERB: ADD)
# Needs $CONF, $CTR, $TDIR (node.sh exports them) and sets $OUT, a scratch directory removed on exit.
: "${CONF:?run me through bench/probes/node.sh}" "${CTR:?}" "${TDIR:?}"
OUT=$(mktemp -d /tmp/tb-probe.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
echo "$CONF" >"$OUT/conf"
P() {
  CNI_COMMAND=$1 CNI_CONTAINERID=probe-$2 CNI_NETNS=/run/netns/$CTR CNI_IFNAME=eth0 CNI_ARGS='' \
    CNI_PATH=$TDIR PATH=/usr/sbin:/usr/bin:/sbin:/bin "${@:4}" "$TDIR/tether" <"$3"
}
timed() { echo perf stat -x, -e duration_time,task-clock -o "$OUT/$1.$RANDOM$RANDOM"; }
prev_for() { jq -c --slurpfile p "$OUT/r" '.prevResult = $p[0]' "$1" >"$OUT/prev"; }
# The result's last interface outside the container: in bridge mode the bridge comes first.
node_end() { jq -r '[.interfaces[] | select(.sandbox == null)] | last | .name' "$OUT/r"; }
add() {  # add LABEL ID: a timed ADD, its result kept for the DEL
  # shellcheck disable=SC2046  # timed prints a command line
  P ADD "$2" "$OUT/conf" $(timed "$1") >"$OUT/r"
  prev_for "$OUT/conf"
}
del() { P DEL "$1" "$OUT/prev"; }
cycles() {
  local i
  for ((i = 0; i < $2; i++)); do
    add "$1" "$1$i"
    del "$1$i"
  done
}
medians() {
  local el cpu n
  n=$(cat "$OUT/$1".* | awk -F, '$3 == "duration_time"' | wc -l)
  el=$(cat "$OUT/$1".* | awk -F, '$3 == "duration_time" {print $1 / 1e6}' | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  cpu=$(cat "$OUT/$1".* | awk -F, '$3 == "task-clock" {print $1}' | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  printf "%s %-14s median elapsed %6.2f ms, CPU %5.2f ms (n %d)\n" "${2:-ADD}" "$1" "$el" "$cpu" "$n"
}
