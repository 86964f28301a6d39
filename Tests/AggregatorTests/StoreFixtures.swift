import Foundation
@testable import RegwatchAggregator
import RegwatchShared

/// Builders for store tests: real database files in a fresh temp directory, reports with whole-second
/// times (so `Date` survives the unix-seconds round trip bit for bit).
enum StoreFixture {
    /// A minute boundary (1_700_000_040 = 28_333_334 x 60), so minute arithmetic in tests is plain.
    static let t0 = Date(timeIntervalSince1970: 1_700_000_040)

    static func path(_ name: String = "fleet") -> String {
        "\(temporaryDirectory("store-\(name)"))/regwatch.db"
    }

    static func open(_ name: String = "fleet") throws -> FleetStore {
        try FleetStore(path: path(name))
    }

    static let hub = "https://registry-1.docker.io"
    static let mirrorA = "https://mirror-a:5000"
    static let mirrorB = "https://mirror-b:5000"

    static func probe(
        _ url: String, registry: String = "docker.io", role: Endpoint.Role? = nil, _ cls: ErrorClass = .ok,
        totalMs: Double? = 20, remaining: Int? = nil, at: Date = t0
    ) -> ProbeResult {
        ProbeResult(
            endpoint: Endpoint(registry: registry, url: url, role: role ?? (url == hub ? .upstream : .mirror)),
            errorClass: cls, detail: cls == .ok ? "" : "\(cls.rawValue) detail",
            phases: PhaseTimings(dnsMs: 1, connectMs: 2, tlsMs: totalMs == nil ? nil : 5, ttfbMs: nil, totalMs: totalMs),
            tls: TLSState(trusted: true, daysLeft: 42, expiresAt: at.addingTimeInterval(42 * 86400)),
            rateLimit: remaining.map { RateLimitState(limit: 100, remaining: $0, windowSeconds: 21600, source: "203.0.113.7") },
            manifest: ManifestState(reference: "library/alpine:latest", status: cls == .ok ? 200 : nil, digest: cls == .ok ? "sha256:abc" : nil),
            checkedAt: at)
    }

    static func report(
        _ host: String, zone: String = "z1", egress: String = "203.0.113.7", at: Date = t0,
        probes: [ProbeResult], runtimes: [RuntimeConfigState] = [], generation: UInt64 = 0, interval: Double = 30
    ) -> Report {
        Report(
            host: HostIdentity(id: host, labels: ["zone": zone, "egress": egress]), agentVersion: "0.1.0", cycleStartedAt: at,
            intervalSeconds: interval, probes: probes, runtimes: runtimes, appliedGeneration: generation,
            mirrorPools: ["docker.io": [MirrorSpec(url: mirrorA, trusted: true), MirrorSpec(url: mirrorB)]])
    }

    static func event(_ seq: UInt64, at: Date = t0, _ result: PullEvent.Result = .success, _ cls: ErrorClass = .ok) -> PullEvent {
        PullEvent(seq: seq, at: at, image: "docker.io/library/alpine:3.20", registry: "docker.io", endpoint: mirrorA,
                  result: result, errorClass: cls, detail: "", source: "docker-events")
    }

    /// Commits reports, each received at its own `cycleStartedAt` unless `receivedAt` is given.
    @discardableResult
    static func ingest(_ store: any FleetStoring, _ reports: [Report], receivedAt: Date? = nil) throws -> IngestResult {
        var batch = IngestBatch()
        for (i, r) in reports.enumerated() {
            batch.append(report: r, hostID: r.host.id, seq: UInt64(i + 1), receivedAt: receivedAt ?? r.cycleStartedAt)
        }
        return try store.commit(batch)
    }
}
