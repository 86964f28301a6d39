import FoundationEssentials
import RegwatchShared

/// The agent's configuration (`/etc/regwatch/agent.yaml`). Every key, its default and its meaning are
/// listed in `deploy/agent.example.yaml`; unknown keys are errors so a typo never silently does nothing.
public struct AgentConfig: Sendable, Equatable {
    public static let defaultPath = "/etc/regwatch/agent.yaml"

    public struct Aggregator: Sendable, Equatable {
        /// `aggregator.endpoints`, or the single `aggregator.endpoint`: equivalent aggregators sharing a
        /// database; the agent talks to one at a time and moves on when it fails.
        public var endpoints: [String]
        /// The first endpoint.
        public var endpoint: String { endpoints[0] }
        /// The aggregator's CURVE public key (a copy of its `server.pub`).
        public var serverKey: String?
        /// This agent's CURVE secret key (`agent.key`).
        public var clientKey: String?
        /// The aggregator's command-signing public key (a copy of its `signing.pub`).
        public var signingKey: String?
        public var insecure: Bool
        /// A file holding a bootstrap token (`regwatch-aggregator tokens create`). With it, the agent makes
        /// its own key pair at `clientKey` on first start (default `stateDir/agent.key`) and joins with it.
        public var bootstrapToken: String? = nil
    }

    public struct Registry: Sendable, Equatable {
        /// Where a registry is when nothing says otherwise: Docker Hub's API host, else the name over https.
        public static func defaultUpstream(_ name: String) -> String {
            name == "docker.io" ? "https://registry-1.docker.io" : "https://\(name)"
        }

        public var name: String
        public var upstream: String
        public var probeImage: String?
        public var rateLimit: Bool
        public var credentials: String?
        /// The allowlist and preferred order.
        public var mirrors: [MirrorSpec]
        /// CA bundle for the upstream (and mirrors without their own); nil: the system trust store.
        public var ca: String? = nil
        /// Per-mirror CA bundles, by mirror URL.
        public var mirrorCAs: [String: String] = [:]
    }

    public struct Docker: Sendable, Equatable {
        public enum Reload: String, Sendable, Equatable, CaseIterable { case signal, systemctl, none }
        public var daemonJSON: String
        public var socket: String
        public var reload: Reload
        /// dockerd's pid file: `reload: signal` sends SIGHUP to that process (found by name when the file is absent).
        public var pidFile: String = "/var/run/docker.pid"
    }

    public struct Containerd: Sendable, Equatable {
        public var certsDir: String
        /// k3s/RKE2 `registries.yaml`: failover writes the mirror order there too, so it survives a k3s
        /// restart (k3s rewrites `hosts.toml` from it). Set by default when `certsDir` is k3s' or RKE2's.
        public var registriesYAML: String? = nil

        public init(certsDir: String, registriesYAML: String? = nil) {
            self.certsDir = certsDir
            self.registriesYAML = registriesYAML ?? Self.k3sRegistriesYAML(forCertsDir: certsDir)
        }

        /// k3s and RKE2 keep containerd's `certs.d` in their own tree and regenerate it from their `registries.yaml`.
        public static func k3sRegistriesYAML(forCertsDir dir: String) -> String? {
            for distro in ["k3s", "rke2"] where dir.hasSuffix("/var/lib/rancher/\(distro)/agent/etc/containerd/certs.d") {
                return "/etc/rancher/\(distro)/registries.yaml"
            }
            return nil
        }
    }

    public struct CRIO: Sendable, Equatable {
        public var registriesConf: String
        public var reload: Docker.Reload
    }

    public struct Runtime: Sendable, Equatable {
        public var docker: Docker?
        public var containerd: Containerd?
        public var crio: CRIO?
        /// Where the host's files are (`host.root`); the paths above are already under it (``AgentConfig/rooted(at:)``).
        public var root = HostRoot()
    }

    /// Pull-event sources and their delivery.
    public struct Events: Sendable, Equatable {
        /// Docker's `/events` stream on `runtime.docker.socket` (only when `runtime.docker` is set).
        public var docker = true
        /// systemd units whose journal is followed for pull failures; empty: no journal source.
        public var journalUnits = ["docker", "containerd", "kubelet"]
        /// Plain log files tailed for pull failures (rotation followed).
        public var files: [String] = []
        /// How often a tailed file is read without a change notification (inotify wakes the tail at once).
        public var filePoll: Duration = .seconds(10)
        /// How often an absent source (no socket, no systemd) is looked for again.
        public var absentRecheck: Duration = .seconds(60)
        /// Bound of the on-disk spool of unacknowledged events; the oldest are dropped first.
        public var spoolMaxBytes = 4 << 20
        /// An event not acknowledged this long after sending is sent again.
        public var resendAfter: Duration = .seconds(10)
        /// Events per message to the aggregator.
        public var batchMaxEvents = 500

        public init() {}
    }

    public var host: HostIdentity
    public var aggregator: Aggregator
    public var interval: Duration
    public var stateDir: String
    public var registries: [Registry]
    public var runtime: Runtime
    public var transport: TransportLimits
    public var events = Events()
    public var failover = Failover()

    /// `failover:` — how this host takes signed failover commands from the aggregator.
    public struct Failover: Sendable, Equatable {
        /// Applies at most this many generations in any sliding hour, whatever is signed: a compromised
        /// or confused aggregator cannot make the runtimes flap. Above the aggregator's own budget
        /// (`failover.maxChangesPerHostPerHour`, default 4) so the two never disagree in normal operation.
        public var maxChangesPerHour = 6
        /// `false` refuses every command (acked as rejected): the host keeps its own configuration.
        public var enabled = true
        public init() {}
    }

    /// Loads and validates a config file. `hostRoot` (from `--host-root`) wins over the file's `host.root`.
    public static func load(_ path: String, hostRoot: HostRoot? = nil) throws(ConfigError) -> AgentConfig {
        try parse(ConfigNode.load(path), hostRoot: hostRoot)
    }

    public static func parse(_ root: ConfigNode, defaultHostID: String = ProcessInfo.processInfo.hostName, hostRoot: HostRoot? = nil) throws(ConfigError) -> AgentConfig {
        let hostNode = root["host"]
        let hostID = try hostNode["id"].string(default: defaultHostID) ?? defaultHostID
        guard HostID.isValid(hostID) else {
            throw hostNode["id"].error("\"\(hostID)\" is not a valid host id (letters, digits, . _ -; at most \(HostID.maxLength))")
        }
        let labels = try hostNode["labels"].stringMap()
        var effectiveRoot = hostRoot ?? HostRoot()
        if let dir = try hostNode["root"].string() {
            guard let r = HostRoot(dir) else { throw hostNode["root"].error("expected an absolute directory, got \"\(dir)\"") }
            if hostRoot == nil { effectiveRoot = r }
        }
        try hostNode.rejectUnknownKeys()

        let interval = try root["interval"].duration(default: .seconds(30))
        guard interval >= .seconds(1) else { throw root["interval"].error("must be at least 1s") }
        let stateDir = try root["stateDir"].string(default: "/var/lib/regwatch")!

        let agg = root["aggregator"]
        let endpoints: [String]
        if agg["endpoints"].exists {
            guard try agg["endpoint"].string() == nil else { throw agg["endpoints"].error("give endpoint or endpoints, not both") }
            var listed: [String] = []
            for node in try agg["endpoints"].list() { listed.append(try node.requiredString()) }
            endpoints = listed
            guard (1...16).contains(endpoints.count) else { throw agg["endpoints"].error("expected 1 to 16 endpoints, got \(endpoints.count)") }
            guard Set(endpoints).count == endpoints.count else { throw agg["endpoints"].error("an endpoint is listed twice") }
        } else {
            endpoints = [try agg["endpoint"].string(default: "tcp://127.0.0.1:7450")!]
        }
        var aggregator = Aggregator(
            endpoints: endpoints,
            serverKey: try agg["serverKey"].string(),
            clientKey: try agg["clientKey"].string(),
            signingKey: try agg["signingKey"].string(),
            insecure: try agg["insecure"].bool(default: false)
        )
        aggregator.bootstrapToken = try agg["bootstrapToken"].string()
        if aggregator.bootstrapToken != nil, aggregator.clientKey == nil {
            aggregator.clientKey = "\(stateDir)/\(KeyFiles.agentSecret)"
        }
        if !aggregator.insecure {
            for key in ["serverKey", "clientKey", "signingKey"] where try agg[key].string() == nil {
                if key == "clientKey", aggregator.bootstrapToken != nil { continue }
                throw agg[key].error(key == "clientKey"
                    ? "required unless aggregator.bootstrapToken is set (then the agent makes its key) or aggregator.insecure is true"
                    : "required unless aggregator.insecure is true")
            }
        }
        try agg.rejectUnknownKeys()

        var registries: [Registry] = []
        for node in try root["registries"].list() {
            let name = try node["name"].requiredString()
            guard RegistryName.isValid(name) else { throw node["name"].error("\"\(name)\" is not a registry host name (e.g. docker.io or registry.example:5000)") }
            if registries.contains(where: { $0.name == name }) { throw node["name"].error("registry \(name) is listed twice") }
            let upstream = try node["upstream"].string(default: Registry.defaultUpstream(name))!
            guard URLRules.isHTTPURL(upstream) else { throw node["upstream"].error("expected an http(s) URL, got \"\(upstream)\"") }
            var mirrors: [MirrorSpec] = []
            var mirrorCAs: [String: String] = [:]
            for m in try node["mirrors"].list() {
                let spec: MirrorSpec
                if let url = m.scalarText {
                    spec = MirrorSpec(url: url)
                } else {
                    spec = MirrorSpec(
                        url: try m["url"].requiredString(), trusted: try m["trusted"].bool(default: false),
                        authenticated: try m["authenticated"].bool(default: false), insecure: try m["insecure"].bool(default: false)
                    )
                    if let ca = try m["ca"].string() { mirrorCAs[spec.url] = ca }
                    try m.rejectUnknownKeys()
                }
                guard URLRules.isHTTPURL(spec.url) else { throw m.error("expected an http(s) URL, got \"\(spec.url)\"") }
                if spec.url.hasPrefix("http://") && !spec.insecure {
                    throw m.error("\(spec.url) is plain http: mark the mirror insecure: true to allow it")
                }
                mirrors.append(spec)
            }
            registries.append(Registry(
                name: name, upstream: upstream, probeImage: try node["probeImage"].string(),
                rateLimit: try node["rateLimit"].bool(default: name == "docker.io"),
                credentials: try node["credentials"].string(), mirrors: mirrors,
                ca: try node["ca"].string(), mirrorCAs: mirrorCAs
            ))
            try node.rejectUnknownKeys()
        }

        let rt = root["runtime"]
        var runtime = Runtime()
        if rt["docker"].exists {
            let d = rt["docker"]
            runtime.docker = Docker(
                daemonJSON: try d["daemonJSON"].string(default: "/etc/docker/daemon.json")!,
                socket: try d["socket"].string(default: "/var/run/docker.sock")!,
                reload: try reload(d["reload"]),
                pidFile: try d["pidFile"].string(default: "/var/run/docker.pid")!
            )
            try d.rejectUnknownKeys()
        }
        if rt["containerd"].exists {
            let c = rt["containerd"]
            runtime.containerd = Containerd(certsDir: try c["certsDir"].string(default: "/etc/containerd/certs.d")!,
                                            registriesYAML: try c["registriesYAML"].string())
            try c.rejectUnknownKeys()
        }
        if rt["crio"].exists {
            let c = rt["crio"]
            runtime.crio = CRIO(registriesConf: try c["registriesConf"].string(default: "/etc/containers/registries.conf")!, reload: try reload(c["reload"]))
            try c.rejectUnknownKeys()
        }
        try rt.rejectUnknownKeys()

        let transport = try TransportLimitsConfig.parse(root["transport"], agent: true)
        let events = try parseEvents(root["events"])
        let fo = root["failover"]
        var failover = Failover()
        failover.maxChangesPerHour = try fo["maxChangesPerHour"].int(default: failover.maxChangesPerHour, range: 1...1000)
        failover.enabled = try fo["enabled"].bool(default: true)
        try fo.rejectUnknownKeys()
        try root.rejectUnknownKeys()
        var config = AgentConfig(
            host: HostIdentity(id: hostID, labels: labels), aggregator: aggregator, interval: interval,
            stateDir: stateDir, registries: registries, runtime: runtime, transport: transport
        )
        config.events = events
        config.failover = failover
        return config.rooted(at: effectiveRoot)
    }

    private static func parseEvents(_ node: ConfigNode) throws(ConfigError) -> Events {
        var e = Events()
        e.docker = try node["docker"].bool(default: e.docker)
        if node["journalUnits"].exists {
            e.journalUnits = []
            for u in try node["journalUnits"].list() {
                let unit = try u.requiredString()
                guard !unit.isEmpty, unit.allSatisfy({ $0.isLetter || $0.isNumber || "-_.@:".contains($0) }) else {
                    throw u.error("\"\(unit)\" is not a systemd unit name")
                }
                e.journalUnits.append(unit)
            }
        }
        for f in try node["files"].list() {
            let path = try f.requiredString()
            guard path.hasPrefix("/") else { throw f.error("expected an absolute path, got \"\(path)\"") }
            e.files.append(path)
        }
        e.filePoll = try node["filePoll"].duration(default: e.filePoll)
        guard e.filePoll >= .milliseconds(50) else { throw node["filePoll"].error("must be at least 50ms") }
        e.absentRecheck = try node["absentRecheck"].duration(default: e.absentRecheck)
        guard e.absentRecheck >= .seconds(1) else { throw node["absentRecheck"].error("must be at least 1s") }
        e.spoolMaxBytes = try node["spoolMaxBytes"].int(default: e.spoolMaxBytes, range: 4096...(1 << 34))
        e.resendAfter = try node["resendAfter"].duration(default: e.resendAfter)
        guard e.resendAfter >= .milliseconds(100) else { throw node["resendAfter"].error("must be at least 100ms") }
        e.batchMaxEvents = try node["batchMaxEvents"].int(default: e.batchMaxEvents, range: 1...10_000)
        try node.rejectUnknownKeys()
        return e
    }

    private static func reload(_ node: ConfigNode) throws(ConfigError) -> Docker.Reload {
        let raw = try node.string(default: "signal")!
        guard let r = Docker.Reload(rawValue: raw) else { throw node.error("expected signal, systemctl or none, got \"\(raw)\"") }
        return r
    }
}

/// Registry names as image references use them: a host name with an optional port.
enum RegistryName {
    static func isValid(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253, !name.contains(".."), !name.hasPrefix("."), !name.hasPrefix("-") else { return false }
        return name.utf8.allSatisfy { b in
            (b >= 48 && b <= 58) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
        }
    }
}

enum URLRules {
    static func isHTTPURL(_ s: String) -> Bool {
        guard let url = URL(string: s), let scheme = url.scheme, scheme == "https" || scheme == "http", let host = url.host, !host.isEmpty else { return false }
        return url.query == nil && url.fragment == nil && url.user == nil
    }
}
