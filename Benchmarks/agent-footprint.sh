#!/usr/bin/env bash
# Agent footprint: steady-state RSS and CPU of `regwatch-agent run` (30 s interval, 10 endpoints, real
# registries, a real aggregator) over FOOTPRINT_MINUTES (default 10), then RSS with a full event spool
# (aggregator stopped, events written far past spoolMaxBytes). The reference, measured in the same run over
# the same period: prometheus-blackbox-exporter probing the same 10 endpoints every 30 s.
# Usage: Benchmarks/agent-footprint.sh AGENT_BINARY AGGREGATOR_BINARY
set -euo pipefail
AGENT=${1:?agent binary}
AGG=${2:?aggregator binary}
# The footprint rests on the agent loading neither full Foundation with ICU nor the shared Swift runtime.
if ldd "$AGENT" | grep -qE 'libFoundation\.so|_FoundationICU|libicu|libswiftCore'; then
  echo "agent-footprint: $AGENT links full Foundation, ICU or the shared Swift runtime (build it with make release):" >&2
  ldd "$AGENT" | grep -E 'Foundation|icu|swift' >&2
  exit 1
fi
MINUTES=${FOOTPRINT_MINUTES:-10}
INTERVAL=${FOOTPRINT_INTERVAL:-30}
DIR=$(mktemp -d /tmp/rw-footprint.XXXXXX)
PIDS=()
CGROUPS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"
  for g in "${CGROUPS[@]}"; do rmdir "$g" 2>/dev/null || true; done
}
trap cleanup EXIT
trap "exit 130" INT TERM

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
# What the process shares with others (library text in the page cache) counts in RSS in full, in PSS in
# part, in private memory (what stopping it frees) not at all.
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
private_kb() { awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }
# CPU time in nanoseconds, from a cgroup of the process's own (cgroup v1 cpuacct or v2): the scheduler's
# exact account, threads that have exited included. utime/stime in /proc/PID/stat are sampled at the
# clock tick, and an idle agent runs for a few ticks a minute, too few to compare.
CGROUP_ROOT=/sys/fs/cgroup/unified
[ -d /sys/fs/cgroup/cpuacct ] && CGROUP_ROOT=/sys/fs/cgroup/cpuacct
[ -f /sys/fs/cgroup/cgroup.controllers ] && CGROUP_ROOT=/sys/fs/cgroup
cpu_group() { # name pid: creates $CGROUP_ROOT/rw-footprint-NAME-$$ holding PID
  local d="$CGROUP_ROOT/rw-footprint-$1-$$"
  mkdir "$d" && CGROUPS+=("$d") && echo "$2" > "$d/cgroup.procs" || { echo "agent-footprint: cannot put $1 in a cgroup of its own under $CGROUP_ROOT (run as root)" >&2; exit 1; }
}
cpu_ns() { if [ -f "$1/cpuacct.usage" ]; then cat "$1/cpuacct.usage"; else awk '/^usage_usec/ {printf "%d\n", $2 * 1000}' "$1/cpu.stat"; fi; }
# Context switches per thread ("tid name count"): an idle agent's CPU is mostly wakeups, so where they
# come from says more than a profile does.
switches() {
  for t in /proc/$1/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(tr ' ' '_' < "$t/comm")" "$(awk '/ctxt_switches/ {s += $2} END {print s}' "$t/status")"
  done
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Five real registries; each is probed under two names (127.0.0.1 and localhost): ten endpoints.
PORTS=()
for i in 1 2 3 4 5; do
  p=$(port)
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: "%s"}}\nhttp: {addr: "127.0.0.1:%s"}\n' "$DIR/r$i" "$p" > "$DIR/r$i.yml"
  docker-registry serve "$DIR/r$i.yml" >/dev/null 2>&1 &
  PIDS+=($!)
  PORTS+=("$p")
done
for p in "${PORTS[@]}"; do for _ in $(seq 50); do curl -sf "http://127.0.0.1:$p/v2/" >/dev/null && break; sleep 0.1; done; done

ZMQ=$(port); HTTP=$(port)
cat > "$DIR/aggregator.yaml" <<YAML
listen: {zmq: "tcp://127.0.0.1:$ZMQ", http: "127.0.0.1:$HTTP"}
database: $DIR/regwatch.db
keys: {dir: $DIR/keys}
YAML
"$AGG" keys generate --config "$DIR/aggregator.yaml" >/dev/null
"$AGENT" keys generate --out "$DIR/agent" >/dev/null
"$AGG" keys accept --config "$DIR/aggregator.yaml" --host bench-1 --key "$DIR/agent/agent.pub" >/dev/null
{
  echo "host: {id: bench-1, labels: {zone: z1}}"
  echo "aggregator: {endpoint: \"tcp://127.0.0.1:$ZMQ\", serverKey: $DIR/keys/server.pub, clientKey: $DIR/agent/agent.key, signingKey: $DIR/keys/signing.pub}"
  echo "interval: ${INTERVAL}s"
  echo "stateDir: $DIR/state"
  echo "events: {journalUnits: [], files: [$DIR/kubelet.log], spoolMaxBytes: 4194304}"
  echo "registries:"
  for i in 1 2 3 4 5; do
    p=${PORTS[$((i-1))]}
    echo "  - {name: \"r$i.test\", upstream: \"http://127.0.0.1:$p\", rateLimit: false, mirrors: [{url: \"http://localhost:$p\", insecure: true}]}"
  done
} > "$DIR/agent.yaml"
: > "$DIR/kubelet.log"

{
  echo "modules:"
  echo "  registry: {prober: http, timeout: 5s, http: {valid_status_codes: [200, 401], preferred_ip_protocol: ip4}}"
} > "$DIR/blackbox.yml"
BB=$(port)
prometheus-blackbox-exporter --config.file "$DIR/blackbox.yml" --web.listen-address "127.0.0.1:$BB" >/dev/null 2>&1 &
BBPID=$!
PIDS+=($BBPID)

"$AGG" serve --config "$DIR/aggregator.yaml" >"$DIR/aggregator.log" 2>&1 &
AGGPID=$!
PIDS+=($AGGPID)
sleep 1
"$AGENT" run --config "$DIR/agent.yaml" >"$DIR/agent.log" 2>&1 &
AGENTPID=$!
PIDS+=($AGENTPID)
sleep 2

# A Prometheus-like scraper for the reference: every endpoint every interval.
(
  while true; do
    for p in "${PORTS[@]}"; do
      for h in 127.0.0.1 localhost; do
        curl -s "http://127.0.0.1:$BB/probe?module=registry&target=http://$h:$p/v2/" >/dev/null || true
      done
    done
    sleep "$INTERVAL"
  done
) &
PIDS+=($!)

NS_PER_S=1000000000
START=$(date +%s.%N)
cpu_group agent $AGENTPID; cpu_group blackbox $BBPID
AGROUP=$CGROUP_ROOT/rw-footprint-agent-$$; BGROUP=$CGROUP_ROOT/rw-footprint-blackbox-$$
A0=$(cpu_ns "$AGROUP"); B0=$(cpu_ns "$BGROUP")
switches $AGENTPID > "$DIR/switches.0"
ASUM=0; BSUM=0; N=0; AMAX=0; BMAX=0
END=$(( $(date +%s) + MINUTES * 60 ))
while [ "$(date +%s)" -lt "$END" ]; do
  sleep 10
  a=$(rss_kb $AGENTPID); b=$(rss_kb $BBPID)
  ASUM=$((ASUM + a)); BSUM=$((BSUM + b)); N=$((N + 1))
  [ "$a" -gt "$AMAX" ] && AMAX=$a
  [ "$b" -gt "$BMAX" ] && BMAX=$b
done
WALL=$(python3 -c "import time; print(time.time() - $START)")
A1=$(cpu_ns "$AGROUP"); B1=$(cpu_ns "$BGROUP")
switches $AGENTPID > "$DIR/switches.1"
WAKEUPS=$(awk -v wall="$WALL" 'NR == FNR {before[$1] = $3; next}
  {n = $3 - before[$1]; by[$2] += n; total += n}
  END {printf "  regwatch-agent context switches: %.0f/min;", total * 60 / wall
       for (k in by) if (by[k] > 0) printf " %s %.0f", k, by[k] * 60 / wall; print ""}' "$DIR/switches.0" "$DIR/switches.1")
ANON=$(anon_kb $AGENTPID)
# Where the steady-state resident memory is: the largest mappings.
MAPPINGS=$(awk '/^[0-9a-f]+-[0-9a-f]+ /{name=($6 == "" ? "[anonymous]" : $6); perm=$2} /^Rss:/{if ($2 >= 256) printf "    %6.1f MiB  %s %s\n", $2/1024, perm, name}' /proc/$AGENTPID/smaps | sort -rn | head -12)
STEADY=$ASUM; STEADY_N=$N
SHARING="  at the end: regwatch-agent PSS $(( $(pss_kb $AGENTPID) / 1024 )) MiB, private $(( $(private_kb $AGENTPID) / 1024 )) MiB; blackbox_exporter PSS $(( $(pss_kb $BBPID) / 1024 )) MiB, private $(( $(private_kb $BBPID) / 1024 )) MiB"
REPORTS=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^regwatch_reports_ingested_total/ {print $2}')

python3 - "$ASUM" "$BSUM" "$N" "$AMAX" "$BMAX" "$A0" "$A1" "$B0" "$B1" "$NS_PER_S" "$WALL" "$ANON" "$MINUTES" "$INTERVAL" "${REPORTS:-0}" "$DIR/steady.txt" <<'PY'
import sys
asum, bsum, n, amax, bmax, a0, a1, b0, b1, ns = map(int, sys.argv[1:11]); n = max(n, 1)
wall = float(sys.argv[11]); anon = int(sys.argv[12]); minutes, interval = sys.argv[13], sys.argv[14]; reports = sys.argv[15]
acpu = (a1 - a0) / ns / wall * 100; bcpu = (b1 - b0) / ns / wall * 100
print(f"agent footprint: {minutes} min, interval {interval}s, 10 endpoints, {reports} reports stored by the aggregator")
print(f"  regwatch-agent      RSS mean {asum/n/1024:6.1f} MiB  max {amax/1024:6.1f} MiB  (anonymous {anon/1024:.1f} MiB)  CPU {acpu:.3f}% of a core")
print(f"  blackbox_exporter   RSS mean {bsum/n/1024:6.1f} MiB  max {bmax/1024:6.1f} MiB                          CPU {bcpu:.3f}% of a core")
print(f"  ratio agent/blackbox: RSS {asum/max(bsum,1):.2f}x, CPU {acpu/max(bcpu,1e-9):.2f}x")
with open(sys.argv[16], "w") as out:
    out.write(f"{asum/n:.0f} {acpu/max(bcpu,1e-9):.3f}\n")
PY
echo "$SHARING"
echo "$WAKEUPS"
echo "  largest resident mappings of regwatch-agent:"
echo "$MAPPINGS"

# The floor under the RSS goal: the agent's C libraries (libcurl with TLS, libzmq with CURVE) doing its kind
# of work in a Swift program with no agent code and the Swift runtime linked statically.
HERE=$(cd "$(dirname "$0")" && pwd)
CLANG="$(dirname "$(command -v swiftc)")/clang"; [ -x "$CLANG" ] || CLANG=cc
"$CLANG" -O2 -c "$HERE/rss-floor/shim.c" -o "$DIR/floor-shim.o"
swiftc -O -static-stdlib "$HERE/rss-floor/main.swift" "$DIR/floor-shim.o" -lcurl -lzmq -o "$DIR/rss-floor" 2>"$DIR/rss-floor.log"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/tls.key" -out "$DIR/tls.crt" -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
TLS=$(port)
openssl s_server -accept "127.0.0.1:$TLS" -cert "$DIR/tls.crt" -key "$DIR/tls.key" -www -quiet >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -sf --cacert "$DIR/tls.crt" "https://127.0.0.1:$TLS/" >/dev/null && break; sleep 0.1; done
URLS=("https://127.0.0.1:$TLS/")
for p in "${PORTS[@]}"; do URLS+=("http://127.0.0.1:$p/v2/"); done
read -r FRSS FANON FFAIL < <("$DIR/rss-floor" "$DIR/tls.crt" 20 "${URLS[@]}")
echo "  floor: libcurl (TLS) and libzmq (CURVE) doing the same kind of requests in a Swift program with no agent code, Swift runtime static: RSS $(awk "BEGIN {printf \"%.1f\", $FRSS / 1024}") MiB (anonymous $(awk "BEGIN {printf \"%.1f\", $FANON / 1024}") MiB), $FFAIL failed requests"

# Full spool: the aggregator goes away and pull failures keep coming, far past spoolMaxBytes (4 MiB).
kill $AGGPID; wait $AGGPID 2>/dev/null || true
before=$(rss_kb $AGENTPID)
write_failures() { # first-n count
  python3 - "$DIR/kubelet.log" "$1" "$2" <<'PY'
import sys, time
path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "a") as f:
    for start in range(first, first + count, 500):
        for n in range(start, min(start + 500, first + count)):
            f.write(f'I1129 01:02:05.123456 1234 event.go:307] "Event occurred" reason="Failed" message="Failed to pull image \\"registry.test:5000/team/app:{n}\\": rpc error: code = Unknown desc = 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit"\n')
        f.flush()
        time.sleep(0.25)
PY
}
write_failures 0 20000
sleep 5
full=$(rss_kb $AGENTPID)
line="  full spool (aggregator down, spoolMaxBytes 4 MiB): RSS $((before / 1024)) MiB before; after 20k events $((full / 1024)) MiB"
for round in 1 2 3 4; do
  write_failures $((round * 20000)) 20000
  sleep 3
  line="$line, $(((round + 1) * 20))k $(( $(rss_kb $AGENTPID) / 1024 )) MiB"
done
[ -n "${FOOTPRINT_SMAPS:-}" ] && awk '/^[0-9a-f]/{hdr=$1" "$6} /^Rss:/{if ($2>500) print $2, hdr}' /proc/$AGENTPID/smaps >&2
spool=$(stat -c %s "$DIR/state/events.spool")
echo "$line; spool file $((spool / 1024)) KiB"
PEAK=$(awk '/^VmHWM:/ {print $2}' "/proc/$AGENTPID/status")

# The goals, each against what was measured above in this run. CPU per probe: both probe the same 10
# endpoints once per interval, so the ratio of CPU time is the ratio per probe.
read -r SMEAN CPURATIO < "$DIR/steady.txt"
python3 - "$SMEAN" "$FRSS" "$PEAK" "$CPURATIO" <<'PY'
import sys
steady, floor, peak, cpu = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def verdict(ok): return "meets the goal" if ok else "MISSES the goal"
print(f"  goals: steady RSS {steady/1024:.1f} MiB = {steady/floor:.2f}x the floor (goal <= 1.40x): {verdict(steady <= 1.4 * floor)}")
print(f"         peak RSS (VmHWM, full spool) {peak/1024:.1f} MiB = floor + {(peak-floor)/1024:.1f} MiB (goal <= +16 MiB): {verdict(peak - floor <= 16 * 1024)}")
print(f"         CPU per probe {cpu:.2f}x blackbox_exporter's (goal <= 0.50x): {verdict(cpu <= 0.5)}")
PY
