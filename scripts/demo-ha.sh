#!/usr/bin/env bash
# make demo-ha: three aggregators sharing one PostgreSQL database (a throwaway cluster this script starts
# on 127.0.0.1:15432), four agents in two zones listing all three. Shows one leader and two followers
# answering for the same fleet, enrollments made through one aggregator used through the others, then a
# mirror dying and the leader killed with SIGKILL while the failover rolls out: another aggregator leads
# with the next epoch and completes it, the killed one comes back as a follower, and the failback runs
# under the new leader. Ctrl-C stops everything. make demo (SQLite, one aggregator) needs none of this.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build --show-bin-path)
DEMO=${DEMO_DIR:-$PWD/demo-run-ha}
# The cluster's directory must be traversable by the postgres user when run as root: not under $PWD.
PG=/tmp/regwatch-demo-ha-pg
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL is not installed: run make deps (Debian's postgresql)" >&2; exit 2; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- "$@"; else "$@"; fi
}
# A cluster left by a run that was killed would hold the port: stop it first.
[ -f "$PG/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PG/data" -m immediate stop >/dev/null 2>&1 || true
rm -rf "$DEMO" "$PG"
mkdir -p "$DEMO" "$PG"
PIDS=()
AGGS=()
cleanup() {
  trap '' INT TERM  # a second Ctrl-C must not leave the cluster running
  for p in "${PIDS[@]}" "${AGGS[@]}"; do kill "$p" 2>/dev/null || true; done
  # The aggregators first (each closes its database sessions), at most 10 s, then the cluster.
  for _ in $(seq 100); do
    alive=0
    for p in "${PIDS[@]}" "${AGGS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}" "${AGGS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$PG/data" -m fast -t 20 stop >/dev/null 2>&1 || true
  rm -rf "$PG"
}
trap cleanup EXIT
trap "exit 130" INT TERM
agg() { "$BIN/regwatch-aggregator" "$@"; }
agent() { "$BIN/regwatch-agent" "$@"; }
http_port() { echo $((17459 + 2 * $1)); }
AGG_CONFIG=$DEMO/aggregator-1.yaml
AGG_LOG=$DEMO/aggregator-1.log
# shellcheck source=scripts/demo-lib.sh
source scripts/demo-lib.sh

echo "== PostgreSQL: a throwaway cluster on 127.0.0.1:15432 (in production: Patroni, a managed service, …)"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$PG"
as_pg "$PGBIN/initdb" -D "$PG/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 >"$DEMO/initdb.log"
as_pg "$PGBIN/pg_ctl" -D "$PG/data" -l "$PG/server.log" -w -o "-p 15432 -k $PG -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
(umask 077; echo "$password" > "$DEMO/db-password")
as_pg "$PGBIN/psql" -h "$PG" -p 15432 -U postgres -qX -c "CREATE ROLE regwatch LOGIN PASSWORD '$password'" -c "CREATE DATABASE regwatch OWNER regwatch"
echo "   role regwatch, database regwatch; its password in $DEMO/db-password (mode 0600), never in the URL"

(umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$DEMO/api-token")
for n in 1 2 3; do
  cat > "$DEMO/aggregator-$n.yaml" <<YAML
listen: {zmq: "tcp://127.0.0.1:$((17458 + 2 * n))", http: "127.0.0.1:$(http_port $n)"}
database: postgres://regwatch@127.0.0.1:15432/regwatch
databasePasswordFile: $DEMO/db-password
keys: {dir: $DEMO/keys}
apiToken: $DEMO/api-token
correlation: {window: 3s, openAfter: 2, recoveryHold: 9s, minHosts: 3, minZones: 2}
failover: {mode: auto, canaryShare: 0.1, resendInterval: 10s}
enrollment: {mode: token}
# The leader's lock is checked every second (default 2 s).
leader: {checkInterval: 1s}
YAML
done

echo
echo "== one key set for all three (agents pin one server key and one signing key); a token made through aggregator 1"
agg keys generate --config "$DEMO/aggregator-1.yaml"
agg tokens create --config "$DEMO/aggregator-1.yaml" --name demo-fleet --ttl 1h --max-uses 5 > "$DEMO/fleet.token"
chmod 600 "$DEMO/fleet.token"
echo "-- the token is in the database: aggregator 3's CLI lists it"
agg tokens list --config "$DEMO/aggregator-3.yaml"

echo
echo "== four agents, two zones, each listing all three aggregators"
demo_agents 'endpoints: ["tcp://127.0.0.1:17460", "tcp://127.0.0.1:17462", "tcp://127.0.0.1:17464"]'
demo_registries

start_aggregator() { # n
  "$BIN/regwatch-aggregator" serve --config "$DEMO/aggregator-$1.yaml" >>"$DEMO/aggregator-$1.log" 2>&1 &
  AGGS[$1]=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$(http_port "$1")/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "aggregator $1 did not serve (see $DEMO/aggregator-$1.log)" >&2; return 1
}
# n role epoch (from /healthz's headers), or "n down".
role() {
  curl -s -m 3 -D - -o /dev/null "http://127.0.0.1:$(http_port "$1")/healthz" 2>/dev/null | tr -d '\r' |
    awk -v n="$1" 'tolower($1)=="regwatch-role:" {r=$2} tolower($1)=="regwatch-leader-epoch:" {e=$2} END {print n, (r ? r : "down"), e}' || true
}
show_roles() {
  echo "-- $(date -u +%H:%M:%S) roles (GET /healthz: Regwatch-Role, Regwatch-Leader-Epoch; agents connected from /metrics)"
  for n in 1 2 3; do
    read -r _ r e < <(role "$n")
    connected=$(curl -s -m 3 "http://127.0.0.1:$(http_port "$n")/metrics" 2>/dev/null | awk '$1=="regwatch_agents_connected" {printf "%d", $2}' || true)
    printf '   aggregator %s  %-9s epoch %-3s agents connected %s\n' "$n" "$r" "${e:--}" "${connected:--}"
  done
}
leader() { for n in 1 2 3; do read -r _ r _ < <(role "$n"); [ "$r" = leader ] && echo "$n" && return 0; done; return 1; }

echo
echo "== three regwatch-aggregator serve on the one database: the first to take the advisory lock leads"
start_aggregator 1
for _ in $(seq 50); do leader >/dev/null && break; sleep 0.2; done
start_aggregator 2
start_aggregator 3
for i in 1 2 3 4; do
  "$BIN/regwatch-agent" run --config "$DEMO/node-$i/agent.yaml" >"$DEMO/node-$i/agent.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 50); do [ "$(agg keys list --config "$DEMO/aggregator-2.yaml" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 4 ] && break; sleep 0.3; done
sleep 6
show_roles
echo
echo "-- every agent joined with the token, through whichever aggregator it picked (aggregator 2's CLI):"
agg keys list --config "$DEMO/aggregator-2.yaml"
echo
echo "-- the fleet, read through aggregator 3 (every aggregator answers from the one database):"
curl -s "http://127.0.0.1:$(http_port 3)/api/v1/hosts" > "$DEMO/hosts.json"
python3 - "$DEMO/hosts.json" <<'PY'
import json, sys
for h in json.load(open(sys.argv[1])):
    print(f"   {h['id']:8} zone={h['labels'].get('zone')} status={h['status']} lastSeen={h['lastSeen']}")
PY

echo
echo "== mirror-a dies; as soon as the leader has planned the failover, it is killed with SIGKILL"
first=$(leader)
AGG_LOG=$DEMO/aggregator-$first.log
follow >/dev/null
kill "${PIDS[1]}"
for _ in $(seq 120); do
  agg failovers --config "$AGG_CONFIG" --json | grep -q '15002' && break
  sleep 0.25
done
follow
kill -9 "${AGGS[$first]}"
wait "${AGGS[$first]}" 2>/dev/null || true
killed=$(date +%s.%N)
echo "-- aggregator $first (the leader, epoch 1) killed"
for _ in $(seq 100); do next=$(leader) && break; sleep 0.1; done
echo "-- aggregator $next leads $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$killed" "$(date +%s.%N)") s later, and continues the rollout from the database:"
show_roles
AGG_LOG=$DEMO/aggregator-$next.log
AGG_CONFIG=$DEMO/aggregator-$next.yaml
rm -f "$DEMO/.follow"
await_generation '["http://127.0.0.1:15002"]'
echo
agg failovers --config "$AGG_CONFIG"
echo
echo "-- node-3's runtime files:"
show_files node-3
applied() { read -r g e < "$DEMO/$1/state/applied-generation"; echo "   $1: generation $g under epoch $e"; }
echo "-- what each agent keeps: the newest (epoch, generation) it applied; anything older is refused"
for i in 1 2 3 4; do applied "node-$i"; done

echo
echo "== aggregator $first comes back: it follows the new term"
start_aggregator "$first"
sleep 3
show_roles

echo
echo "== mirror-a comes back; the failback runs under aggregator $next's term"
registry mirror-a 15001 15000
await_generation '["http://127.0.0.1:15001", "http://127.0.0.1:15002"]'
agg failovers --config "$AGG_CONFIG"
echo
show_files node-3
for i in 1 2 3 4; do applied "node-$i"; done

echo
echo "Three aggregators share postgres://regwatch@127.0.0.1:15432/regwatch: dashboards at http://127.0.0.1:17461/, :17463/, :17465/."
if [ -t 0 ] && [ -z "${DEMO_NO_HOLD:-}" ]; then
  echo "Press Ctrl-C to stop everything."
  while true; do sleep 10; show_roles; done
fi
