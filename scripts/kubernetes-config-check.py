#!/usr/bin/env python3
"""Checks a rendered regwatch Kubernetes manifest (kubectl kustomize output) against the configuration
files it carries, offline:

- agent.yaml and aggregator.yaml use only documented keys (docs/configuration.md: unknown keys are
  errors for the programs too), and parse as YAML;
- every path a config names is mounted in the container that reads it: the agent's key and token files
  from its Secret, its host files under /host (read-write where the agent writes), the aggregator's
  keys.dir, key files, API token and database;
- every host path mounted into the agent is one its config uses (least privilege), and hostPID is set
  exactly when a runtime is reloaded by signal;
- the variables a config names come from the container's environment; probes use the mounted config;
  the aggregator listens on the ports its container and Service declare.

With --skips, checks instead that every checkov skip annotation (checkov.io/skipN) names a check and
gives a reason: CKV_K8S_N=reason or CKV2_K8S_N=reason.

Usage: kubernetes-config-check.py [--skips] RENDERED.yaml  (exit 0: fine; 1: problems, one line each).
"""
import posixpath
import re
import sys

import yaml

AGENT_KEYS = {
    "host": {"id", "labels", "root"},
    "aggregator": {"endpoint", "serverKey", "clientKey", "bootstrapToken", "signingKey", "insecure"},
    "interval": None,
    "stateDir": None,
    "registries": {"name", "upstream", "probeImage", "rateLimit", "credentials", "ca", "mirrors"},
    "runtime": {"docker", "containerd", "crio"},
    "events": {"docker", "journalUnits", "files", "filePoll", "absentRecheck", "spoolMaxBytes", "resendAfter",
               "batchMaxEvents"},
    "failover": {"enabled", "maxChangesPerHour"},
    "transport": {"maxMessageSize", "sendHighWaterMark", "receiveHighWaterMark", "heartbeatInterval",
                  "heartbeatTimeout", "handshakeTimeout", "outboxMessages", "outboxBytes"},
}
RUNTIME_KEYS = {
    "docker": {"daemonJSON", "socket", "pidFile", "reload"},
    "containerd": {"certsDir"},
    "crio": {"registriesConf", "reload"},
}
AGGREGATOR_KEYS = {
    "listen": {"zmq", "http"},
    "database": None,
    "keys": {"dir"},
    "apiToken": None,
    "insecure": None,
    "enrollment": {"mode", "hostPattern", "maxPending", "joinsPerSecond"},
    "correlation": {"window", "openAfter", "recoveryHold", "minHosts", "minZones", "staleAfter", "hostLocalShare",
                    "zoneFailShare", "zoneMinHosts", "endpointFailShare", "rateLimitThreshold", "certWarningDays"},
    "failover": {"mode", "canaryShare", "maxChangesPerHostPerHour", "resendInterval", "canaryTimeout", "commandTTL"},
    "alerts": {"webhooks"},
    # The aggregator sends no heartbeats and refuses their keys; the accept backlog is its own.
    "transport": (AGENT_KEYS["transport"] - {"heartbeatInterval", "heartbeatTimeout"}) | {"acceptBacklog"},
}
# Host paths the agent reads for the journal (journalctl --root) besides what its config names.
JOURNAL_PATHS = {"/var/log/journal", "/run/log/journal", "/run/systemd/system", "/etc/machine-id"}

problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def check_keys(where, doc, schema):
    if not isinstance(doc, dict):
        problem(where, "top level must be a mapping of keys")
        return
    for key, value in doc.items():
        if key not in schema:
            problem(where, f"{key}: unknown key")
            continue
        allowed = schema[key]
        if allowed is None or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                for sub in item:
                    if sub not in allowed:
                        problem(where, f"{key}.{sub}: unknown key")


def under(path, mount):
    return path == mount or path.startswith(mount.rstrip("/") + "/")


class Container:
    def __init__(self, workload, pod, spec):
        self.name = f"{workload['kind']}/{workload['metadata']['name']}/{spec['name']}"
        self.pod = pod
        self.spec = spec
        self.volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            self.volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": claim}
        args = spec.get("args") or spec.get("command", [])[1:]
        self.subcommand = args[0] if args else None
        self.mounts = spec.get("volumeMounts", [])
        self.env = {e["name"] for e in spec.get("env", [])}

    def mount_for(self, path):
        """The deepest mount that holds path, or None."""
        best = None
        for m in self.mounts:
            if under(path, m["mountPath"]) and (best is None or len(m["mountPath"]) > len(best["mountPath"])):
                best = m
        return best

    def needs(self, path, writable=False, what="file"):
        m = self.mount_for(path)
        if m is None:
            problem(self.name, f"{what} {path} is not mounted")
            return None
        if writable and m.get("readOnly"):
            problem(self.name, f"{what} {path} is written but {m['mountPath']} is mounted read-only")
        vol = self.volumes.get(m["name"])
        if vol is None:
            problem(self.name, f"mount {m['mountPath']} names no volume {m['name']}")
            return None
        source = vol.get("secret") or vol.get("configMap")
        if source and source.get("items") and "subPath" not in m:
            rel = posixpath.relpath(path, m["mountPath"])
            if rel not in {i["path"] for i in source["items"]}:
                problem(self.name, f"{what} {path}: {m['name']} has no item {rel}")
        return m

    def config(self, configmaps, filename):
        for m in self.mounts:
            if m.get("subPath") == filename:
                vol = self.volumes.get(m["name"], {})
                name = vol.get("configMap", {}).get("name")
                if name not in configmaps:
                    problem(self.name, f"config map {name} is not in the manifest")
                    return None, None, None
                text = configmaps[name].get("data", {}).get(filename, "")
                try:
                    return m["mountPath"], yaml.safe_load(text), text
                except yaml.YAMLError as e:
                    problem(self.name, f"{filename} is not valid YAML: {e}")
                    return None, None, None
        return None, None, None

    def variables(self, text):
        for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", text):
            if var[1] == "" and var[0] not in self.env:
                problem(self.name, f"the config names ${{{var[0]}}}, which the container's env does not set")


def check_probes(c, config_path):
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        cmd = c.spec.get(kind, {}).get("exec", {}).get("command", [])
        if "--config" in cmd and cmd[cmd.index("--config") + 1] != config_path:
            problem(c.name, f"{kind} reads {cmd[cmd.index('--config') + 1]}, the config is at {config_path}")


def check_agent(c, path, cfg, raw):
    if c.subcommand not in ("run", "restore"):
        problem(c.name, f"runs regwatch-agent {c.subcommand}, expected run or restore")
    check_keys(c.name + " agent.yaml", cfg, AGENT_KEYS)
    for rt, body in (cfg.get("runtime") or {}).items():
        for sub in (body or {}):
            if sub not in RUNTIME_KEYS.get(rt, set()):
                problem(c.name + " agent.yaml", f"runtime.{rt}.{sub}: unknown key")
    c.variables(raw)
    check_probes(c, path)
    root = (cfg.get("host") or {}).get("root")
    if root != "/host":
        problem(c.name, f"host.root is {root!r}, expected /host")
        return
    agg = cfg.get("aggregator") or {}
    for key in ("serverKey", "signingKey", "bootstrapToken"):
        if agg.get(key):
            c.needs(agg[key], what=f"aggregator.{key}")
    # Host paths: (path, written, reason).
    used = []
    state = cfg.get("stateDir", "/var/lib/regwatch")
    used.append((state, True, "stateDir"))
    runtime = cfg.get("runtime") or {}
    signal = False
    if "containerd" in runtime:
        ctrd = runtime["containerd"] or {}
        dirs = ctrd.get("certsDir", "/etc/containerd/certs.d")
        for d in dirs.split(":"):
            used.append((d, True, "runtime.containerd.certsDir"))
        # k3s/RKE2: failover also writes registries.yaml (its default follows certsDir).
        yaml_path = ctrd.get("registriesYAML")
        for distro in ("k3s", "rke2"):
            if yaml_path is None and dirs.endswith(f"/var/lib/rancher/{distro}/agent/etc/containerd/certs.d"):
                yaml_path = f"/etc/rancher/{distro}/registries.yaml"
        if yaml_path:
            used.append((posixpath.dirname(yaml_path), True, "runtime.containerd.registriesYAML's directory"))
    if "docker" in runtime:
        d = runtime["docker"] or {}
        used.append((posixpath.dirname(d.get("daemonJSON", "/etc/docker/daemon.json")), True, "daemon.json's directory"))
        used.append((d.get("socket", "/var/run/docker.sock"), False, "runtime.docker.socket"))
        signal |= d.get("reload", "signal") == "signal"
    if "crio" in runtime:
        d = runtime["crio"] or {}
        used.append((posixpath.dirname(d.get("registriesConf", "/etc/containers/registries.conf")), True,
                     "registries.conf's directory"))
        signal |= d.get("reload", "signal") == "signal"
    # `run` reads pull events; `restore` only puts runtime files back from stateDir and reloads.
    events = (cfg.get("events") or {}) if c.subcommand == "run" else {"journalUnits": []}
    for f in events.get("files", []):
        used.append((f, False, "events.files"))
    journal = events.get("journalUnits", ["docker", "containerd", "kubelet"]) != []
    for p, written, why in used:
        c.needs("/host" + p, writable=written, what=why)
    if journal:
        # Both or neither: with neither (../components/without-journal) the agent reports the journal
        # source as absent; with one only, it would look for a journal it cannot read, or never look.
        dirs = c.mount_for("/host/var/log/journal") or c.mount_for("/host/run/log/journal")
        marker = c.mount_for("/host/run/systemd/system")
        if marker and not dirs:
            problem(c.name, "/run/systemd/system is mounted but no journal directory is")
        if dirs and not marker:
            problem(c.name, "a journal directory is mounted but /run/systemd/system (how the agent sees systemd) is not")
    # Least privilege: every host mount serves a path above (or the journal when it is read).
    for m in c.mounts:
        if not m["mountPath"].startswith("/host/"):
            continue
        host = m["mountPath"][len("/host"):]
        if any(under(p, host) or under(host, p) for p, _, _ in used):
            continue
        if journal and host in JOURNAL_PATHS:
            continue
        problem(c.name, f"{m['mountPath']} is mounted but the config does not use it")
    for m in c.mounts:
        vol = c.volumes.get(m["name"], {})
        if "hostPath" in vol and vol["hostPath"]["path"] != m["mountPath"][len("/host"):]:
            problem(c.name, f"hostPath {vol['hostPath']['path']} is mounted at {m['mountPath']}, not at /host<same path>")
    host_pid = bool(c.pod.get("hostPID"))
    if signal != host_pid:
        problem(c.name, f"hostPID is {host_pid} but a runtime reloaded by signal is {'' if signal else 'not '}configured")


def check_aggregator(c, path, cfg, raw, services):
    check_keys(c.name + " aggregator.yaml", cfg, AGGREGATOR_KEYS)
    c.variables(raw)
    check_probes(c, path)
    keys_dir = (cfg.get("keys") or {}).get("dir", "/etc/regwatch/keys")
    c.needs(keys_dir, writable=True, what="keys.dir")
    for f in ("server.key", "signing.key"):
        m = c.needs(posixpath.join(keys_dir, f), what=f"keys.dir/{f}")
        if m is not None and m["mountPath"] != posixpath.join(keys_dir, f):
            problem(c.name, f"keys.dir/{f} is not mounted from the Secret (it would have to be on the volume)")
    db = cfg.get("database", "/var/lib/regwatch/regwatch.db")
    c.needs(posixpath.dirname(db), writable=True, what="the database's directory")
    if cfg.get("apiToken"):
        c.needs(cfg["apiToken"], what="apiToken")
    ports = {p["name"]: p["containerPort"] for p in c.spec.get("ports", [])}
    listen = cfg.get("listen") or {}
    for name, value in (("zmq", listen.get("zmq", "tcp://0.0.0.0:7450")), ("http", listen.get("http", "127.0.0.1:7451"))):
        port = int(value.rsplit(":", 1)[1])
        if ports.get(name) != port:
            problem(c.name, f"listen.{name} uses port {port}, the container declares {ports.get(name)}")
        if name == "http" and value.startswith("127."):
            problem(c.name, "listen.http is loopback: probes and the Service cannot reach it")
    for svc in services:
        for p in svc["spec"].get("ports", []):
            if p.get("targetPort") not in ports and p.get("targetPort") not in ports.values():
                problem(f"Service/{svc['metadata']['name']}", f"targetPort {p.get('targetPort')} is not a port of {c.name}")


def check_skips(docs):
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        for key, value in (d["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip") and not re.fullmatch(r"CKV2?_K8S_[0-9]+=\S.{29,}", str(value), re.S):
                problem(where, f"{key}: {value!r} is not CKV_K8S_N=reason (with a reason of 30 characters or more)")


def main():
    skips = sys.argv[1] == "--skips"
    path = sys.argv[-1]
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    if skips:
        check_skips(docs)
        for p in problems:
            print(p)
        return 1 if problems else 0
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    services = [d for d in docs if d["kind"] == "Service"]
    seen = 0
    for w in docs:
        if w["kind"] not in ("DaemonSet", "StatefulSet", "Deployment"):
            continue
        pod = w["spec"]["template"]["spec"]
        for spec in pod.get("initContainers", []) + pod.get("containers", []):
            c = Container(w, pod, spec)
            for filename in ("agent.yaml", "aggregator.yaml"):
                path, cfg, raw = c.config(configmaps, filename)
                if path is None:
                    continue
                seen += 1
                if filename == "agent.yaml":
                    check_agent(c, path, cfg or {}, raw)
                else:
                    selected = [s for s in services if s["spec"].get("selector", {}).items()
                                <= w["spec"]["template"]["metadata"]["labels"].items()]
                    check_aggregator(c, path, cfg or {}, raw, selected)
    if seen == 0:
        problem(path, "no container mounts agent.yaml or aggregator.yaml")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
