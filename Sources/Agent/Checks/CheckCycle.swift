import FoundationEssentials
import RegwatchShared

/// One check cycle on this host: every endpoint probed concurrently, every managed runtime's mirror
/// configuration read. `regwatch-agent check` prints it; the agent service reports it.
public struct CheckCycle: Sendable {
    public let config: AgentConfig
    public let prober: RegistryProber
    public let credentials: DockerCredentials?
    /// A runtime's proxy found by discovery; every probe goes through it.
    public let proxy: ProxySetting?

    public init(config: AgentConfig, prober: RegistryProber, credentials: DockerCredentials? = nil, proxy: ProxySetting? = nil) {
        self.config = config
        self.prober = prober
        self.credentials = credentials
        self.proxy = proxy
    }

    /// Loads the Docker credentials files the registries name (one file per path).
    public static func loadCredentials(_ config: AgentConfig) throws(ConfigError) -> DockerCredentials? {
        var merged: [String: String] = [:]
        var any = false
        for path in Set(config.registries.compactMap(\.credentials)) {
            any = true
            merged.merge(try DockerCredentials.load(path, root: config.hostRoot).auths) { a, _ in a }
        }
        return any ? DockerCredentials(auths: merged) : nil
    }

    public func run() async -> CheckReport {
        let targets = ProbeTarget.all(from: config, credentials: credentials).map { t in
            var t = t
            t.proxy = proxy
            return t
        }
        let results = await withTaskGroup(of: (Int, ProbeResult).self) { group in
            for (i, t) in targets.enumerated() { group.addTask { (i, await prober.probe(t)) } }
            var out = [ProbeResult?](repeating: nil, count: targets.count)
            for await (i, r) in group { out[i] = r }
            return out.compactMap { $0 }
        }
        let runtimes = await RuntimeConfigReader(runtime: config.runtime, runner: prober.runner).readWithEngine()
        return CheckReport(host: config.host, probes: results, runtimes: runtimes)
    }
}

/// The `check --json` document (contract shape, docs/api.md; may gain fields).
public struct CheckReport: Sendable, Encodable {
    public var host: HostIdentity
    public var probes: [ProbeResult]
    public var runtimes: [RuntimeConfigState]
    /// What `check` found on the host when it ran without a config file; its problems count.
    public var discovery: HostDiscovery?

    public var healthy: Bool {
        probes.allSatisfy { $0.errorClass == .ok } && runtimes.allSatisfy(\.valid)
            && !(discovery?.findings.contains { $0.kind == .problem } ?? false)
    }

    enum CodingKeys: String, CodingKey { case host, endpoints, runtime, healthy, discovery }

    struct EndpointJSON: Encodable {
        var registry, endpoint, role, `class`, detail: String
        var phases: PhaseTimings
        var tls: TLSState?
        var rateLimit: RateLimitState?
        var manifest: ManifestState?
    }

    struct RuntimeJSON: Encodable {
        var mirrors: [String: [String]]
        var valid: Bool
        var detail: String
        var hash: String
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(host, forKey: .host)
        try c.encode(probes.map {
            EndpointJSON(registry: $0.endpoint.registry, endpoint: $0.endpoint.url, role: $0.endpoint.role.rawValue, class: $0.errorClass.rawValue,
                         detail: $0.detail, phases: $0.phases, tls: $0.tls, rateLimit: $0.rateLimit, manifest: $0.manifest)
        }, forKey: .endpoints)
        var runtime: [String: RuntimeJSON] = [:]
        for r in runtimes { runtime[r.runtime.rawValue] = RuntimeJSON(mirrors: r.mirrors, valid: r.valid, detail: r.detail, hash: r.hash) }
        try c.encode(runtime, forKey: .runtime)
        try c.encode(healthy, forKey: .healthy)
        try c.encodeIfPresent(discovery, forKey: .discovery)
    }
}
