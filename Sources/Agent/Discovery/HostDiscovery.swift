import FoundationEssentials
import RegwatchShared

/// What `check` and `diagnose` found on a host without a config file: each fact with the file it came
/// from (as the host names it), and the agent configuration made from them. Secrets never enter
/// ``findings``; credentials live only in ``credentials``.
public struct HostDiscovery: Sendable, Encodable {
    public struct Finding: Sendable, Encodable, Equatable {
        public enum Kind: String, Sendable, Encodable {
            case runtime, mirrors, insecure, registry, credentials, helper, proxy, problem
        }
        public var kind: Kind
        /// The runtime or registry the fact is about.
        public var subject: String
        public var detail: String
        /// The host path it was read from, `environment`, or `--registry`.
        public var source: String
    }

    /// The host root (`/` or the `--host-root` directory).
    public var root: String
    public var findings: [Finding]
    /// The registries checked: Docker Hub, then every one named above, in name order.
    public var registries: [String]
    /// The proxy probes go through (a runtime's), when one was found.
    public var proxy: ProxySetting?
    public var config: AgentConfig
    public var credentials: DockerCredentials?

    enum CodingKeys: String, CodingKey { case root, findings, registries, proxy }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(root, forKey: .root)
        try c.encode(findings, forKey: .findings)
        try c.encode(registries, forKey: .registries)
        try c.encodeIfPresent(proxy, forKey: .proxy)
    }
}
