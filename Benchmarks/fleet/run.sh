#!/usr/bin/env bash
# Fleet scale with emulated agents (make bench-fleet): regwatch-fleetsim against a real `regwatch-aggregator
# serve` (CURVE, ZAP, SQLite) on this machine. The simulator and the aggregator share its cores; the
# aggregator's CPU and memory are read from /proc by the simulator. Every scenario prints the simulator's
# JSON summary line; docs/benchmarks.md holds the figures.
#   1. enrollment: N agents join at once with one bootstrap token (and stay enrolled for the rest);
#   2. steady: N agents report every 30 s for FLEET_STEADY (5m): CPU share, RSS, memory per connection;
#   3. reconnect: kill -9 of the aggregator with N connected, started again: how the fleet comes back;
#   4. failover: docker.io's first mirror fails for all N: detection, canaries, the full stage's acks;
#   5. largest fleet: steady runs at growing sizes until the aggregator passes half a core;
#   6. crash series: FLEET_KILLS (200) kill -9 while agents send pull events, then every acknowledged
#      event is looked up in the database and PRAGMA integrity_check runs after every kill.
# Usage: Benchmarks/fleet/run.sh AGGREGATOR FLEETSIM [N]   (N default 10000)
set -euo pipefail
AGG=${1:?aggregator binary}; SIM=${2:?fleetsim binary}; N=${3:-10000}
STEADY=${FLEET_STEADY:-5m}; KILLS=${FLEET_KILLS:-200}; SIZES=${FLEET_SIZES:-"10000 15000 19000"}
DIR=$(mktemp -d /tmp/rw-fleet.XXXXXX)
cleanup() { [ -f "$DIR/aggregator.pid" ] && kill -9 "$(cat "$DIR/aggregator.pid")" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
trap "exit 130" INT TERM
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ZMQ=$(port); HTTP=$(port)
ulimit -n "$(ulimit -Hn)"

# restart.sh [start]: (kill -9, integrity check,) start the aggregator; returns once it serves.
cat > "$DIR/restart.sh" <<SCRIPT
#!/bin/bash
set -u
if [ "\${1:-}" != start ]; then
  pid=\$(cat "$DIR/aggregator.pid")
  kill -9 "\$pid"
  for i in \$(seq 1000); do
    s=\$(cut -d' ' -f3 "/proc/\$pid/stat" 2>/dev/null || echo gone)
    { [ "\$s" = gone ] || [ "\$s" = Z ]; } && break
    sleep 0.01
  done
  [ "\${CHECK:-}" = 1 ] && sqlite3 "$DIR/regwatch.db" 'PRAGMA integrity_check' >> "$DIR/integrity.log" 2>&1
fi
"$AGG" serve --config "$DIR/aggregator.yaml" >> "$DIR/aggregator.log" 2>&1 < /dev/null &
echo \$! > "$DIR/aggregator.pid"
for i in \$(seq 600); do curl -sf "http://127.0.0.1:$HTTP/healthz" > /dev/null && exit 0; sleep 0.05; done
echo "the aggregator did not serve within 30 s" >&2; exit 1
SCRIPT
chmod +x "$DIR/restart.sh"

# Default correlation and failover settings; joins allowed fast enough that enrolling the fleet is not
# the rate limiter's figure (the default, 50 a second, would take N/50 s by design).
cat > "$DIR/aggregator.yaml" <<YAML
listen: {zmq: "tcp://127.0.0.1:$ZMQ", http: "127.0.0.1:$HTTP"}
database: $DIR/regwatch.db
keys: {dir: $DIR/keys}
enrollment: {mode: token, joinsPerSecond: 5000, maxPending: 100000}
YAML
"$AGG" keys generate --config "$DIR/aggregator.yaml" > /dev/null
"$AGG" tokens create --name fleet --ttl 0 --config "$DIR/aggregator.yaml" > "$DIR/token"
sim() {
  "$SIM" --endpoint "tcp://127.0.0.1:$ZMQ" --server-key "$DIR/keys/server.pub" --signing-key "$DIR/keys/signing.pub" \
    --token-file "$DIR/token" --state-dir "$DIR/sim" --aggregator-pidfile "$DIR/aggregator.pid" "$@" 2> "$DIR/sim.err" | tail -1 \
    || { echo "regwatch-fleetsim failed:" >&2; tail -5 "$DIR/sim.err" >&2; exit 1; }
}
echo "fleet bench: $(nproc) cores, $N agents, somaxconn $(sysctl -n net.core.somaxconn), open files $(ulimit -n)"

bash "$DIR/restart.sh" start
echo "enrollment (all $N join at once with one token, then steady for 30 s):"
sim --agents "$N" --scenario steady --duration 30s
echo "steady ($STEADY at a 30 s interval, a fresh aggregator process on the same database):"
kill -9 "$(cat "$DIR/aggregator.pid")"; sleep 0.5
bash "$DIR/restart.sh" start
sim --agents "$N" --scenario steady --duration "$STEADY"
echo "reconnect (kill -9 and restart with $N connected):"
sim --agents "$N" --scenario reconnect --restart-command "$DIR/restart.sh" --duration 5m
# Last on this database: the emulated agents do not keep an applied generation between runs, so a later run
# would be sent the generation again.
echo "failover (docker.io's first mirror down for every agent, default correlation and failover settings):"
sim --agents "$N" --scenario failover --api "http://127.0.0.1:$HTTP" --fault-after 60s --duration 15m

echo "largest fleet under half a core (steady, 2 minutes each):"
for n in $SIZES; do
  # A fresh database for each size (enrollments stay in keys.dir).
  kill -9 "$(cat "$DIR/aggregator.pid")"; sleep 0.5; rm -f "$DIR"/regwatch.db*
  bash "$DIR/restart.sh" start
  line=$(sim --agents "$n" --scenario steady --duration 2m)
  echo "  $n: $line"
  share=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cpuShare"])' "$line")
  /usr/bin/python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 0.5 else 1)' "$share" || break
done

echo "crash series ($KILLS kill -9 while 200 agents send pull events):"
kill -9 "$(cat "$DIR/aggregator.pid")"; sleep 0.5; rm -f "$DIR"/regwatch.db*
bash "$DIR/restart.sh" start
rm -f "$DIR/integrity.log"
line=$(CHECK=1 sim --agents 200 --host-prefix crash --scenario crash --interval 2s --events 5 --kills "$KILLS" --kill-every 0.2-2 \
  --restart-command "CHECK=1 $DIR/restart.sh" --acked-events "$DIR/acked.txt")
echo "  $line"
/usr/bin/python3 - "$DIR" "$KILLS" <<'PY'
import sqlite3, sys
d, kills = sys.argv[1], int(sys.argv[2])
acked = set(tuple(l.split()) for l in open(f"{d}/acked.txt") if l.strip())
rows = [(h, str(s)) for h, s in sqlite3.connect(f"{d}/regwatch.db").execute("SELECT hostId, seq FROM pull_event WHERE hostId LIKE 'crash-%'")]
stored = set(rows)
checks = [l.strip() for l in open(f"{d}/integrity.log")]
missing = acked - stored
print(f"  kills {kills}, integrity checks {len(checks)} ({sum(c == 'ok' for c in checks)} ok), acked {len(acked)}, stored {len(rows)}, "
      f"stored twice {len(rows) - len(stored)}, acked but missing {len(missing)}")
sys.exit(0 if not missing and len(rows) == len(stored) and checks == ["ok"] * kills else 1)
PY
