#!/usr/bin/env bash
# make demo: a local regwatch fleet on loopback. Needs no root once the packages are installed.
# This version sets up the trust: aggregator keys, three agents in two zones, enrollment, config checks.
# The live fleet (aggregator serving, agents probing real registries) is added by issue #5.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build --show-bin-path)
DEMO=${DEMO_DIR:-$PWD/demo-run}
rm -rf "$DEMO"
mkdir -p "$DEMO"
agg() { "$BIN/regwatch-aggregator" "$@"; }
agent() { "$BIN/regwatch-agent" "$@"; }

cat > "$DEMO/aggregator.yaml" <<YAML
listen: {zmq: "tcp://127.0.0.1:17450", http: "127.0.0.1:17451"}
database: $DEMO/regwatch.db
keys: {dir: $DEMO/keys}
YAML

echo "== aggregator keys (CURVE transport + Ed25519 signing, separate files)"
agg keys generate --config "$DEMO/aggregator.yaml"

echo
echo "== three agents, two zones: each generates its key, the aggregator enrolls the public half"
zones=(z1 z1 z2)
for i in 1 2 3; do
  host="node-$i"
  agent keys generate --out "$DEMO/$host" >/dev/null
  cp "$DEMO/keys/server.pub" "$DEMO/keys/signing.pub" "$DEMO/$host/"
  cat > "$DEMO/$host/agent.yaml" <<YAML
host: {id: $host, labels: {zone: ${zones[$((i-1))]}, egress: 198.51.100.$i}}
aggregator:
  endpoint: "tcp://127.0.0.1:17450"
  serverKey: $DEMO/$host/server.pub
  clientKey: $DEMO/$host/agent.key
  signingKey: $DEMO/$host/signing.pub
interval: 5s
stateDir: $DEMO/$host/state
registries:
  - name: docker.io
    upstream: http://127.0.0.1:15000
    probeImage: library/alpine:latest
    mirrors:
      - {url: "http://127.0.0.1:15001", insecure: true}
      - {url: "http://127.0.0.1:15002", insecure: true}
runtime:
  docker: {daemonJSON: $DEMO/$host/daemon.json, reload: none}
YAML
  agg keys accept --config "$DEMO/aggregator.yaml" --host "$host" --key "$DEMO/$host/agent.pub"
done

echo
echo "== a second key for an enrolled host is refused (revoke first)"
agent keys generate --out "$DEMO/intruder" >/dev/null
if agg keys accept --config "$DEMO/aggregator.yaml" --host node-1 --key "$DEMO/intruder/agent.pub"; then
  echo "unexpected: second key accepted" >&2; exit 1
fi

echo
echo "== enrolled agents"
agg keys list --config "$DEMO/aggregator.yaml"

echo
echo "== configuration checks"
agg validate --config "$DEMO/aggregator.yaml"
for i in 1 2 3; do agent validate --config "$DEMO/node-$i/agent.yaml"; done

echo
echo "== a config with a missing key file is one line and exit 2"
sed "s#clientKey: .*#clientKey: $DEMO/missing.key#" "$DEMO/node-1/agent.yaml" > "$DEMO/broken.yaml"
set +e; agent validate --config "$DEMO/broken.yaml"; rc=$?; set -e
echo "exit code: $rc"
[ "$rc" = 2 ]

echo
echo "Everything is in $DEMO. Next: the live fleet (aggregator serve + agents run against real"
echo "registries on loopback, the fleet table and the HTTP API) arrives with issue #5."
