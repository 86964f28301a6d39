#!/usr/bin/env bash
# Mass first connect (make bench-fleet): N CURVE DEALERs connect at once to a real `regwatch-aggregator
# serve` (a DaemonSet rollout, a healed partition). Each N runs twice in one go, against the same binary:
# with libzmq's default accept backlog (transport.acceptBacklog: 100, the reference) and with regwatch's
# (4096). Prints when 50/90/99/100 % of the handshakes were admitted by the aggregator's ZAP handler and
# how many connections the kernel's listen queue dropped meanwhile (TcpExtListenOverflows); a dropped SYN
# costs that client TCP's retransmit backoff (1, 3, 7 s …), which is the tail.
# Then, with the default backlog only, FLEET_HOLD_AGENTS (10000) connect at once to a fresh aggregator and
# stay connected FLEET_HOLD_SECONDS (60): its resident memory per connection and its CPU while they only
# exchange heartbeats. The clients are python3-zmq DEALERs in 2 (4 for the held fleet) processes on the
# same machine, so they share its cores with the aggregator.
# Usage: Benchmarks/connect-storm/run.sh AGGREGATOR_BINARY [N...]   (default N: 1000 3000)
set -euo pipefail
AGG=${1:?aggregator binary}; shift
if [ $# -gt 0 ]; then SIZES=("$@"); else SIZES=(1000 3000); fi
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/rw-storm.XXXXXX)
APID=""
cleanup() { [ -n "$APID" ] && kill "$APID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
trap "exit 130" INT TERM
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
overflows() { nstat -az TcpExtListenOverflows | awk '/TcpExtListenOverflows/ {print $2}'; }
ZMQ=$(port); HTTP=$(port)
declare -A REF
# A fresh aggregator (new database, same keys and config), serving before this returns.
serve() {
  [ -n "$APID" ] && { kill "$APID"; wait "$APID" 2>/dev/null || true; }
  rm -f "$DIR"/regwatch.db*
  "$AGG" serve --config "$DIR/aggregator.yaml" >"$DIR/aggregator.log" 2>&1 &
  APID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "connect-storm: the aggregator did not serve within 10 s:" >&2; tail -5 "$DIR/aggregator.log" >&2; exit 1
}
echo "connect storm: $(nproc) cores, somaxconn $(sysctl -n net.core.somaxconn), open files $(ulimit -Hn)"
for backlog in 100 4096; do
  printf 'listen: {zmq: "tcp://127.0.0.1:%s", http: "127.0.0.1:%s"}\ndatabase: %s/regwatch.db\nkeys: {dir: %s/keys}\ntransport: {acceptBacklog: %s}\n' \
    "$ZMQ" "$HTTP" "$DIR" "$DIR" "$backlog" > "$DIR/aggregator.yaml"
  "$AGG" keys generate --config "$DIR/aggregator.yaml" >/dev/null
  serve
  echo "acceptBacklog $backlog (listen queue as the kernel shows it: $(ss -ltn "sport = :$ZMQ" | awk 'NR == 2 {print $3}'))"
  for n in "${SIZES[@]}"; do
    before=$(overflows)
    line=$(/usr/bin/python3 "$HERE/connect-storm.py" "tcp://127.0.0.1:$ZMQ" "$DIR/keys/server.pub" "http://127.0.0.1:$HTTP/metrics" "$n" 2)
    echo "  $line; listen overflows $(( $(overflows) - before ))"
    last=$(sed -n 's/.*100%=\([0-9.]*\)s.*/\1/p' <<<"$line")
    if [ "$backlog" = 100 ]; then REF[$n]=${last:-nan}; else
      awk -v a="${last:-nan}" -v r="${REF[$n]}" -v n="$n" 'BEGIN {printf "  n=%s: all admitted after %.2f s against %.2f s with libzmq'"'"'s backlog: %.2fx\n", n, a, r, a / r}'
    fi
    sleep 5
  done
  if [ "$backlog" = 4096 ]; then
    # A whole fleet at once, held: memory per connection and the heartbeat cost at that size.
    held=${FLEET_HOLD_AGENTS:-10000}
    serve
    sleep 2
    before=$(overflows)
    line=$(/usr/bin/python3 "$HERE/connect-storm.py" "tcp://127.0.0.1:$ZMQ" "$DIR/keys/server.pub" "http://127.0.0.1:$HTTP/metrics" "$held" 4 "$APID" "${FLEET_HOLD_SECONDS:-60}")
    echo "  held: $line; listen overflows $(( $(overflows) - before ))"
  fi
  kill "$APID"; wait "$APID" 2>/dev/null || true; APID=""
done
