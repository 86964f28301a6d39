#!/usr/bin/env bash
# Regenerates Sources/regwatch-agent/hot-functions.order: the functions the agent runs, from start-up through
# probe cycles, reports, acknowledgements and a pull event, recorded by callgrind against real registries and
# a real aggregator. `make release` links them first in the agent's text, so the pages they share are the
# pages that stay resident (about 6 MiB instead of 12 for the same code spread over the whole binary).
# A stale list only costs memory, never correctness. Usage: scripts/agent-order.sh (after make release).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "agent-order: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
AGENT=.build/release/regwatch-agent AGG=.build/release/regwatch-aggregator
[ -x "$AGENT" ] && [ -x "$AGG" ] || { echo "agent-order: run make release first" >&2; exit 2; }
D=$(mktemp -d /tmp/rw-order.XXXXXX); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORTS=()
for i in 1 2; do
  p=$(port)
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: "%s"}}\nhttp: {addr: "127.0.0.1:%s"}\n' "$D/r$i" "$p" > "$D/r$i.yml"
  docker-registry serve "$D/r$i.yml" >/dev/null 2>&1 & PIDS+=($!); PORTS+=("$p")
done
ZMQ=$(port); HTTP=$(port)
printf 'listen: {zmq: "tcp://127.0.0.1:%s", http: "127.0.0.1:%s"}\ndatabase: %s/db\nkeys: {dir: %s/keys}\n' "$ZMQ" "$HTTP" "$D" "$D" > "$D/agg.yaml"
"$AGG" keys generate --config "$D/agg.yaml" >/dev/null
"$AGENT" keys generate --out "$D/agent" >/dev/null
"$AGG" keys accept --config "$D/agg.yaml" --host order-1 --key "$D/agent/agent.pub" >/dev/null
"$AGG" serve --config "$D/agg.yaml" > "$D/agg.log" 2>&1 & PIDS+=($!)
: > "$D/kubelet.log"
cat > "$D/agent.yaml" <<YAML
host: {id: order-1, labels: {zone: z1}}
aggregator: {endpoint: "tcp://127.0.0.1:$ZMQ", serverKey: $D/keys/server.pub, clientKey: $D/agent/agent.key, signingKey: $D/keys/signing.pub}
interval: 3s
stateDir: $D/state
events: {journalUnits: [], files: [$D/kubelet.log]}
registries:
  - {name: "r1.test", upstream: "http://127.0.0.1:${PORTS[0]}", rateLimit: false, mirrors: [{url: "http://localhost:${PORTS[0]}", insecure: true}]}
  - {name: "r2.test", upstream: "http://127.0.0.1:${PORTS[1]}", rateLimit: false, mirrors: [{url: "http://localhost:${PORTS[1]}", insecure: true}]}
YAML
# valgrind cannot read the DWARF of a static Swift binary; the symbol table is all it needs.
strip --strip-debug -o "$D/regwatch-agent" "$AGENT"
sleep 1
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$D/cg.out" "$D/regwatch-agent" run --config "$D/agent.yaml" > "$D/agent.log" 2>&1 &
VG=$!; PIDS+=($VG)
sleep 50
echo 'I1129 01:02:05.123456 1234 event.go:307] "Event occurred" reason="Failed" message="Failed to pull image \"registry.test:5000/team/app:1\": rpc error: code = Unknown desc = 429 Too Many Requests"' >> "$D/kubelet.log"
sleep 10
kill -TERM "$VG"; wait "$VG" || true
reports=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^regwatch_reports_ingested_total/ {print $2}')
[ "${reports:-0}" -ge 5 ] || { echo "agent-order: only ${reports:-0} reports reached the aggregator; not writing a partial list" >&2; exit 1; }
python3 - "$D/cg.out" "$D/regwatch-agent" Sources/regwatch-agent/hot-functions.order <<'PY'
import re, sys
path, binary, out_path = sys.argv[1:4]
objects, functions, seen, order = {}, {}, set(), []
current_object = called_object = None
def add(name, obj):
    if obj == binary and name and not name.startswith("0x") and "'" not in name and name not in seen:
        seen.add(name); order.append(name)
for line in open(path, errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
    if m:
        kind, i, name = m.groups()
        if name: objects[i] = name
        if kind == "ob": current_object = objects.get(i)
        else: called_object = objects.get(i)
        continue
    m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
    if m:
        kind, i, name = m.groups()
        if name: functions[i] = name
        if kind == "fn":
            add(functions.get(i), current_object); called_object = None
        else:
            add(functions.get(i), called_object or current_object)
open(out_path, "w").write("\n".join(order) + "\n")
print(f"agent-order: {len(order)} functions written to {out_path}")
PY
