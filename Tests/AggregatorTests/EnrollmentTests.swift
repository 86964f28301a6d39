import Foundation
import Logging
@testable import RegwatchAggregator
import RegwatchShared
import Testing

func temporaryDirectory(_ name: String) -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("rw-\(name)-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

var quietLogger: Logger {
    Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
}

@Suite("Enrollment store")
struct EnrollmentStoreTests {
    let store = EnrollmentStore(keysDir: temporaryDirectory("enroll"))

    @Test("a batch of admissions: each decided as if alone after the ones before it, in one write")
    func batch() throws {
        let k = try (0..<4).map { _ in try CurveKeyPair.generate().publicKey }
        let outcomes = try store.accept([
            .init(host: "node-a1", key: k[0], via: "token t"),
            .init(host: "node-a1", key: k[0], via: "token t"),  // the same join twice
            .init(host: "node-a1", key: k[1], via: "token t"),  // another key for that host
            .init(host: "node-b1", key: k[0], via: "token t"),  // that key for another host
            .init(host: "not a host", key: k[2], via: "token t"),
            .init(host: "node-c1", key: k[3], via: "token t"),
        ])
        #expect(outcomes.map { try? $0.get() } == [.enrolled, .alreadyEnrolled, nil, nil, nil, .enrolled])
        #expect(throws: KeysFileError.hostHasAnotherKey(host: "node-a1", key: k[0].z85)) { try outcomes[2].get() }
        #expect(throws: KeysFileError.keyBelongsToAnotherHost(key: k[0].z85, host: "node-a1")) { try outcomes[3].get() }
        #expect(throws: KeysFileError.invalidHost("not a host")) { try outcomes[4].get() }
        #expect(try store.activeTable() == [k[0]: "node-a1", k[3]: "node-c1"])
        #expect(try store.records().map(\.via) == ["token t", "token t"])
        // A revoked key stays out, in a batch as alone.
        _ = try store.revoke(host: "node-c1")
        #expect(throws: KeysFileError.keyRevoked(k[3].z85)) { try store.accept([.init(host: "node-d1", key: k[3], via: "token t")])[0].get() }
    }

    @Test("accept binds one key to one host; a second key is refused until the first is revoked")
    func lifecycle() throws {
        let k1 = try CurveKeyPair.generate().publicKey
        let k2 = try CurveKeyPair.generate().publicKey
        #expect(try store.accept(host: "node-a1", key: k1) == .enrolled)
        #expect(try store.accept(host: "node-a1", key: k1) == .alreadyEnrolled)
        #expect(throws: KeysFileError.hostHasAnotherKey(host: "node-a1", key: k1.z85)) { try store.accept(host: "node-a1", key: k2) }
        #expect(throws: KeysFileError.keyBelongsToAnotherHost(key: k1.z85, host: "node-a1")) { try store.accept(host: "node-b1", key: k1) }
        #expect(try store.activeTable() == [k1: "node-a1"])
        let revoked = try store.revoke(host: "node-a1")
        #expect(revoked.key == k1.z85)
        #expect(throws: KeysFileError.notEnrolled("node-a1")) { try store.revoke(host: "node-a1") }
        #expect(try store.accept(host: "node-a1", key: k2) == .enrolled)
        #expect(try store.activeTable() == [k2: "node-a1"])
        let records = try store.records()
        #expect(records.count == 2)
        #expect(records[0].revokedAt != nil)
        var st = stat()
        stat(store.path, &st)
        #expect(st.st_mode & 0o777 == 0o600)
    }

    @Test("invalid host ids are refused")
    func invalidHost() throws {
        let k = try CurveKeyPair.generate().publicKey
        for bad in ["", "has space", "../etc", String(repeating: "a", count: 64), "-lead"] {
            #expect(throws: KeysFileError.invalidHost(bad)) { try store.accept(host: bad, key: k) }
        }
    }

    @Test("a corrupt enrollment file is an error naming it, and the authenticator keeps the last good table")
    func corrupt() throws {
        let k = try CurveKeyPair.generate().publicKey
        _ = try store.accept(host: "node-a1", key: k)
        let auth = EnrollmentAuthenticator(store: store, pending: PendingJoinStore(keysDir: (store.path as NSString).deletingLastPathComponent), logger: quietLogger)
        #expect(auth.authenticate(ZAPRequest(domain: "regwatch", address: "127.0.0.1", mechanism: "CURVE", clientKey: k)) == .allow(hostID: "node-a1"))
        try "{not json".write(toFile: store.path, atomically: true, encoding: .utf8)
        #expect(throws: KeysFileError.self) { try store.records() }
        #expect(auth.authenticate(ZAPRequest(domain: "regwatch", address: "127.0.0.1", mechanism: "CURVE", clientKey: k)) == .allow(hostID: "node-a1"))
    }

    @Test("concurrent accepts from several processes' worth of threads lose no enrollment")
    func concurrentAccepts() async throws {
        let keys = try (0..<16).map { _ in try CurveKeyPair.generate().publicKey }
        await withTaskGroup(of: Void.self) { group in
            for (i, k) in keys.enumerated() {
                group.addTask { _ = try? store.accept(host: "node-\(i)", key: k) }
            }
        }
        #expect(try store.activeTable().count == 16)
    }
}

@Suite("Aggregator config")
struct AggregatorConfigTests {
    @Test("contract keys parse; defaults fill the rest")
    func contract() throws {
        let c = try AggregatorConfig.parse(ConfigNode.parse("""
        listen: {zmq: "tcp://0.0.0.0:7450", http: "127.0.0.1:7451"}
        database: /var/lib/regwatch/regwatch.db
        keys: {dir: /etc/regwatch/keys}
        apiToken: /etc/regwatch/token
        insecure: false
        correlation: {window: 30s, openAfter: 2, recoveryHold: 5m, minHosts: 3, minZones: 2, staleAfter: 3}
        failover: {mode: auto, canaryShare: 0.1, maxChangesPerHostPerHour: 4}
        alerts: {webhooks: [{url: "http://127.0.0.1:9093/api/v2/alerts", format: alertmanager}]}
        """, file: "aggregator.yaml"))
        #expect(c.correlation.recoveryHold == .seconds(300))
        #expect(c.webhooks == [.init(url: "http://127.0.0.1:9093/api/v2/alerts", format: .alertmanager)])
        #expect(c.apiToken == "/etc/regwatch/token")
        let d = try AggregatorConfig.parse(ConfigNode.parse("", file: "empty.yaml"))
        #expect(d == AggregatorConfig())
        #expect(d.httpAddress == "127.0.0.1:7451")
        #expect(d.transport.acceptBacklog == 4096)
        #expect(try AggregatorConfig.parse(ConfigNode.parse("transport: {acceptBacklog: 8192}\n", file: "a.yaml")).transport.acceptBacklog == 8192)
    }

    @Test("errors name file, line and key")
    func errors() {
        #expect(throws: ConfigError(file: "a.yaml", line: 1, key: "failover.mode", message: "expected auto or advise, got \"yolo\"")) {
            try AggregatorConfig.parse(ConfigNode.parse("failover: {mode: yolo}\n", file: "a.yaml"))
        }
        #expect(throws: ConfigError(file: "a.yaml", line: 2, key: "correlation.minHost", message: "unknown key")) {
            try AggregatorConfig.parse(ConfigNode.parse("correlation:\n  minHost: 3\n", file: "a.yaml"))
        }
        #expect(throws: ConfigError(file: "a.yaml", line: 1, key: "transport.acceptBacklog", message: "0 is out of range 1...65535")) {
            try AggregatorConfig.parse(ConfigNode.parse("transport: {acceptBacklog: 0}\n", file: "a.yaml"))
        }
        #expect(throws: ConfigError(file: "a.yaml", line: 1, key: "transport.heartbeatInterval",
                                    message: "agents only: the aggregator sends no heartbeats (agents ping it, and TCP keepalive finds dead hosts); remove it")) {
            try AggregatorConfig.parse(ConfigNode.parse("transport: {heartbeatInterval: 5s}\n", file: "a.yaml"))
        }
        #expect(throws: ConfigError(file: "/nonexistent/a.yaml", key: "", message: "no such file")) {
            try AggregatorConfig.load("/nonexistent/a.yaml")
        }
    }
}

@Suite("Enrollment store: replace and rotate")
struct EnrollmentReplaceTests {
    let store = EnrollmentStore(keysDir: temporaryDirectory("enroll-replace"))

    @Test("--replace swaps a host's key in one write; a revoked key is never enrolled again; rotate needs the current key")
    func replaceAndRotate() throws {
        let (k1, k2, k3) = try (CurveKeyPair.generate().publicKey, CurveKeyPair.generate().publicKey, CurveKeyPair.generate().publicKey)
        _ = try store.accept(host: "node-a1", key: k1)
        #expect(try store.accept(host: "node-a1", key: k2, replace: true) == .replaced(oldKey: k1.z85))
        #expect(try store.activeTable() == [k2: "node-a1"])
        #expect(try store.tables().revoked == [k1])
        #expect(try store.records().first?.revokedReason == "replaced")
        #expect(throws: KeysFileError.keyRevoked(k1.z85)) { try store.accept(host: "node-b1", key: k1) }

        #expect(throws: KeysFileError.notEnrolled("node-a1")) { try store.rotate(host: "node-a1", from: k1, to: k3) }
        #expect(throws: KeysFileError.keyRevoked(k1.z85)) { try store.rotate(host: "node-a1", from: k2, to: k1) }
        try store.rotate(host: "node-a1", from: k2, to: k3)
        #expect(try store.activeTable() == [k3: "node-a1"])
        #expect(try store.records().map(\.revokedReason) == ["replaced", "rotated", nil])
        #expect(try store.records().last?.via == "rotate")
    }

    @Test("the ZAP policy: enrolled keys are bound to their host, revoked and rejected keys refused, others admitted to join only")
    func zap() throws {
        let dir = (store.path as NSString).deletingLastPathComponent
        let (k1, k2, k3, k4) = try (CurveKeyPair.generate().publicKey, CurveKeyPair.generate().publicKey, CurveKeyPair.generate().publicKey, CurveKeyPair.generate().publicKey)
        _ = try store.accept(host: "node-a1", key: k1)
        _ = try store.accept(host: "node-b1", key: k2)
        _ = try store.revoke(host: "node-b1")
        let pending = PendingJoinStore(keysDir: dir)
        _ = try pending.add(.init(host: "node-c1", key: k3.z85, labels: [:], agentVersion: "t", reason: "", token: "none", firstSeen: Date(), lastSeen: Date(), attempts: 1), limit: 10)
        _ = try pending.reject(host: "node-c1")
        let auth = EnrollmentAuthenticator(keysDir: dir, logger: quietLogger)
        func decide(_ k: CurvePublicKey) -> ZAPDecision { auth.authenticate(ZAPRequest(domain: "regwatch", address: "127.0.0.1", mechanism: "CURVE", clientKey: k)) }
        #expect(decide(k1) == .allow(hostID: "node-a1"))
        #expect(decide(k2) == .deny(reason: "key revoked"))
        #expect(decide(k3) == .deny(reason: "key rejected by an operator"))
        #expect(decide(k4) == .allow(hostID: JoiningPeer.routingID(for: k4)))
        #expect(JoiningPeer.key(of: JoiningPeer.routingID(for: k4)) == k4)
        #expect(!HostID.isValid(JoiningPeer.routingID(for: k4)))
    }
}
