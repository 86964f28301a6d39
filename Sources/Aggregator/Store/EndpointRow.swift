import Foundation
import RegwatchShared

/// One endpoint across the fleet, as `GET /api/v1/endpoints` shows it: how many fresh hosts see it,
/// how many fail it and how, and how fast it answers.
///
/// Only hosts that are not stale count, so a host that went dark does not keep an old failure (or an
/// old success) alive. Optional values encode as JSON `null`, as the HTTP contract requires.
public struct EndpointRow: Codable, Sendable, Equatable {
    public var endpoint: String
    public var registry: String
    public var role: Endpoint.Role
    /// Non-stale hosts with a latest state for this endpoint.
    public var hostsReporting: Int
    /// Of those, hosts whose latest class is not `ok`.
    public var hostsFailing: Int
    /// The most common failing class among them (ties: alphabetical), `ok` when none fails.
    public var errorClass: ErrorClass
    /// Nearest-rank quantiles of `totalMs` over the reporting hosts' latest probes; nil when none was timed.
    public var p50Ms: Double?
    public var p95Ms: Double?
    /// Lowest Docker Hub style quota left among the reporting hosts; nil when none reported one.
    public var lowestRateLimitRemaining: Int?

    public init(
        endpoint: String, registry: String, role: Endpoint.Role, hostsReporting: Int, hostsFailing: Int,
        errorClass: ErrorClass, p50Ms: Double?, p95Ms: Double?, lowestRateLimitRemaining: Int?
    ) {
        self.endpoint = endpoint
        self.registry = registry
        self.role = role
        self.hostsReporting = hostsReporting
        self.hostsFailing = hostsFailing
        self.errorClass = errorClass
        self.p50Ms = p50Ms
        self.p95Ms = p95Ms
        self.lowestRateLimitRemaining = lowestRateLimitRemaining
    }

    enum CodingKeys: String, CodingKey {
        case endpoint, registry, role, hostsReporting, hostsFailing, errorClass, p50Ms, p95Ms, lowestRateLimitRemaining
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(endpoint, forKey: .endpoint)
        try c.encode(registry, forKey: .registry)
        try c.encode(role, forKey: .role)
        try c.encode(hostsReporting, forKey: .hostsReporting)
        try c.encode(hostsFailing, forKey: .hostsFailing)
        try c.encode(errorClass, forKey: .errorClass)
        try c.encode(p50Ms, forKey: .p50Ms)
        try c.encode(p95Ms, forKey: .p95Ms)
        try c.encode(lowestRateLimitRemaining, forKey: .lowestRateLimitRemaining)
    }

    /// Nearest-rank quantile of ascending `sorted` values: the smallest value with at least `q` of the
    /// values at or below it. Exact, no interpolation, so the result is always a reported latency.
    static func quantile(_ q: Double, ofSorted sorted: [Double]) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = max(1, Int((q * Double(sorted.count) - 1e-9).rounded(.up)))
        return sorted[min(rank, sorted.count) - 1]
    }
}
