import FoundationEssentials
import RegwatchShared

/// Builds the reports of emulated agents: ten endpoints over five registries, as a host with a Docker Hub
/// mirror pair and pull-through caches for the others would probe them, with the scripted faults applied.
public struct ReportFactory: Sendable {
    public struct Registry: Sendable {
        public var name: String
        public var upstream: String
        public var mirrors: [String]
    }

    /// The fleet's registries. docker.io's first mirror is the one `mirror-down` fails.
    public static let registries: [Registry] = [
        Registry(name: "docker.io", upstream: "https://registry-1.docker.io", mirrors: ["https://mirror-a.sim.test", "https://mirror-b.sim.test"]),
        Registry(name: "ghcr.io", upstream: "https://ghcr.io", mirrors: ["https://ghcr-cache.sim.test"]),
        Registry(name: "quay.io", upstream: "https://quay.io", mirrors: []),
        Registry(name: "registry.k8s.io", upstream: "https://registry.k8s.io", mirrors: ["https://k8s-cache.sim.test"]),
        Registry(name: "harbor.sim.test", upstream: "https://harbor.sim.test", mirrors: ["https://harbor-replica.sim.test"]),
    ]

    /// The mirror the `mirror-down` fault fails.
    public static var failingMirror: String { registries[0].mirrors[0] }

    /// Every host's allowlist, as its config would declare it.
    public static let mirrorPools: [String: [MirrorSpec]] = Dictionary(
        uniqueKeysWithValues: registries.filter { !$0.mirrors.isEmpty }.map { ($0.name, $0.mirrors.map { MirrorSpec(url: $0) }) })

    /// The order a host starts with: the pools as declared.
    public static let initialOrder: [String: [String]] = mirrorPools.mapValues { $0.map(\.url) }

    /// What is wrong for one agent this cycle.
    public struct Conditions: Sendable, Equatable {
        public var mirrorDown = false
        public var quotaExhausted = false
        public init(mirrorDown: Bool = false, quotaExhausted: Bool = false) {
            self.mirrorDown = mirrorDown
            self.quotaExhausted = quotaExhausted
        }
    }

    public init() {}

    public func report(
        identity: SimIdentity, interval: Duration, now: Date, applied: UInt64, order: [String: [String]],
        conditions: Conditions, pendingEvents: Int, rng: inout SimRandom
    ) -> Report {
        var probes: [ProbeResult] = []
        probes.reserveCapacity(10)
        for r in Self.registries {
            let quota = r.name == "docker.io"
                ? RateLimitState(limit: 100, remaining: conditions.quotaExhausted ? 0 : 60 + rng.int(40), windowSeconds: 21600, source: identity.labels["egress"])
                : nil
            probes.append(probe(Endpoint(registry: r.name, url: r.upstream, role: .upstream), now: now, failing: conditions.quotaExhausted && quota != nil, quota: quota, rng: &rng))
            for m in r.mirrors {
                probes.append(probe(Endpoint(registry: r.name, url: m, role: .mirror), now: now, failing: conditions.mirrorDown && m == Self.failingMirror, quota: nil, rng: &rng))
            }
        }
        let runtime = RuntimeConfigState(runtime: .containerd, mirrors: order, valid: true, hash: Self.hash(order))
        return Report(
            host: HostIdentity(id: identity.hostID, labels: identity.labels), agentVersion: RegwatchVersion.current,
            cycleStartedAt: now, intervalSeconds: interval.seconds, probes: probes, runtimes: [runtime], appliedGeneration: applied,
            mirrorPools: Self.mirrorPools, eventSources: [EventSourceStatus(name: "sim", state: .active)],
            spool: SpoolStatus(pending: pendingEvents, dropped: 0))
    }

    private func probe(_ endpoint: Endpoint, now: Date, failing: Bool, quota: RateLimitState?, rng: inout SimRandom) -> ProbeResult {
        if failing, quota == nil {
            return ProbeResult(
                endpoint: endpoint, errorClass: .tcpRefused, detail: "Failed to connect to \(endpoint.url.dropFirst(8)) port 443: Connection refused",
                phases: PhaseTimings(dnsMs: 0.4, totalMs: 1.2), checkedAt: now)
        }
        let dns = 0.3 + Double(rng.int(100)) / 100
        let connect = dns + 1 + Double(rng.int(400)) / 100
        let tls = connect + 8 + Double(rng.int(800)) / 100
        let ttfb = tls + 15 + Double(rng.int(2500)) / 100
        return ProbeResult(
            endpoint: endpoint, errorClass: failing ? .rateLimited : .ok,
            detail: failing ? "toomanyrequests: You have reached your unauthenticated pull rate limit" : "",
            phases: PhaseTimings(dnsMs: dns, connectMs: connect, tlsMs: tls, ttfbMs: ttfb, totalMs: ttfb + 2),
            tls: TLSState(trusted: true, daysLeft: 60), rateLimit: quota,
            manifest: ManifestState(reference: "library/busybox:latest", status: failing ? 429 : 200, digest: failing ? nil : "sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79"),
            checkedAt: now)
    }

    /// A short stable digest of a mirror order (FNV-1a), standing in for the agent's hash of the file.
    static func hash(_ order: [String: [String]]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for (k, v) in order.sorted(by: { $0.key < $1.key }) {
            for b in (k + "=" + v.joined(separator: ",") + ";").utf8 {
                h = (h ^ UInt64(b)) &* 0x100_0000_01b3
            }
        }
        return String(h, radix: 16)
    }

    /// A pull event as a kubelet log would give it.
    public func pullEvent(seq: UInt64, now: Date, rng: inout SimRandom) -> PullEvent {
        let images = ["docker.io/library/nginx:1.27", "ghcr.io/fluxcd/source-controller:v1.4.1", "registry.k8s.io/pause:3.10", "quay.io/prometheus/node-exporter:v1.8.2"]
        let image = images[rng.int(images.count)]
        let registry = String(image.prefix { $0 != "/" })
        return PullEvent(seq: seq, at: now, image: image, registry: registry, result: .success, errorClass: .ok, source: "sim")
    }
}

/// A small fast generator (xorshift64*) per agent: reports need variety, not cryptographic randomness.
public struct SimRandom: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    public mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Uniform in 0..<bound.
    public mutating func int(_ bound: Int) -> Int { Int(next() % UInt64(max(1, bound))) }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
