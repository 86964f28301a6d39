import Crypto
import Foundation
@testable import RegwatchShared

/// The values behind the golden fixtures in `Fixtures/wire`. A fixture must decode to exactly these.
enum WireSamples {
    static let t0 = Date(timeIntervalSince1970: 1_764_000_000) // 2025-11-24T16:00:00Z
    static let t1 = t0.addingTimeInterval(1.25)

    static let mirrorA = Endpoint(registry: "docker.io", url: "https://mirror-a:5000", role: .mirror)
    static let upstream = Endpoint(registry: "docker.io", url: "https://registry-1.docker.io", role: .upstream)

    static let report = Envelope(host: "node-a1", seq: 42, sentAt: t1, body: Report(
        host: HostIdentity(id: "node-a1", labels: ["zone": "z1", "egress": "203.0.113.7"]),
        agentVersion: "0.1.0", cycleStartedAt: t0, intervalSeconds: 30,
        probes: [
            ProbeResult(
                endpoint: mirrorA, errorClass: .tcpTimeout, detail: "dial tcp 10.0.0.5:5000: i/o timeout",
                phases: PhaseTimings(dnsMs: 1.2, connectMs: 3000, totalMs: 3000.4), checkedAt: t0
            ),
            ProbeResult(
                endpoint: upstream, errorClass: .ok,
                phases: PhaseTimings(dnsMs: 4.5, connectMs: 20.1, tlsMs: 61.7, ttfbMs: 90.2, totalMs: 95),
                tls: TLSState(trusted: true, daysLeft: 41, expiresAt: t0.addingTimeInterval(41 * 86400)),
                rateLimit: RateLimitState(limit: 100, remaining: 76, windowSeconds: 21600, source: "203.0.113.7"),
                manifest: ManifestState(reference: "library/alpine:latest", status: 200, digest: "sha256:" + String(repeating: "ab", count: 32)),
                checkedAt: t0
            ),
        ],
        runtimes: [
            RuntimeConfigState(runtime: .docker, mirrors: ["docker.io": ["https://mirror-a:5000", "https://mirror-b:5000"]], valid: true, hash: "sha256:0f1e"),
            RuntimeConfigState(runtime: .containerd, mirrors: [:], valid: false, detail: "certs.d/docker.io/hosts.toml:3:1: expected key", hash: ""),
        ],
        appliedGeneration: 7,
        mirrorPools: ["docker.io": [MirrorSpec(url: "https://mirror-a:5000", trusted: true), MirrorSpec(url: "https://mirror-b:5000", authenticated: true)]],
        eventSources: [EventSourceStatus(name: "docker-events", state: .active, detail: "streaming /var/run/docker.sock"), EventSourceStatus(name: "journal", state: .absent, detail: "systemd is not running on this host (no /run/systemd/system)")],
        spool: SpoolStatus(pending: 3, dropped: 17)
    ))

    static let pullEvents = Envelope(host: "node-a1", seq: 43, sentAt: t1, body: PullEventBatch(events: [
        PullEvent(seq: 1001, at: t0, image: "docker.io/library/alpine:3.20", registry: "docker.io", endpoint: "https://mirror-a:5000", result: .success, errorClass: .ok, source: "docker-events"),
        PullEvent(seq: 1002, at: t1, image: "docker.io/library/nginx:1.27", registry: "docker.io", result: .failure, errorClass: .rateLimited,
                  detail: "toomanyrequests: You have reached your pull rate limit.", source: "journal:docker"),
    ]))

    static let eventsAck = Envelope(host: WireProtocol.aggregatorSender, seq: 9, sentAt: t1, body: EventsAck(seqs: [1001, 1002]))

    /// A fixed test signing key, so the fixture's signature is reproducible (Ed25519 signing is deterministic).
    static var signingKey: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: Data((1...32).map { UInt8($0) })) }

    static let directive = FailoverDirective(
        generation: 8, epoch: 3, issuedAt: t0, expiresAt: t0.addingTimeInterval(600), target: "node-a1",
        mirrors: ["docker.io": ["https://mirror-b:5000", "https://mirror-a:5000"]], reason: "outage 12: endpoint_down https://mirror-a:5000"
    )

    static var failoverCommand: Envelope<SignedFailoverCommand> {
        Envelope(host: WireProtocol.aggregatorSender, seq: 10, sentAt: t1, body: try! CommandSigner(key: signingKey).sign(directive))
    }

    static let failoverAck = Envelope(host: "node-a1", seq: 44, sentAt: t1, body: FailoverAck(
        generation: 8, outcome: .rejected, reason: "mirror https://evil:5000 is not in this host's allowlist for docker.io", appliedGeneration: 7, appliedEpoch: 3
    ))

    static let join = Envelope(host: "node-a1", seq: 1, sentAt: t1, body: JoinRequest(
        host: HostIdentity(id: "node-a1", labels: ["zone": "z1", "egress": "203.0.113.7"]),
        publicKey: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", token: "rwj_0123456789abcdef0123456789abcdef01234567", agentVersion: "0.9.0"))
    static let joinResult = Envelope(host: WireProtocol.aggregatorSender, seq: 0, sentAt: t1, body: JoinResult(
        status: .pending, reason: "waiting for an operator: regwatch-aggregator keys accept --host node-a1", retryAfterSeconds: 30))
    static let rotate = Envelope(host: "node-a1", seq: 2, sentAt: t1, body: RotateRequest(newPublicKey: "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"))
    static let rotateResult = Envelope(host: WireProtocol.aggregatorSender, seq: 0, sentAt: t1, body: RotateResult(status: .accepted, reason: ""))
}
