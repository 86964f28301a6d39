import Foundation
import Logging
@testable import RegwatchShared
import Synchronization
import Testing

/// Admits exactly the keys in its table, binding each to its host id: the aggregator's rule in miniature.
struct TableAuthenticator: ZAPAuthenticator {
    let table: [CurvePublicKey: String]

    func authenticate(_ request: ZAPRequest) -> ZAPDecision {
        guard let key = request.clientKey, let host = table[key] else { return .deny(reason: "key not enrolled") }
        return .allow(hostID: host)
    }
}

enum Harness {
    static var logger: Logger {
        var l = Logger(label: "test")
        l.logLevel = ProcessInfo.processInfo.environment["REGWATCH_TEST_LOG"] != nil ? .trace : .critical
        return l
    }

    static func fastLimits() -> TransportLimits {
        var l = TransportLimits()
        l.lingerMs = 0
        return l
    }

    static func router(
        keys: CurveKeyPair?, authenticator: (any ZAPAuthenticator)?, limits: TransportLimits = fastLimits()
    ) throws -> (RouterServer, String) {
        let security: RouterSecurity = keys.map { .curve(serverKeys: $0) } ?? .insecure
        let server = RouterServer(configuration: .init(endpoint: "tcp://127.0.0.1:*", security: security, limits: limits), authenticator: authenticator, logger: logger)
        let endpoint = try server.start()
        return (server, endpoint)
    }

    static func dealer(endpoint: String, host: String, security: DealerSecurity, limits: TransportLimits = fastLimits()) throws -> DealerClient {
        let client = DealerClient(
            configuration: .init(endpoint: endpoint, hostID: host, security: security, limits: limits, backoff: ReconnectBackoff(initialMs: 50, maxMs: 400)),
            logger: logger
        )
        try client.start()
        return client
    }

    /// The first element of `sequence` matching `predicate` within `seconds`, or nil.
    static func first<S: AsyncSequence & Sendable>(
        _ sequence: S, within seconds: Double, where predicate: @escaping @Sendable (S.Element) -> Bool
    ) async -> S.Element? where S.Element: Sendable {
        await withTaskGroup(of: S.Element?.self) { group in
            group.addTask {
                do {
                    for try await element in sequence where predicate(element) { return element }
                } catch {}
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                return nil
            }
            let result = await group.next() ?? nil
            group.cancelAll()
            return result
        }
    }

    /// Collects messages from `stream` for `seconds`.
    static func collect(_ stream: InboundStream, for seconds: Double) async -> [InboundMessage] {
        let box = Mutex<[InboundMessage]>([])
        _ = await first(stream, within: seconds) { m in
            box.withLock { $0.append(m) }
            return false
        }
        return box.withLock { $0 }
    }

    static func envelope<B: WireBody>(_ body: B, host: String, seq: UInt64 = 1) throws -> [UInt8] {
        try WireCodec().encode(Envelope(host: host, seq: seq, sentAt: Date(timeIntervalSince1970: 1_764_000_000), body: body))
    }

    static func sampleReport(host: String) -> Report {
        Report(
            host: HostIdentity(id: host, labels: ["zone": "z1"]), agentVersion: "0.1.0",
            cycleStartedAt: Date(timeIntervalSince1970: 1_764_000_000), intervalSeconds: 30,
            probes: [ProbeResult(endpoint: Endpoint(registry: "docker.io", url: "https://mirror-a:5000", role: .mirror), errorClass: .ok, checkedAt: Date(timeIntervalSince1970: 1_764_000_000))]
        )
    }
}
