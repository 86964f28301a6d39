# Shared by make demo and make demo-ha (sourced): the demo fleet's agents, registries and the failover
# timeline. Uses DEMO (the run directory), BIN, the PIDS array, AGG_CONFIG (an aggregator config for
# the CLI) and AGG_LOG (the log whose failover events are followed).

# demo_agents ENDPOINT_YAML: four agents in two zones that join with the fleet token; ENDPOINT_YAML is the
# aggregator line of their config (`endpoint: "tcp://…"` or `endpoints: [...]`).
demo_agents() {
zones=(z1 z1 z2 z2)
for i in 1 2 3 4; do
  host="node-$i"
  mkdir -p "$DEMO/$host"
  cp "$DEMO/keys/server.pub" "$DEMO/keys/signing.pub" "$DEMO/fleet.token" "$DEMO/$host/"
  cat > "$DEMO/$host/agent.yaml" <<YAML
host: {id: $host, labels: {zone: ${zones[$((i-1))]}, egress: 198.51.100.$i}}
aggregator:
  $1
  serverKey: $DEMO/$host/server.pub
  signingKey: $DEMO/$host/signing.pub
  bootstrapToken: $DEMO/$host/fleet.token     # the agent makes stateDir/agent.key on first start and joins
interval: 3s
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
  docker: {daemonJSON: $DEMO/$host/daemon.json, socket: $DEMO/$host/docker.sock, reload: none}
  containerd: {certsDir: $DEMO/$host/certs.d}
  crio: {registriesConf: $DEMO/$host/registries.conf, reload: none}
events: {journalUnits: [], files: [$DEMO/$host/kubelet.log]}
YAML
  # Each agent reads its own copy of the runtimes' mirror configuration.
  echo '{"registry-mirrors": ["http://127.0.0.1:15001", "http://127.0.0.1:15002"], "log-level": "warn"}' > "$DEMO/$host/daemon.json"
  mkdir -p "$DEMO/$host/certs.d/docker.io"
  printf 'server = "http://127.0.0.1:15000"\n\n[host."http://127.0.0.1:15001"]\n  capabilities = ["pull", "resolve"]\n\n[host."http://127.0.0.1:15002"]\n  capabilities = ["pull", "resolve"]\n' \
    > "$DEMO/$host/certs.d/docker.io/hosts.toml"
  printf 'unqualified-search-registries = ["docker.io"]\n\n[[registry]]\nprefix = "docker.io"\nlocation = "127.0.0.1:15000"\ninsecure = true\n\n[[registry.mirror]]\nlocation = "127.0.0.1:15001"\ninsecure = true\n\n[[registry.mirror]]\nlocation = "127.0.0.1:15002"\ninsecure = true\n' \
    > "$DEMO/$host/registries.conf"
  : > "$DEMO/$host/kubelet.log"
done
}

# The registries on loopback: an upstream with demo/app:1 on 15000, pull-through mirrors on 15001 and 15002.
registry() { # name port [remote]
  local proxy="" level=error
  [ -n "${3:-}" ] && proxy="proxy: {remoteurl: \"http://127.0.0.1:$3\"}" && level=info
  printf 'version: 0.1\nlog: {level: %s}\nstorage: {filesystem: {rootdirectory: "%s"}}\nhttp: {addr: "127.0.0.1:%s"}\n%s\n' \
    "$level" "$DEMO/$1-data" "$2" "$proxy" > "$DEMO/$1.yml"
  docker-registry serve "$DEMO/$1.yml" >>"$DEMO/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$2/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "registry $1 did not start (see $DEMO/$1.log)" >&2; return 1
}
demo_registries() {
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
}

# The aggregator's failover events (generations planned, directives sent, acks, stages) since the last call.
follow() {
  python3 - "$AGG_LOG" "$DEMO/.follow" <<'PY'
import re, sys
log, state = sys.argv[1], sys.argv[2]
try: start = int(open(state).read())
except Exception: start = 0
lines = open(log, errors="replace").read().split("\n")
keys = r"(generation|host\.id|outcome|state|canaries|kind|rollback|by)=(\S+)"
for line in lines[start:-1]:
    m = re.search(r"\] (failover [^\n]*)$", line)
    if not m: continue
    fields = dict(re.findall(keys, line))
    mirrors = re.search(r"mirrors=(docker\.io=\[[^\]]*\])", line)
    reason = re.search(r"reason=(.*?) (?:\w[\w.]*=|\[)", line)
    parts = [f"{k}={fields[k]}" for k in ("generation", "kind", "state", "host.id", "outcome", "canaries", "rollback") if k in fields]
    if mirrors: parts.append(mirrors.group(1))
    if reason and fields.get("outcome") not in (None, "applied", "ignored"): parts.append("reason=" + reason.group(1))
    print(f"   {line[11:19]}  {m.group(1):34} {' '.join(parts)}")
open(state, "w").write(str(len(lines) - 1))
PY
}
# Waits (printing events) until a generation with docker.io mirrors $1 is complete on every host.
await_generation() {
  for _ in $(seq 120); do
    follow
    if agg failovers --config "$AGG_CONFIG" --json | python3 -c "
import json, sys
want = json.loads(sys.argv[1])
sys.exit(0 if any(p['state'] == 'complete' and p['mirrors'].get('docker.io') == want for p in json.load(sys.stdin)) else 1)" "$1"; then
      follow; return 0
    fi
    sleep 1
  done
  echo "no complete generation with docker.io mirrors $1 (see $AGG_LOG)" >&2; return 1
}
show_files() { # host
  python3 - "$DEMO/$1" <<'PY'
import json, re, sys
d = sys.argv[1]
print("   daemon.json registry-mirrors:", json.load(open(f"{d}/daemon.json"))["registry-mirrors"])
print("   certs.d/docker.io/hosts.toml:", re.findall(r'\[host\."([^"]+)"\]', open(f"{d}/certs.d/docker.io/hosts.toml").read()))
print("   registries.conf mirrors:     ", re.findall(r'\[\[registry\.mirror\]\]\s*location = "([^"]+)"', open(f"{d}/registries.conf").read()))
PY
}
manifest_gets() { grep -c 'http.request.method=GET.*manifests/1' "$DEMO/$1.log" || true; }
