#!/usr/bin/env bash
# make demo: a local regwatch fleet on loopback. Needs no root once the packages are installed.
# It sets up the trust (aggregator keys and a bootstrap token: four agents in two zones join with it, nobody
# copies a key), starts real registries (an
# upstream and two pull-through mirrors), the aggregator with its SQLite file and the agents, prints the fleet
# as it fills, then kills a mirror and shows the whole loop: the outage, the canary hosts switching to the
# healthy mirror, then the rest, pulls through it, the mirror's return and the failback, with every
# generation and ack as it happens. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build --show-bin-path)
DEMO=${DEMO_DIR:-$PWD/demo-run}
rm -rf "$DEMO"
mkdir -p "$DEMO"
PIDS=()
# Background jobs are the binaries themselves (not shell functions), so these PIDs are the processes to stop.
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap "exit 130" INT TERM
agg() { "$BIN/regwatch-aggregator" "$@"; }
AGG_CONFIG=$DEMO/aggregator.yaml
AGG_LOG=$DEMO/aggregator.log
# shellcheck source=scripts/demo-lib.sh
source scripts/demo-lib.sh
agent() { "$BIN/regwatch-agent" "$@"; }

cat > "$DEMO/aggregator.yaml" <<YAML
listen: {zmq: "tcp://127.0.0.1:17450", http: "127.0.0.1:17451"}
database: $DEMO/regwatch.db
keys: {dir: $DEMO/keys}
apiToken: $DEMO/api-token
# Demo timing: the agents report every 3 s, so windows are 3 s (the default is 30 s).
correlation: {window: 3s, openAfter: 2, recoveryHold: 9s, minHosts: 3, minZones: 2}
failover: {mode: auto, canaryShare: 0.1, resendInterval: 10s}
# Agents that present a valid bootstrap token are enrolled at once (the default, manual, waits for keys accept).
enrollment: {mode: token}
YAML
(umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$DEMO/api-token")

echo "== aggregator keys (CURVE transport + Ed25519 signing, separate files)"
agg keys generate --config "$DEMO/aggregator.yaml"

echo
echo "== a bootstrap token for the fleet: printed once, stored only as a hash"
agg tokens create --config "$DEMO/aggregator.yaml" --name demo-fleet --ttl 1h --max-uses 5 > "$DEMO/fleet.token"
chmod 600 "$DEMO/fleet.token"
agg tokens list --config "$DEMO/aggregator.yaml"

echo
echo "== four agents, two zones: each gets server.pub, signing.pub and the token file; no agent key exists yet"
demo_agents 'endpoint: "tcp://127.0.0.1:17450"'

echo
echo "== configuration checks"
agg validate --config "$DEMO/aggregator.yaml"
for i in 1 2 3 4; do agent validate --config "$DEMO/node-$i/agent.yaml"; done

echo
echo "== a config with a missing token file is one line and exit 2"
sed "s#bootstrapToken: .*#bootstrapToken: $DEMO/missing.token#" "$DEMO/node-1/agent.yaml" > "$DEMO/broken.yaml"
set +e; agent validate --config "$DEMO/broken.yaml"; rc=$?; set -e
echo "exit code: $rc"
[ "$rc" = 2 ]

echo
echo "== real registries on loopback: an upstream and two pull-through mirrors (CNCF distribution)"
demo_registries

echo
echo "== regwatch-agent check on node-1: every endpoint probed, the runtime's mirrors read"
agent check --config "$DEMO/node-1/agent.yaml" || true

echo
echo "== the live fleet: regwatch-aggregator serve (CURVE ROUTER, SQLite, HTTP API, dashboard at http://127.0.0.1:17451/) and four agents"
"$BIN/regwatch-aggregator" serve --config "$DEMO/aggregator.yaml" >"$DEMO/aggregator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:17451/healthz >/dev/null && break; sleep 0.1; done
for i in 1 2 3 4; do
  "$BIN/regwatch-agent" run --config "$DEMO/node-$i/agent.yaml" >"$DEMO/node-$i/agent.log" 2>&1 &
  PIDS+=($!)
done
show_fleet() {
  echo "-- $(date -u +%H:%M:%S) fleet (regwatch-aggregator hosts)"
  agg hosts --config "$DEMO/aggregator.yaml" || true
}
for _ in $(seq 50); do [ "$(agg keys list --config "$DEMO/aggregator.yaml" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 4 ] && break; sleep 0.2; done
echo
echo "-- every agent made its own key and joined with the token: one key per host (regwatch-aggregator keys list)"
agg keys list --config "$DEMO/aggregator.yaml"
grep -h "enrolled: the aggregator accepted" "$DEMO"/node-*/agent.log | sed 's/^/   /' | cut -c1-160

echo
echo "== a second key claiming node-1 with the valid token waits for an operator: never a silent identity change"
mkdir -p "$DEMO/intruder"
sed "s#stateDir: .*#stateDir: $DEMO/intruder/state#" "$DEMO/node-1/agent.yaml" > "$DEMO/intruder/agent.yaml"
"$BIN/regwatch-agent" run --config "$DEMO/intruder/agent.yaml" >"$DEMO/intruder/agent.log" 2>&1 &
intruder=$!
PIDS+=($intruder)
for _ in $(seq 50); do agg keys pending --config "$DEMO/aggregator.yaml" --json | grep -q node-1 && break; sleep 0.2; done
agg keys pending --config "$DEMO/aggregator.yaml"
kill "$intruder" 2>/dev/null || true
agg keys reject --config "$DEMO/aggregator.yaml" --host node-1

for _ in 1 2 3; do sleep 3; show_fleet; done
echo
echo "-- endpoints as the fleet sees them (GET http://127.0.0.1:17451/api/v1/endpoints)"
curl -s http://127.0.0.1:17451/api/v1/endpoints | python3 -m json.tool

echo
echo "== a kubelet on node-2 logs a failed pull: the agent classifies it and delivers it (spooled until acknowledged)"
echo 'I1129 01:02:05.123456 1234 event.go:307] "Event occurred" reason="Failed" message="Failed to pull image \"demo/app:2\": rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/demo/app:2\": failed to resolve reference \"docker.io/demo/app:2\": unexpected status from HEAD request to http://127.0.0.1:15000/v2/demo/app/manifests/2: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit"' \
  >> "$DEMO/node-2/kubelet.log"
sleep 2
curl -s http://127.0.0.1:17451/metrics | grep '^regwatch_pulls_total' || true

echo

echo "== mirror-a dies"
follow >/dev/null
kill "${PIDS[1]}"
died=$(date +%s)
for _ in $(seq 40); do
  [ "$(curl -s http://127.0.0.1:17451/api/v1/outages)" != "[]" ] && break
  sleep 0.5
done
echo "-- $(( $(date +%s) - died )) s later the aggregator opens an outage (the hosts of both zones agreed for one 3 s window):"
agg outages --config "$DEMO/aggregator.yaml"
echo
echo "-- endpoints now: every host sees mirror-a refusing connections"
curl -s http://127.0.0.1:17451/api/v1/endpoints > "$DEMO/endpoints.json"
python3 - "$DEMO/endpoints.json" <<'PY'
import json, sys
for e in json.load(open(sys.argv[1])):
    print(f"{e['endpoint']:28} {e['role']:9} reporting={e['hostsReporting']} failing={e['hostsFailing']} class={e['errorClass']}")
PY

echo
echo "== failover: a signed generation goes to one canary per zone; once they ack and their next probe of"
echo "   mirror-b is healthy, the other hosts follow (each agent checks signature, generation, expiry, allowlist)"
await_generation '["http://127.0.0.1:15002"]'
echo
agg failovers --config "$DEMO/aggregator.yaml"
echo
agg hosts --config "$DEMO/aggregator.yaml"
echo
echo "-- node-3's runtime files now (written atomically, every other key kept, backups next to them):"
show_files node-3
agent failover status --config "$DEMO/node-3/agent.yaml"

echo
echo "== a real pull on node-1 (skopeo reading node-1's registries.conf) goes through mirror-b"
before_b=$(manifest_gets mirror-b)
skopeo --registries-conf "$DEMO/node-1/registries.conf" --insecure-policy copy -q docker://docker.io/demo/app:1 "dir:$DEMO/pulled"
echo "-- manifest GETs served: mirror-b +$(( $(manifest_gets mirror-b) - before_b )), mirror-a: it is down and no longer asked"
echo
echo "-- regwatch-agent diagnose on node-1 follows the new pull path"
set +e; agent diagnose demo/app:1 --config "$DEMO/node-1/agent.yaml"; rc=$?; set -e
echo "exit code: $rc"

echo
echo "== mirror-a comes back; after the 9 s recovery hold the outage closes and the preferred order returns"
registry mirror-a 15001 15000
back=$(date +%s)
await_generation '["http://127.0.0.1:15001", "http://127.0.0.1:15002"]'
echo "-- failback complete $(( $(date +%s) - back )) s after the mirror returned"
agg outages --config "$DEMO/aggregator.yaml" --all
echo
agg failovers --config "$DEMO/aggregator.yaml"
echo
show_files node-3

echo
echo "The fleet is running: dashboard http://127.0.0.1:17451/ ; HTTP API (/api/v1/hosts, /api/v1/endpoints, /api/v1/outages, /api/v1/failovers, /metrics),"
echo "database $DEMO/regwatch.db (regwatch-aggregator status --config $DEMO/aggregator.yaml)."
if [ -t 0 ] && [ -z "${DEMO_NO_HOLD:-}" ]; then
  echo "Press Ctrl-C to stop everything."
  while true; do sleep 10; show_fleet; done
fi
