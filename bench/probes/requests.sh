#!/usr/bin/env bash
# Which request of a tether ADD waits, at this node's B (run by bench/probes/node.sh inside the node):
# N ADD+DEL cycles, the ADDs under `strace -f -tt -T -e sendto,recvfrom`; for each request (in order,
# named by socket and message type) the median time from its sendto to the end of its first reply.
#   bench/probes/node.sh bridge 1000 /tmp/bin "bench/probes/requests.sh 10"
set -euo pipefail
: "${CONF:?run me through bench/probes/node.sh}" "${CTR:?}" "${TDIR:?}"
N=${1:-10}
OUT=$(mktemp -d /tmp/tb-probe-req.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
echo "$CONF" >"$OUT/conf"
P() { CNI_COMMAND=$1 CNI_CONTAINERID=rq-$2 CNI_NETNS=/run/netns/$CTR CNI_IFNAME=eth0 CNI_ARGS='' \
  CNI_PATH=$TDIR PATH=/usr/sbin:/usr/bin:/sbin:/bin "${@:4}" "$TDIR/tether" <"$3"; }
for ((i = 0; i < N; i++)); do
  P ADD "$i" "$OUT/conf" strace -f -tt -T -e trace=sendto,recvfrom -o "$OUT/add.$i" >"$OUT/r"
  jq -c --slurpfile p "$OUT/r" '.prevResult = $p[0]' "$OUT/conf" >"$OUT/prev"
  P DEL "$i" "$OUT/prev"
done
python3 - "$OUT" "$N" <<'PY'
import re, sys, glob, statistics
out, n = sys.argv[1], int(sys.argv[2])
def secs(t):
    h, m, s = t.split(':'); return int(h) * 3600 + int(m) * 60 + float(s)
per = {}
for f in sorted(glob.glob(out + '/add.*')):
    pending = {}  # fd -> (label, start)
    seen = {}  # (fd, type) -> how many so far: requests named by socket, type and occurrence
    for line in open(f):
        p = line.split(None, 2)
        if len(p) < 3: continue
        t = secs(p[1]); rest = p[2]
        m = re.match(r'(sendto|recvfrom)\((\d+), ', rest)
        if not m: continue
        call, fd = m.group(1), m.group(2)
        d = re.search(r'<([0-9.]+)>\s*$', rest); dur = float(d.group(1)) if d else 0.0
        if call == 'sendto':
            ty = re.search(r'nlmsg_type=([A-Za-z_0-9<>|]+)', rest)
            ty = ty.group(1) if ty else '?'
            ty = ty.replace('NFNL_SUBSYS_NFTABLES<<8|', 'nft ').replace('NFNL_MSG_BATCH_BEGIN', 'nft batch')
            ty = {'0x10': 'NEWLINK', '0x12': 'GETLINK', '0x13': 'SETLINK', '0x14': 'NEWADDR', '0x18': 'NEWROUTE'}.get(ty, ty)
            if 'NLM_F_DUMP' in rest: ty += ' (dump)'
            seen[(fd, ty)] = seen.get((fd, ty), 0) + 1
            pending[fd] = ('fd%s %s #%d' % (fd, ty, seen[(fd, ty)]), t)
        elif fd in pending and '= -1 EAGAIN' not in rest:
            label, start = pending.pop(fd)
            per.setdefault(label, []).append((t + dur - start) * 1000)
for label in sorted(per, key=lambda k: statistics.median(per[k]), reverse=True):
    v = per[label]
    print('%-44s median %6.2f ms  max %6.2f  (n %d)' % (label, statistics.median(v), max(v), len(v)))
PY
