import FoundationEssentials

/// The outcome of probing one endpoint in one cycle: what failed first, and how long each phase took.
///
/// Optional parts are absent when the probe did not get that far (no TLS on plain http, no rate-limit
/// headers on a registry that sends none), so a consumer can tell "not measured" from "zero".
public struct ProbeResult: Codable, Sendable, Hashable {
    public var endpoint: Endpoint
    public var errorClass: ErrorClass
    /// One line for humans, e.g. `dial tcp 10.0.0.5:443: i/o timeout`.
    public var detail: String
    public var phases: PhaseTimings
    public var tls: TLSState?
    public var rateLimit: RateLimitState?
    public var manifest: ManifestState?
    public var checkedAt: Date

    enum CodingKeys: String, CodingKey {
        case endpoint, errorClass = "class", detail, phases, tls, rateLimit, manifest, checkedAt
    }

    public init(
        endpoint: Endpoint, errorClass: ErrorClass, detail: String = "", phases: PhaseTimings = .init(),
        tls: TLSState? = nil, rateLimit: RateLimitState? = nil, manifest: ManifestState? = nil, checkedAt: Date
    ) {
        self.endpoint = endpoint
        self.errorClass = errorClass
        self.detail = detail
        self.phases = phases
        self.tls = tls
        self.rateLimit = rateLimit
        self.manifest = manifest
        self.checkedAt = checkedAt
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        endpoint = try c.decode(Endpoint.self, forKey: .endpoint)
        errorClass = try c.decode(ErrorClass.self, forKey: .errorClass)
        detail = try c.decodeIfPresent(String.self, forKey: .detail) ?? ""
        phases = try c.decodeIfPresent(PhaseTimings.self, forKey: .phases) ?? PhaseTimings()
        tls = try c.decodeIfPresent(TLSState.self, forKey: .tls)
        rateLimit = try c.decodeIfPresent(RateLimitState.self, forKey: .rateLimit)
        manifest = try c.decodeIfPresent(ManifestState.self, forKey: .manifest)
        checkedAt = try c.decode(Date.self, forKey: .checkedAt)
    }
}

/// Per-phase durations in milliseconds, cumulative from the start like curl's `*_TIME` values.
public struct PhaseTimings: Codable, Sendable, Hashable {
    public var dnsMs: Double?
    public var connectMs: Double?
    public var tlsMs: Double?
    public var ttfbMs: Double?
    public var totalMs: Double?

    public init(dnsMs: Double? = nil, connectMs: Double? = nil, tlsMs: Double? = nil, ttfbMs: Double? = nil, totalMs: Double? = nil) {
        self.dnsMs = dnsMs
        self.connectMs = connectMs
        self.tlsMs = tlsMs
        self.ttfbMs = ttfbMs
        self.totalMs = totalMs
    }
}

/// The endpoint's certificate as seen during the handshake, read even when the chain is not trusted.
public struct TLSState: Codable, Sendable, Hashable {
    public var trusted: Bool
    public var daysLeft: Int?
    public var expiresAt: Date?

    public init(trusted: Bool, daysLeft: Int? = nil, expiresAt: Date? = nil) {
        self.trusted = trusted
        self.daysLeft = daysLeft
        self.expiresAt = expiresAt
    }
}

/// Docker Hub style pull quota (`ratelimit-limit: 100;w=21600`), read with HEAD so no quota is spent.
public struct RateLimitState: Codable, Sendable, Hashable {
    public var limit: Int
    public var remaining: Int
    public var windowSeconds: Int
    /// `docker-ratelimit-source`: the egress address the registry counts against.
    public var source: String?

    public init(limit: Int, remaining: Int, windowSeconds: Int, source: String? = nil) {
        self.limit = limit
        self.remaining = remaining
        self.windowSeconds = windowSeconds
        self.source = source
    }
}

/// The `HEAD` of the probe image's manifest through this endpoint: a pull-through cache answers `/v2/`
/// even when its upstream is down, so only this shows whether images actually come through.
public struct ManifestState: Codable, Sendable, Hashable {
    public var reference: String
    public var status: Int?
    public var digest: String?

    public init(reference: String, status: Int? = nil, digest: String? = nil) {
        self.reference = reference
        self.status = status
        self.digest = digest
    }
}
