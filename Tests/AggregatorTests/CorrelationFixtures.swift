import Foundation
@testable import RegwatchAggregator
import RegwatchShared

/// Builders for correlation tests: hosts with labels and one probe per endpoint, healthy unless told
/// otherwise, all observed at `t0` by the aggregator's clock.
enum CorrelationFixture {
    static let t0 = Date(timeIntervalSince1970: 1_700_000_040)
    static let hub = "https://registry-1.docker.io"
    static let mirrorA = "https://mirror-a:5000"
    static let mirrorB = "https://mirror-b:5000"
    static let all = [hub, mirrorA, mirrorB]

    /// Classes for which the agent got through TLS (so it reports the certificate).
    static let pastTLS: Set<ErrorClass> = [.ok, .rateLimited, .authFailed, .accessDenied, .notRegistry, .notFound, .serverError, .timeout]

    static func probe(
        _ url: String, _ cls: ErrorClass = .ok, registry: String = "docker.io", detail: String? = nil,
        manifestStatus: Int? = nil, remaining: Int? = nil, source: String? = nil,
        daysLeft: Int? = 60, expiresAt: Date? = nil, at: Date = t0
    ) -> ProbeResult {
        let manifest: ManifestState? =
            cls == .ok ? ManifestState(reference: "library/alpine:latest", status: 200, digest: "sha256:abc")
            : manifestStatus.map { ManifestState(reference: "library/alpine:latest", status: $0) }
        return ProbeResult(
            endpoint: Endpoint(registry: registry, url: url, role: url == hub ? .upstream : .mirror),
            errorClass: cls, detail: detail ?? (cls == .ok ? "manifest library/alpine:latest present" : "\(cls.rawValue) from \(url)"),
            phases: PhaseTimings(dnsMs: 1, connectMs: 2, tlsMs: 5, ttfbMs: 9, totalMs: 12),
            tls: pastTLS.contains(cls) && (daysLeft != nil || expiresAt != nil)
                ? TLSState(trusted: cls != .tlsUntrusted, daysLeft: daysLeft, expiresAt: expiresAt) : nil,
            rateLimit: remaining.map { RateLimitState(limit: 100, remaining: $0, windowSeconds: 21_600, source: source) },
            manifest: manifest, checkedAt: at)
    }

    /// One host's rows: every endpoint in `endpoints` healthy unless listed in `failing`; `probes` replace
    /// the generated probe of the same registry and URL (or add one).
    static func host(
        _ id: String, zone: String? = "z1", egress: String? = "nat-1", stale: Bool = false, at: Date = t0,
        endpoints: [String] = all, failing: [String: ErrorClass] = [:], probes: [ProbeResult] = []
    ) -> [LatestStateRow] {
        var list = endpoints.map { probe($0, failing[$0] ?? .ok, at: at) }
        for custom in probes {
            list.removeAll { $0.endpoint.url == custom.endpoint.url && $0.endpoint.registry == custom.endpoint.registry }
            list.append(custom)
        }
        var labels: [String: String] = [:]
        labels["zone"] = zone
        labels["egress"] = egress
        return list.map { LatestStateRow(hostID: id, labels: labels, probe: $0, observedAt: at, hostLastSeen: at, stale: stale) }
    }

    /// Hosts `ids` all failing `failing` (or healthy), in `zone`.
    static func hosts(
        _ ids: [String], zone: String? = "z1", egress: String? = "nat-1", stale: Bool = false,
        endpoints: [String] = all, failing: [String: ErrorClass] = [:], probes: [ProbeResult] = []
    ) -> [LatestStateRow] {
        ids.flatMap { host($0, zone: zone, egress: egress, stale: stale, endpoints: endpoints, failing: failing, probes: probes) }
    }

    /// Every endpoint failing with `cls`.
    static func everything(_ cls: ErrorClass, _ endpoints: [String] = all) -> [String: ErrorClass] {
        Dictionary(uniqueKeysWithValues: endpoints.map { ($0, cls) })
    }

    /// Six healthy hosts: a1-a3 in z1, b1-b3 in z2, all behind nat-1.
    static var healthyFleet: [LatestStateRow] {
        hosts(["a1", "a2", "a3"], zone: "z1") + hosts(["b1", "b2", "b3"], zone: "z2")
    }

    /// `healthyFleet` with the rows of `replaced` hosts swapped for `rows`.
    static func fleet(replacing rows: [LatestStateRow]) -> [LatestStateRow] {
        let replaced = Set(rows.map(\.hostID))
        return healthyFleet.filter { !replaced.contains($0.hostID) } + rows
    }

    static let settings = CorrelationSettings()

    static func detect(_ rows: [LatestStateRow], _ settings: CorrelationSettings = settings) -> [OutageCandidate] {
        OutageDetector.detect(rows: rows, settings: settings)
    }

    // Keys, as the scenarios expect them.
    static func endpointDown(_ url: String, registry: String = "docker.io") -> OutageKey {
        OutageKey(kind: .endpointDown, endpoint: url, registry: registry)
    }
    static func viaMirror(_ url: String, registry: String = "docker.io") -> OutageKey {
        OutageKey(kind: .upstreamDownViaMirror, endpoint: url, registry: registry)
    }
    static func dns(_ url: String) -> OutageKey { OutageKey(kind: .dnsOutage, endpoint: url, registry: "docker.io") }
    static func auth(_ url: String) -> OutageKey { OutageKey(kind: .authBroken, endpoint: url, registry: "docker.io") }
    static func zone(_ z: String) -> OutageKey { OutageKey(kind: .zoneNetwork, zone: z) }
    static func local(_ h: String) -> OutageKey { OutageKey(kind: .hostLocal, host: h) }
    static func quota(_ egress: String, _ url: String = hub) -> OutageKey {
        OutageKey(kind: .rateLimitExhausted, endpoint: url, registry: "docker.io", egress: egress)
    }
    static func cert(_ url: String) -> OutageKey { OutageKey(kind: .certExpiring, endpoint: url) }
}
