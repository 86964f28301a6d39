import Foundation
import RegwatchShared

/// What one emulated host reports every time (only times and seq change): 5 probes over three
/// registries, labels, a mirror pool and an event source; no runtimes, so the rows written are exactly
/// the host row (with 5 latest endpoint states) and one probe_report row (5 samples).
public func makeSampleReport(host: String, index: Int, cycle: Date) -> Report {
    let expires = Date(timeIntervalSince1970: 1_800_000_000)
    let tls = TLSState(trusted: true, daysLeft: 60, expiresAt: expires)
    let hub = "docker.io"
    let probes = [
        ProbeResult(endpoint: Endpoint(registry: hub, url: "https://registry-1.docker.io", role: .upstream), errorClass: .ok,
                    phases: PhaseTimings(dnsMs: 2.1, connectMs: 11.5, tlsMs: 38.2, ttfbMs: 95.4, totalMs: 96.0 + Double(index % 7)), tls: tls,
                    rateLimit: RateLimitState(limit: 100, remaining: 100 - index % 50, windowSeconds: 21600, source: "198.51.100.\(index % 8)"),
                    manifest: ManifestState(reference: "library/alpine:3.20", status: 200, digest: "sha256:" + String(repeating: "ab", count: 32)), checkedAt: cycle),
        ProbeResult(endpoint: Endpoint(registry: hub, url: "https://mirror-a.internal:5000", role: .mirror), errorClass: .ok,
                    phases: PhaseTimings(dnsMs: 0.4, connectMs: 0.9, tlsMs: 4.2, ttfbMs: 7.5, totalMs: 8.1), tls: tls,
                    manifest: ManifestState(reference: "library/alpine:3.20", status: 200, digest: "sha256:" + String(repeating: "ab", count: 32)), checkedAt: cycle),
        ProbeResult(endpoint: Endpoint(registry: hub, url: "https://mirror-b.internal:5000", role: .mirror), errorClass: .tcpTimeout,
                    detail: "dial tcp 10.0.0.5:5000: i/o timeout", phases: PhaseTimings(dnsMs: 0.5, totalMs: 3000.2), checkedAt: cycle),
        ProbeResult(endpoint: Endpoint(registry: "ghcr.io", url: "https://ghcr.io", role: .upstream), errorClass: .ok,
                    phases: PhaseTimings(dnsMs: 3.0, connectMs: 14.0, tlsMs: 41.0, ttfbMs: 120.0, totalMs: 121.5), tls: tls, checkedAt: cycle),
        ProbeResult(endpoint: Endpoint(registry: "quay.io", url: "https://quay.io", role: .upstream), errorClass: .ok,
                    phases: PhaseTimings(dnsMs: 2.5, connectMs: 16.0, tlsMs: 44.0, ttfbMs: 150.0, totalMs: 152.0), tls: tls, checkedAt: cycle),
    ]
    return Report(
        host: HostIdentity(id: host, labels: ["zone": "z\(index % 3)", "egress": "198.51.100.\(index % 8)", "rack": "r\(index % 16)"]),
        agentVersion: "0.1.0", cycleStartedAt: cycle, intervalSeconds: 30, probes: probes,
        appliedGeneration: 0,
        mirrorPools: [hub: [MirrorSpec(url: "https://mirror-a.internal:5000", trusted: true), MirrorSpec(url: "https://mirror-b.internal:5000")]],
        eventSources: [EventSourceStatus(name: "docker-events", state: .active, detail: "streaming /var/run/docker.sock")])
}
