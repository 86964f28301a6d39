import FoundationEssentials
import RegwatchShared

/// One endpoint to probe and what to ask it.
public struct ProbeTarget: Sendable, Equatable {
    public var endpoint: Endpoint
    /// Repository and tag of the probe image, e.g. `library/alpine` and `latest`.
    public var probeRepository: String?
    public var probeTag: String?
    /// `user:password` for this endpoint, from the configured Docker `config.json`.
    public var credentials: String?
    /// Plain http or an untrusted certificate is acceptable (the runtime is configured to allow it).
    public var insecure: Bool
    public var readsRateLimit: Bool
    /// CA bundle for this endpoint's certificate (config `ca`); nil: the system's trust store.
    public var caFile: String?
    public var connectTimeoutMs: Int
    public var timeoutMs: Int
    /// The runtime's proxy, when discovery found one; nil: the agent's environment decides.
    public var proxy: ProxySetting?

    public init(endpoint: Endpoint, probeRepository: String? = nil, probeTag: String? = nil, credentials: String? = nil,
                insecure: Bool = false, readsRateLimit: Bool = false, caFile: String? = nil, connectTimeoutMs: Int = 5_000, timeoutMs: Int = 10_000) {
        self.caFile = caFile
        self.endpoint = endpoint
        self.probeRepository = probeRepository
        self.probeTag = probeTag
        self.credentials = credentials
        self.insecure = insecure
        self.readsRateLimit = readsRateLimit
        self.connectTimeoutMs = connectTimeoutMs
        self.timeoutMs = timeoutMs
    }

    /// Every endpoint of every configured registry: the upstream, then the mirrors in preferred order.
    public static func all(from config: AgentConfig, credentials: DockerCredentials? = nil) -> [ProbeTarget] {
        config.registries.flatMap { r -> [ProbeTarget] in
            let (repo, tag) = r.probeImage.map(Self.splitImage) ?? (nil, nil)
            return ([r.upstream] + r.mirrors.map(\.url)).enumerated().map { i, url in
                endpoint(url, role: i == 0 ? .upstream : .mirror, registry: r.name, config: r, repository: repo, tag: tag, credentials: credentials)
            }
        }
    }

    /// One endpoint of a registry with the local settings that apply to it: credentials for the upstream
    /// and for mirrors marked `authenticated` (the mirror's own entry first), `insecure` and `ca` from the
    /// mirror's entry or the registry, and whether to read Docker Hub style quota headers.
    /// `config` is nil for a registry the agent config does not list (diagnose of any image).
    static func endpoint(_ url: String, role: Endpoint.Role, registry: String, config: AgentConfig.Registry?,
                         repository: String?, tag: String?, credentials: DockerCredentials?) -> ProbeTarget {
        let spec = role == .mirror ? config?.mirrors.first { $0.url == url } : nil
        var creds: String?
        if role == .upstream {
            creds = credentials?.lookup(registry: registry)
        } else if spec?.authenticated == true {
            let hostPort = URL(string: url).flatMap { u in u.host.map { h in u.port.map { "\(h):\($0)" } ?? h } }
            creds = hostPort.flatMap { credentials?.lookup(registry: $0) } ?? credentials?.lookup(registry: registry)
        }
        return ProbeTarget(
            endpoint: Endpoint(registry: registry, url: url, role: role), probeRepository: repository, probeTag: tag,
            credentials: creds, insecure: spec?.insecure ?? url.hasPrefix("http://"),
            readsRateLimit: config?.rateLimit ?? (registry == "docker.io"),
            caFile: (role == .mirror ? config?.mirrorCAs[url] : nil) ?? config?.ca
        )
    }

    /// `library/alpine:latest` -> (`library/alpine`, `latest`); a digest reference keeps its digest.
    static func splitImage(_ image: String) -> (String, String) {
        if let at = image.firstIndex(of: "@") { return (String(image[..<at]), String(image[image.index(after: at)...])) }
        if let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") {
            return (String(image[..<colon]), String(image[image.index(after: colon)...]))
        }
        return (image, "latest")
    }
}

/// Registry credentials from a Docker `config.json` (`auths.<registry>.auth` = base64 of `user:password`).
public struct DockerCredentials: Sendable, Equatable {
    public var auths: [String: String]

    public init(auths: [String: String]) {
        self.auths = auths
    }

    /// `path` is a real path (under `root` when the agent reads a host from a container); errors name it as
    /// the host does. Read as discovery reads it (``DockerClientConfig``).
    public static func load(_ path: String, root: HostRoot = HostRoot()) throws(ConfigError) -> DockerCredentials {
        guard let bytes = root.contents(atPath: path) else {
            throw ConfigError(file: root.shown(path), key: "", message: root.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        let config: DockerClientConfig
        do { config = try DockerClientConfig.parse(bytes, path: path) } catch {
            throw ConfigError(file: root.shown(path), key: "", message: error.message)
        }
        return DockerCredentials(logins: config.logins)
    }

    /// Logins as probes use them: identity tokens need the registry's OAuth exchange, which probes do
    /// not do, so those registries are probed anonymously.
    init(logins: [String: DockerClientConfig.Login]) {
        auths = logins.filter { !$0.value.isIdentityToken }.mapValues { "\($0.username):\($0.secret)" }
    }

    /// Docker stores Hub credentials under `https://index.docker.io/v1/`; others under the host name.
    public func lookup(registry: String) -> String? {
        if registry == "docker.io" {
            return auths["https://index.docker.io/v1/"] ?? auths["docker.io"] ?? auths["registry-1.docker.io"]
        }
        return auths[registry] ?? auths["https://\(registry)"] ?? auths["http://\(registry)"]
    }
}
