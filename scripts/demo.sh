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
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
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
    probeImage: demo/app:1
    rateLimit: false
    mirrors:
      - {url: "http://127.0.0.1:15001", insecure: true}
      - {url: "http://127.0.0.1:15002", insecure: true}
runtime:
  docker: {daemonJSON: $DEMO/$host/daemon.json, reload: none}
YAML
  echo '{"registry-mirrors": ["http://127.0.0.1:15001", "http://127.0.0.1:15002"], "log-level": "warn"}' > "$DEMO/$host/daemon.json"
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
echo "== real registries on loopback: an upstream and two pull-through mirrors (CNCF distribution)"
registry() { # name port [remote]
  local proxy=""
  [ -n "${3:-}" ] && proxy="proxy: {remoteurl: \"http://127.0.0.1:$3\"}"
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: "%s"}}\nhttp: {addr: "127.0.0.1:%s"}\n%s\n' \
    "$DEMO/$1-data" "$2" "$proxy" > "$DEMO/$1.yml"
  docker-registry serve "$DEMO/$1.yml" >"$DEMO/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$2/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "registry $1 did not start (see $DEMO/$1.log)" >&2; return 1
}
registry upstream 15000
# A tiny image pushed to the upstream: one blob used as config and layer, one manifest.
blob='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
digest=$(printf '%s' "$blob" | sha256sum | cut -d' ' -f1)
loc=$(curl -s -D - -o /dev/null -X POST http://127.0.0.1:15000/v2/demo/app/blobs/uploads/ | tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
case "$loc" in /*) loc="http://127.0.0.1:15000$loc" ;; esac
case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
printf '%s' "$blob" | curl -sf -X PUT --data-binary @- -H 'Content-Type: application/octet-stream' "$loc${sep}digest=sha256:$digest"
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":${#blob},\"digest\":\"sha256:$digest\"},\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":${#blob},\"digest\":\"sha256:$digest\"}]}"
curl -sf -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' --data-binary "$manifest" \
  http://127.0.0.1:15000/v2/demo/app/manifests/1 >/dev/null
registry mirror-a 15001 15000
registry mirror-b 15002 15000

echo
echo "== regwatch-agent check on node-1: every endpoint probed, the runtime's mirrors read"
agent check --config "$DEMO/node-1/agent.yaml" || true

echo
echo "== mirror-a dies: regwatch-agent diagnose follows the pull path and says what to do"
kill "${PIDS[1]}"
sleep 0.3
set +e; agent diagnose demo/app:1 --config "$DEMO/node-1/agent.yaml"; rc=$?; set -e
echo "exit code: $rc (1: a problem was found)"

echo
echo "Everything is in $DEMO. Next: the live fleet (aggregator serve + agents run against real"
echo "registries on loopback, the fleet table and the HTTP API) arrives with issue #5."
