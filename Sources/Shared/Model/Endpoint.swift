/// One place a host can pull a registry's images from: the registry's upstream or one of its mirrors.
public struct Endpoint: Codable, Sendable, Hashable {
    public enum Role: String, Codable, Sendable, Hashable {
        case upstream, mirror
    }

    /// The registry as image references name it, e.g. `docker.io`.
    public var registry: String
    /// The base URL probed, e.g. `https://mirror-a:5000`.
    public var url: String
    public var role: Role

    public init(registry: String, url: String, role: Role) {
        self.registry = registry
        self.url = url
        self.role = role
    }
}

/// A mirror as declared in an agent's config: the allowlist entry and the preferred order.
public struct MirrorSpec: Codable, Sendable, Hashable {
    public var url: String
    /// May resolve tags to digests (containerd `resolve` capability).
    public var trusted: Bool
    /// Authenticated pull-through mirror: preferred for an egress group whose Hub quota is exhausted.
    public var authenticated: Bool
    /// Plain http or an untrusted certificate is allowed for this mirror.
    public var insecure: Bool

    public init(url: String, trusted: Bool = false, authenticated: Bool = false, insecure: Bool = false) {
        self.url = url
        self.trusted = trusted
        self.authenticated = authenticated
        self.insecure = insecure
    }

    public init(from decoder: any Decoder) throws {
        if let url = try? decoder.singleValueContainer().decode(String.self) {
            self.init(url: url)
            return
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            url: try c.decode(String.self, forKey: .url),
            trusted: try c.decodeIfPresent(Bool.self, forKey: .trusted) ?? false,
            authenticated: try c.decodeIfPresent(Bool.self, forKey: .authenticated) ?? false,
            insecure: try c.decodeIfPresent(Bool.self, forKey: .insecure) ?? false
        )
    }
}
