import FoundationEssentials

/// An HTTP proxy as a runtime uses it; URLs shown with any password replaced by `***`.
public struct ProxySetting: Sendable, Equatable, Encodable {
    public var http: String?
    public var https: String?
    public var noProxy: String?
    /// Whose proxy it is: `dockerd`, `containerd`, `environment`.
    public var owner: String
    public var source: String

    public init(http: String?, https: String?, noProxy: String?, owner: String, source: String) {
        self.http = http
        self.https = https
        self.noProxy = noProxy
        self.owner = owner
        self.source = source
    }

    /// From `HTTP_PROXY`-style variables (upper case wins, as Go's and curl's readers have it); nil when none is set.
    init?(environment env: [String: String], owner: String, source: String) {
        func get(_ name: String) -> String? { (env[name] ?? env[name.lowercased()]).flatMap { $0.isEmpty ? nil : $0 } }
        guard get("HTTP_PROXY") != nil || get("HTTPS_PROXY") != nil else { return nil }
        self.init(http: get("HTTP_PROXY"), https: get("HTTPS_PROXY"), noProxy: get("NO_PROXY"), owner: owner, source: source)
    }

    /// The proxy for a URL of this scheme: `HTTPS_PROXY` for https, `HTTP_PROXY` for http, as Go (dockerd,
    /// containerd) and curl choose.
    public func url(for scheme: String) -> String? { scheme == "https" ? https : http }

    /// The proxy a request to `host` goes through, or nil when it goes direct: no proxy for the scheme,
    /// a loopback host (Go never proxies those), or `NO_PROXY` names the host, a domain it is in
    /// (`example.com`, `.example.com`), a CIDR block holding its IPv4 address, or `*`.
    public func proxy(forHost host: String, scheme: String) -> String? {
        guard let url = url(for: scheme) else { return nil }
        let h = host.lowercased()
        if h == "localhost" || h.hasSuffix(".localhost") || h == "::1" || h == "[::1]" || Self.ipv4(h).map({ $0 >> 24 == 127 }) == true { return nil }
        for raw in (noProxy ?? "").split(separator: ",") {
            var entry = raw.trimmingSpaces().lowercased()
            if entry == "*" { return nil }
            if let slash = entry.firstIndex(of: "/"), let net = Self.ipv4(String(entry[..<slash])), let bits = Int(entry[entry.index(after: slash)...]),
               (0...32).contains(bits), let ip = Self.ipv4(h) {
                let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
                if ip & mask == net & mask { return nil }
                continue
            }
            if let colon = entry.lastIndex(of: ":"), !entry.contains("]"), entry.filter({ $0 == ":" }).count == 1 { entry = String(entry[..<colon]) }
            if entry.hasPrefix(".") { entry.removeFirst() }
            if !entry.isEmpty && (h == entry || h.hasSuffix("." + entry)) { return nil }
        }
        return url
    }

    /// A dotted IPv4 address as a number.
    static func ipv4(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard let n = UInt32(p), n <= 255, !p.isEmpty else { return nil }
            v = v << 8 | n
        }
        return v
    }

    public var shown: String {
        var parts: [String] = []
        if let http { parts.append("HTTP_PROXY=\(Self.redacted(http))") }
        if let https { parts.append("HTTPS_PROXY=\(Self.redacted(https))") }
        if let noProxy { parts.append("NO_PROXY=\(noProxy)") }
        return parts.joined(separator: " ")
    }

    /// `http://user:pass@proxy:3128` -> `http://user:***@proxy:3128`.
    public static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        let start = url.firstRange(of: "://")?.upperBound ?? url.startIndex
        guard start < at else { return url }
        let userinfo = url[start..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }

    enum CodingKeys: String, CodingKey { case http, https, noProxy, owner, source }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(http.map(Self.redacted), forKey: .http)
        try c.encodeIfPresent(https.map(Self.redacted), forKey: .https)
        try c.encodeIfPresent(noProxy, forKey: .noProxy)
        try c.encode(owner, forKey: .owner)
        try c.encode(source, forKey: .source)
    }
}
