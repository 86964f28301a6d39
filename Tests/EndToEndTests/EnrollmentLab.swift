import CZeroMQ
import Foundation
import GRDB
import RegwatchAgent
import RegwatchShared
import RegwatchTestSupport
import Testing

/// Enrollment helpers on a ``Fleet``: bootstrap tokens, agents that join with only the aggregator's
/// public keys and a token file, the aggregator's metrics, and peers emulated in this process.
extension Fleet {
    /// A token-mode aggregator and one agent `id` that joined with a token and reports: the start of most
    /// enrollment tests. Returns the fleet and the token file.
    static func joined(_ id: String) throws -> (Fleet, String) {
        let f = try Fleet(extra: "enrollment: {mode: token}")
        let token = try f.createToken("t")
        try f.startAggregator()
        try f.addJoiningAgent(id, zone: "z1", tokenFile: token)
        try f.startAgent(id)
        try #require(try f.eventually(20) { try f.hostIDs() == [id] }, "\(id) did not join: \(f.log(id).suffix(800))")
        return (f, token)
    }

    /// Creates a token with `regwatch-aggregator tokens create` and writes it to `DIR/NAME.token`.
    @discardableResult
    func createToken(_ name: String, extra: [String] = []) throws -> String {
        let r = try CLI.run("regwatch-aggregator", ["tokens", "create", "--config", config, "--name", name] + extra)
        try #require(r.status == 0, "tokens create: \(r.stderr)")
        let path = "\(dir)/\(name).token"
        try r.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// An agent config with no key of its own: the server key, the signing key and a token file.
    /// Without a token, the agent has a key made by `keys generate` (the manual way) and joins with it.
    func addJoiningAgent(_ id: String, zone: String, tokenFile: String?, stateDir: String? = nil) throws {
        if tokenFile == nil {
            let r = try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(dir)/\(id)"])
            try #require(r.status == 0, "\(r.stderr)")
        }
        try """
        host: {id: \(id), labels: {zone: \(zone), egress: "198.51.100.\(zone.dropFirst())"}}
        aggregator: {endpoint: "tcp://\(zmqHost):\(zmqPort)", serverKey: \(dir)/keys/server.pub, signingKey: \(dir)/keys/signing.pub\(tokenFile.map { ", bootstrapToken: \($0)" } ?? ", clientKey: \(dir)/\(id)/agent.key")}
        interval: 1s
        stateDir: \(stateDir ?? "\(dir)/\(id)/state")
        \(registries)
        events: {journalUnits: []}
        """.write(toFile: "\(dir)/\(id).yaml", atomically: true, encoding: .utf8)
    }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(dir)/\(name).log", encoding: .utf8)) ?? ""
    }

    /// The value of one series in `/metrics` (`name{labels}` as Prometheus prints them); nil when the
    /// series is not there (a counter that never moved).
    func metric(_ name: String, _ labels: String = "") throws -> Double? {
        metricValue(in: try get("/metrics"), labels.isEmpty ? name : "\(name){\(labels)}")
    }

    func hostIDs() throws -> Set<String> {
        Set(try json("/api/v1/hosts").compactMap { $0["id"] as? String })
    }

    func keysList() throws -> [[String: Any]] {
        let r = try CLI.run("regwatch-aggregator", ["keys", "list", "--config", config, "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
    }

    func pendingJoins() throws -> [[String: Any]] {
        let r = try CLI.run("regwatch-aggregator", ["keys", "pending", "--config", config, "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
    }

    /// Stored reports of one host, straight from the database.
    func storedReports(_ host: String) throws -> Int {
        try DatabaseQueue(path: database).read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM probe_report WHERE hostId = ?", arguments: [host]) ?? 0
        }
    }

    var serverKey: CurvePublicKey {
        get throws { try KeyFiles.readCurvePublicKey("\(dir)/keys/server.pub") }
    }

    /// A peer in this process, over a real CURVE connection: `routingID` defaults to the joining id.
    func peer(_ keys: CurveKeyPair, hostID: String, routingID: String? = nil) throws -> DealerClient {
        let c = DealerClient(configuration: .init(
            endpoint: "tcp://\(zmqHost):\(zmqPort)", hostID: hostID, security: .curve(serverKey: try serverKey, clientKeys: keys),
            backoff: .init(initialMs: 100, maxMs: 500), routingID: routingID ?? JoiningPeer.routingID(for: keys.publicKey)), logger: .init(label: "test-peer"))
        try c.start()
        return c
    }

    /// Enrolls `keys` for `host` through `keys accept`, as an operator would.
    func enroll(_ keys: CurveKeyPair, host: String) throws {
        let path = "\(dir)/\(host).pub"
        try KeyFiles.curvePublicText(keys.publicKey, role: "agent").write(toFile: path, atomically: true, encoding: .utf8)
        let r = try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", config, "--host", host, "--key", path])
        try #require(r.status == 0, "\(r.stderr)")
    }
}

/// What `body` returns, or nil when it has not returned within `seconds` (it is then cancelled).
func within<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async -> T?) async -> T? {
    (try? await withDeadline(seconds, "a message") { await body() }) ?? nil
}

/// The first message from the aggregator that decodes to `T`, or a failure when none comes in `seconds`.
func firstMessage<T: Sendable>(from client: DealerClient, within seconds: Double, _ pick: @escaping @Sendable (WireMessage) -> T?) async throws -> T {
    let found = await within(seconds) { () -> T? in
        for await message in client.inbound {
            if let decoded = try? WireCodec().decode(message.payload), let value = pick(decoded) { return value }
        }
        return nil
    }
    return try #require(found, "no such message from the aggregator within \(seconds) s")
}

/// A report as an agent would send it, with one healthy probe; `at` is its cycle start (newest wins).
func emulatedReport(host: String, zone: String, at: Date) -> Report {
    Report(
        host: HostIdentity(id: host, labels: ["zone": zone, "egress": "198.51.100.9"]), agentVersion: "test", cycleStartedAt: at, intervalSeconds: 1,
        probes: [ProbeResult(
            endpoint: Endpoint(registry: "docker.io", url: "https://registry.test", role: .upstream), errorClass: .ok,
            phases: PhaseTimings(dnsMs: 1, connectMs: 2, totalMs: 3), checkedAt: at)],
        runtimes: [], appliedGeneration: 0, mirrorPools: [:], eventSources: [])
}

/// `count` keys that are not enrolled, each on its own CURVE connection with the joining routing id,
/// each sending one `join` with a token nobody issued: raw libzmq sockets in one context, `wave` at a
/// time, so thousands cost file descriptors and handshakes, not threads. Blocking: run it on a thread of
/// its own (``onOwnThread(_:)``).
func joinFlood(endpoint: String, serverKey: CurvePublicKey, count: Int, wave: Int = 250) throws -> Int {
    struct ZMQFailure: Error { let call: String; let errno: Int32 }
    guard let context = zmq_ctx_new() else { throw ZMQFailure(call: "zmq_ctx_new", errno: zmq_errno()) }
    defer { zmq_ctx_term(context) }
    // Closed sockets linger until their join is out: room for every one of them.
    zmq_ctx_set(context, ZMQ_MAX_SOCKETS, Int32(count + 64))
    var sent = 0
    var started = 0
    while started < count {
        var sockets: [UnsafeMutableRawPointer] = []
        // Every socket is closed, whatever happens, or zmq_ctx_term would wait for it forever.
        defer { for s in sockets { zmq_close(s) } }
        for _ in 0..<min(wave, count - started) {
            started += 1
            let keys = try CurveKeyPair.generate()
            guard let s = zmq_socket(context, ZMQ_DEALER) else { throw ZMQFailure(call: "zmq_socket", errno: zmq_errno()) }
            sockets.append(s)
            func set(_ option: Int32, _ text: String) { _ = zmq_setsockopt(s, option, text, text.utf8.count) }
            var linger: Int32 = 1000
            zmq_setsockopt(s, ZMQ_LINGER, &linger, 4)
            set(ZMQ_CURVE_SERVERKEY, serverKey.z85)
            set(ZMQ_CURVE_PUBLICKEY, keys.publicKey.z85)
            set(ZMQ_CURVE_SECRETKEY, keys.secretForBenchmark)
            set(ZMQ_ROUTING_ID, JoiningPeer.routingID(for: keys.publicKey))
            guard zmq_connect(s, endpoint) == 0 else { throw ZMQFailure(call: "zmq_connect", errno: zmq_errno()) }
            let host = "flood-\(started)"
            let frame = try WireCodec().encode(Envelope(host: host, seq: 1, sentAt: Date(), body: JoinRequest(
                host: HostIdentity(id: host), publicKey: keys.publicKey.z85, token: "rwj_notatoken\(started)", agentVersion: "flood")))
            if frame.withUnsafeBytes({ zmq_send(s, $0.baseAddress, $0.count, ZMQ_DONTWAIT) }) >= 0 { sent += 1 }
        }
        // Let the wave's handshakes and joins go out, then hang up.
        usleep(400_000)
    }
    return sent
}

/// Runs blocking work on a thread of its own, so it never holds one of the few threads of Swift's
/// cooperative pool that every async test in this process shares.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        let thread = Thread { c.resume(with: Result { try work() }) }
        thread.name = "test-blocking"
        thread.start()
    }
}

/// For tests whose aggregator is a `RouterServer` in this process (it answers no `join`): records the
/// agent as enrolled in its state directory, as a real aggregator's `join_result` would have.
func markEnrolled(stateDir: String, host: String, keyDir: String, serverPub: String) throws {
    try EnrollmentRecordFile(stateDir: stateDir).write(.init(
        host: host, publicKey: try KeyFiles.readCurvePublicKey("\(keyDir)/agent.pub").z85,
        serverKey: try KeyFiles.readCurvePublicKey(serverPub).z85, acceptedAt: Date()))
}
