import Foundation
import GRDB
import RegwatchShared
import RegwatchTestSupport
import Testing

/// Fleet enrollment with real processes: `regwatch-aggregator serve` over CURVE, `regwatch-agent run`
/// started with only the aggregator's public keys and a token file, the CLI an operator uses, and peers
/// emulated in this process over real connections.
@Suite("enrollment", .serialized, .ownThread)
struct EnrollmentEndToEndTests {
    static func isActive(_ record: [String: Any]) -> Bool { record["revokedAt"] == nil || record["revokedAt"] is NSNull }

    @Test("50 agents with only the server key, the signing key and a token file, one config for all (${NODE_NAME}): all join and report, one key per host")
    func fiftyAgentsJoin() throws {
        let f = try Fleet(extra: "enrollment: {mode: token}")
        let token = try f.createToken("fleet", extra: ["--ttl", "1h"])
        let shared = "\(f.dir)/shared-agent.yaml"
        try """
        host: {id: "${NODE_NAME}", labels: {zone: "${ZONE}", egress: "198.51.100.1"}}
        aggregator: {endpoint: "tcp://127.0.0.1:\(f.zmqPort)", serverKey: \(f.dir)/keys/server.pub, signingKey: \(f.dir)/keys/signing.pub, bootstrapToken: \(token)}
        interval: 2s
        stateDir: "\(f.dir)/nodes/${NODE_NAME}"
        \(f.registries)
        events: {journalUnits: []}
        """.write(toFile: shared, atomically: true, encoding: .utf8)
        try f.startAggregator()
        let started = Date()
        for i in 1...50 {
            f.agents["node-\(i)"] = try f.h.start("/usr/bin/env", ["NODE_NAME=node-\(i)", "ZONE=z\(i % 3 + 1)", CLI.binary("regwatch-agent"), "run", "--config", shared],
                                                  stderrPath: "\(f.dir)/node-\(i).log")
        }
        #expect(try f.eventually(120) { try f.hostIDs().count == 50 }, "hosts: \((try? f.hostIDs().count) ?? -1)")
        print("enrollment: 50 agents joined and reported in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        #expect(try f.hostIDs() == Set((1...50).map { "node-\($0)" }))

        let records = try f.keysList()
        #expect(records.count == 50)
        #expect(records.allSatisfy(Self.isActive))
        #expect(Set(records.compactMap { $0["host"] as? String }).count == 50)
        #expect(Set(records.compactMap { $0["key"] as? String }).count == 50)
        #expect(records.allSatisfy { $0["via"] as? String == "token fleet" })
        #expect(try f.metric("regwatch_enrollment_joins_total", "result=\"accepted\"") == 50)
        let tokens = try CLI.run("regwatch-aggregator", ["tokens", "list", "--config", f.config, "--json"])
        #expect(tokens.stdout.contains("\"uses\" : 50"), "\(tokens.stdout)")
        #expect(!tokens.stdout.contains(try String(contentsOfFile: token, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)), "tokens list shows the token")

        // Each host made its own key: 0600 in a 0700 directory; its public half matches the enrolled one.
        for i in [1, 25, 50] {
            let keyFile = "\(f.dir)/nodes/node-\(i)/agent.key"
            var st = stat()
            #expect(stat(keyFile, &st) == 0 && st.st_mode & 0o777 == 0o600, "\(keyFile) mode")
            #expect(stat("\(f.dir)/nodes/node-\(i)", &st) == 0 && st.st_mode & 0o777 == 0o700)
            let pub = try KeyFiles.readCurveKeyPair(keyFile).publicKey.z85
            #expect(records.first { $0["host"] as? String == "node-\(i)" }?["key"] as? String == pub)
        }
        // The secret never left the host: nothing in the aggregator's keys directory holds one.
        for file in try FileManager.default.contentsOfDirectory(atPath: "\(f.dir)/keys") where file != "server.key" && file != "signing.key" {
            #expect(!(try String(contentsOfFile: "\(f.dir)/keys/\(file)", encoding: .utf8)).contains("secret"), "\(file)")
        }
    }

    @Test("wrong, expired, revoked and exhausted tokens: never admitted, the reason in the agent's log and the aggregator's metric; a joining peer's reports, events, acks and unknown types are dropped and counted")
    func badTokens() async throws {
        let f = try Fleet(extra: "enrollment: {mode: token}")
        let expired = try f.createToken("short", extra: ["--ttl", "1s"])
        let revoked = try f.createToken("gone")
        #expect(try CLI.run("regwatch-aggregator", ["tokens", "revoke", "--config", f.config, "gone"]).status == 0)
        let once = try f.createToken("once", extra: ["--max-uses", "1"])
        let wrong = "\(f.dir)/wrong.token"
        try "rwj_\((0..<20).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined())\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        usleep(1_200_000)
        try f.startAggregator()

        try f.addJoiningAgent("node-first", zone: "z1", tokenFile: once)
        try f.startAgent("node-first")
        #expect(try f.eventually(30) { try f.hostIDs() == ["node-first"] })

        let cases = [("node-expired", expired, "has expired", "token_expired"), ("node-revoked", revoked, "was revoked", "token_revoked"),
                     ("node-exhausted", once, "maximum number of times", "token_exhausted"), ("node-wrong", wrong, "not recognised", "token_invalid")]
        for (id, file, _, _) in cases {
            try f.addJoiningAgent(id, zone: "z2", tokenFile: file)
            try f.startAgent(id)
        }
        for (id, _, reason, result) in cases {
            #expect(f.eventually(20) { f.log(id).contains("join refused") && f.log(id).contains(reason) }, "\(id): \(f.log(id).suffix(600))")
            #expect(try f.eventually(10) { (try f.metric("regwatch_enrollment_joins_total", "result=\"\(result)\"") ?? 0) >= 1 }, "\(result)")
            #expect(f.log("aggregator").contains(reason), "aggregator log lacks \(reason)")
        }
        // Several intervals later, still only the one agent that had the token's single use.
        usleep(3_000_000)
        #expect(try f.hostIDs() == ["node-first"])
        #expect(try f.keysList().filter(Self.isActive).count == 1)

        // A joining peer that sends everything it should not.
        let keys = try CurveKeyPair.generate()
        let peer = try f.peer(keys, hostID: "node-sneaky")
        defer { Task { await peer.shutdown() } }
        let codec = WireCodec()
        peer.trySend(try codec.encode(Envelope(host: "node-sneaky", seq: 1, sentAt: Date(), body: JoinRequest(
            host: HostIdentity(id: "node-sneaky"), publicKey: keys.publicKey.z85, token: "rwj_guess", agentVersion: "test"))))
        let answer = try await firstMessage(from: peer, within: 15) { m -> JoinResult? in if case .joinResult(let e) = m { e.body } else { nil } }
        #expect(answer.status == .refused)
        for host in ["node-sneaky", "node-first"] {
            peer.trySend(try codec.encode(Envelope(host: host, seq: 2, sentAt: Date(), body: emulatedReport(host: host, zone: "z9", at: Date()))))
        }
        peer.trySend(try codec.encode(Envelope(host: "node-sneaky", seq: 3, sentAt: Date(), body: PullEventBatch(events: [
            PullEvent(seq: 1, at: Date(), image: "alpine:3.20", registry: "docker.io", result: .failure, errorClass: .rateLimited, source: "test"),
        ]))))
        peer.trySend(try codec.encode(Envelope(host: "node-sneaky", seq: 4, sentAt: Date(), body: FailoverAck(
            generation: 1, outcome: .applied, reason: "", appliedGeneration: 1))))
        peer.trySend(Array(#"{"v":1,"type":"take_over","host":"node-sneaky","seq":5,"sentAt":"2026-01-01T00:00:00Z","body":{}}"#.utf8))
        for (type, n) in [("report", 2.0), ("pull_events", 1), ("failover_ack", 1), ("unknown", 1)] {
            #expect(try f.eventually(10) { (try f.metric("regwatch_enrollment_joining_dropped_total", "type=\"\(type)\"") ?? 0) >= n }, "\(type)")
        }
        #expect(try f.storedReports("node-sneaky") == 0)
        #expect(try !f.hostIDs().contains("node-sneaky"))
        #expect(try f.storedPullEvents() == 0)

        // An enrolled key on another host's routing id: nothing taken and its connection closed; the real
        // host, whose connection was handed over to the impostor for a moment, comes back.
        let other = try CurveKeyPair.generate()
        try f.enroll(other, host: "node-e")
        let impostor = try f.peer(other, hostID: "node-first", routingID: "node-first")
        defer { Task { await impostor.shutdown() } }
        #expect(await firstEvent(from: impostor, within: 10) { if case .connected = $0 { true } else { false } })
        impostor.trySend(try codec.encode(Envelope(host: "node-first", seq: 1, sentAt: Date(), body: emulatedReport(host: "node-first", zone: "z9", at: Date()))))
        #expect(await firstEvent(from: impostor, within: 10) { if case .disconnected = $0 { true } else { false } }, "the impostor was not disconnected")
        #expect(try f.eventually(10) { (try f.metric("regwatch_wire_rejected_total", "reason=\"wire.routing_id_mismatch\"") ?? 0) >= 1 })
        #expect(try f.storedReports("node-e") == 0)
        await impostor.shutdown()
        let afterImpostor = Date()
        #expect(try f.eventually(15) { try f.lastSeen("node-first") > afterImpostor }, "the real node-first did not come back")
    }

    @Test("manual mode: a join waits in keys pending; accepted, the agent reports at once; rejected, its key is refused from then on")
    func manualMode() throws {
        let f = try Fleet()
        let token = try f.createToken("t")
        try f.startAggregator()
        try f.addJoiningAgent("node-m", zone: "z1", tokenFile: token)
        try f.addJoiningAgent("node-r", zone: "z1", tokenFile: nil)
        try f.startAgent("node-m")
        try f.startAgent("node-r")
        #expect(try f.eventually(20) { Set(try f.pendingJoins().compactMap { $0["host"] as? String }) == ["node-m", "node-r"] })
        let pending = try f.pendingJoins()
        let m = try #require(pending.first { $0["host"] as? String == "node-m" })
        #expect(m["token"] as? String == "valid (t)")
        #expect((m["reason"] as? String ?? "").contains("manual"))
        #expect(pending.first { $0["host"] as? String == "node-r" }?["token"] as? String == "none")
        #expect(f.eventually(10) { f.log("node-m").contains("join pending") })
        usleep(2_500_000)
        #expect(try f.hostIDs().isEmpty, "a pending agent reported")
        #expect(try f.metric("regwatch_enrollment_pending") == 2)

        let accept = try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", f.config, "--host", "node-m"])
        #expect(accept.status == 0, "\(accept.stderr)")
        let accepted = Date()
        #expect(try f.eventually(10) { try f.hostIDs() == ["node-m"] })
        print("enrollment: accepted agent's first report \(String(format: "%.2f", Date().timeIntervalSince(accepted))) s after keys accept (interval 1 s)")
        #expect(Date().timeIntervalSince(accepted) <= 1.5, "the accepted agent did not report within one interval")

        let reject = try CLI.run("regwatch-aggregator", ["keys", "reject", "--config", f.config, "--host", "node-r"])
        #expect(reject.status == 0, "\(reject.stderr)")
        #expect(f.eventually(10) { f.log("node-r").contains("an operator rejected this key") })
        #expect(f.eventually(15) { f.log("node-r").contains("refused this agent's key") }, "the rejected key was not refused at the handshake")
        #expect(try f.pendingJoins().isEmpty)
        #expect(try f.hostIDs() == ["node-m"])
    }

    @Test("host id collision: a second key with a valid token stays pending while the enrolled agent reports; --replace switches, the old key is refused")
    func collision() throws {
        let (f, token) = try Fleet.joined("node-c")
        let oldKey = try #require(try f.keysList().first?["key"] as? String)

        // The same host id from a reinstalled disk: a new state dir, so a new key.
        try f.addJoiningAgent("node-c", zone: "z1", tokenFile: token, stateDir: "\(f.dir)/node-c-reinstalled")
        try FileManager.default.moveItem(atPath: "\(f.dir)/node-c.yaml", toPath: "\(f.dir)/node-c-b.yaml")
        f.agents["node-c-b"] = try f.h.start(CLI.binary("regwatch-agent"), ["run", "--config", "\(f.dir)/node-c-b.yaml"], stderrPath: "\(f.dir)/node-c-b.log")
        #expect(try f.eventually(20) { try f.pendingJoins().contains { $0["host"] as? String == "node-c" } })
        let newKey = try #require(try f.pendingJoins().first?["key"] as? String)
        #expect(newKey != oldKey)
        #expect((try f.pendingJoins().first?["reason"] as? String ?? "").contains("another key"))

        // The enrolled agent keeps reporting meanwhile.
        let seen1 = try f.lastSeen("node-c")
        #expect(try f.eventually(10) { try f.lastSeen("node-c") > seen1 })
        #expect(try f.keysList().filter(Self.isActive).compactMap { $0["key"] as? String } == [oldKey])

        let replace = try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", f.config, "--host", "node-c", "--replace"])
        #expect(replace.status == 0, "\(replace.stderr)")
        #expect(replace.stdout.contains("replacing \(oldKey)"))
        let replaced = Date()
        #expect(try f.keysList().filter(Self.isActive).compactMap { $0["key"] as? String } == [newKey])
        #expect(try f.keysList().first { $0["key"] as? String == oldKey }?["revokedReason"] as? String == "replaced")
        #expect(f.eventually(15) { f.log("node-c").contains("refused this agent's key") }, "the old key was not refused: \(f.log("node-c").suffix(800))")
        #expect(f.eventually(15) { f.log("node-c-b").contains("enrolled: the aggregator accepted") })
        #expect(try f.eventually(15) { try f.lastSeen("node-c") > replaced.addingTimeInterval(1) }, "the new key does not report")
        #expect(try (f.metric("regwatch_enrollment_disconnects_total") ?? 0) >= 1)
    }

    @Test("revoke closes the open connection within a second; rotate swaps the key on the live agent and the old key is refused")
    func revokeAndRotate() async throws {
        let (f, _) = try Fleet.joined("node-k")
        let keyFile = "\(f.dir)/node-k/state/agent.key"
        let oldPair = try KeyFiles.readCurveKeyPair(keyFile)

        let rotate = try CLI.run("regwatch-agent", ["keys", "rotate", "--config", "\(f.dir)/node-k.yaml"])
        #expect(rotate.status == 0, "\(rotate.stderr)")
        let rotated = Date()
        let newPair = try KeyFiles.readCurveKeyPair(keyFile)
        #expect(newPair.publicKey != oldPair.publicKey)
        #expect(rotate.stdout.contains(newPair.publicKey.z85))
        let records = try f.keysList()
        #expect(records.first { $0["key"] as? String == oldPair.publicKey.z85 }?["revokedReason"] as? String == "rotated")
        #expect(records.filter(Self.isActive).compactMap { $0["key"] as? String } == [newPair.publicKey.z85])
        #expect(try f.eventually(10) { try f.lastSeen("node-k") > rotated.addingTimeInterval(0.5) }, "no report with the new key")
        // The old key is refused at the handshake.
        let impostor = try f.peer(oldPair, hostID: "node-k", routingID: "node-k")
        let refusal = await firstEvent(from: impostor, within: 10) { if case .handshakeFailed(.auth) = $0 { true } else { false } }
        #expect(refusal, "the old key was admitted after rotation")
        await impostor.shutdown()

        let disconnectsBefore = f.log("node-k").components(separatedBy: "disconnected from aggregator").count
        #expect(try CLI.run("regwatch-aggregator", ["keys", "revoke", "--config", f.config, "--host", "node-k"]).status == 0)
        let revoked = Date()
        let dropped = f.eventually(5) { f.log("node-k").components(separatedBy: "disconnected from aggregator").count > disconnectsBefore }
        let took = Date().timeIntervalSince(revoked)
        print("enrollment: revoked connection closed \(String(format: "%.2f", took)) s after keys revoke")
        #expect(dropped && took <= 1.0, "connection not dropped within 1 s (\(took) s)")
        usleep(500_000)
        let last = try f.lastSeen("node-k")
        usleep(3_000_000)
        #expect(try f.lastSeen("node-k") == last, "reports from a revoked key were stored")
        #expect(f.eventually(10) { f.log("node-k").contains("refused this agent's key") })
    }

    @Test("a restart keeps the generated key and does not join again; a deleted key file means a new key, which waits as a second key for the host")
    func restartAndLostKey() throws {
        let (f, _) = try Fleet.joined("node-s")
        let keyFile = "\(f.dir)/node-s/state/agent.key"
        let first = try KeyFiles.readCurveKeyPair(keyFile).publicKey

        f.agents["node-s"]?.terminate()
        #expect(f.eventually(10) { RegistryHarness.hasExited(f.agents["node-s"]) })
        try f.startAgent("node-s")
        let restarted = Date()
        #expect(try f.eventually(15) { try f.lastSeen("node-s") > restarted })
        #expect(try KeyFiles.readCurveKeyPair(keyFile).publicKey == first)
        #expect(try f.metric("regwatch_enrollment_joins_total", "result=\"accepted\"") == 1)
        #expect(try f.metric("regwatch_enrollment_joins_total", "result=\"already_enrolled\"") == nil, "the restarted agent joined again")
        #expect(try f.keysList().count == 1)

        f.agents["node-s"]?.terminate()
        #expect(f.eventually(10) { RegistryHarness.hasExited(f.agents["node-s"]) })
        try FileManager.default.removeItem(atPath: keyFile)
        try f.startAgent("node-s")
        #expect(try f.eventually(20) { try f.pendingJoins().contains { $0["host"] as? String == "node-s" } })
        let second = try KeyFiles.readCurveKeyPair(keyFile).publicKey
        #expect(second != first)
        #expect(try f.pendingJoins().first?["key"] as? String == second.z85)
        #expect(try f.keysList().filter(Self.isActive).compactMap { $0["key"] as? String } == [first.z85])
        let last = try f.lastSeen("node-s")
        usleep(3_000_000)
        #expect(try f.lastSeen("node-s") == last, "the new, unaccepted key's reports were stored")
    }

    @Test("an agent stopped after the aggregator took its rotated key, before it replaced the file: refused with the old key, it adopts the waiting one and reports")
    func rotationInterrupted() throws {
        let (f, _) = try Fleet.joined("node-r")
        f.agents["node-r"]?.terminate()
        #expect(f.eventually(10) { RegistryHarness.hasExited(f.agents["node-r"]) })

        // The rotation the agent did not finish: the new key waits beside the old one...
        let keyFile = "\(f.dir)/node-r/state/agent.key"
        let rotate = try CLI.run("regwatch-agent", ["keys", "rotate", "--config", "\(f.dir)/node-r.yaml", "--wait", "1s"])
        #expect(rotate.status == 1, "\(rotate.stderr)")
        let waiting = try KeyFiles.readCurveKeyPair(keyFile + ".next").publicKey
        // ...and the aggregator already holds it instead of the old one.
        try KeyFiles.curvePublicText(waiting, role: "agent").write(toFile: "\(f.dir)/next.pub", atomically: true, encoding: .utf8)
        #expect(try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", f.config, "--host", "node-r", "--key", "\(f.dir)/next.pub", "--replace"]).status == 0)

        try f.startAgent("node-r")
        let restarted = Date()
        #expect(try f.eventually(20) { try f.lastSeen("node-r") > restarted }, "\(f.log("node-r").suffix(1500))")
        #expect(try KeyFiles.readCurveKeyPair(keyFile).publicKey == waiting)
        #expect(!FileManager.default.fileExists(atPath: keyFile + ".next"))
        #expect(f.log("node-r").contains("a rotated key was waiting"))
    }

    @Test("join flood: 5,000 unknown keys with bad tokens while 20 enrolled agents report; no enrolled report lost, the pending list at its bound, memory bounded")
    func flood() async throws {
        let f = try Fleet(extra: "enrollment: {maxPending: 200}")
        try f.startAggregator()
        let aggregatorPID = try #require(f.aggregator?.processIdentifier)
        var peers: [(String, DealerClient)] = []
        for i in 1...20 {
            let keys = try CurveKeyPair.generate()
            let host = "enrolled-\(i)"
            try f.enroll(keys, host: host)
            peers.append((host, try f.peer(keys, hostID: host, routingID: host)))
        }
        let reporting = Reporting(peers: peers)
        let reporter = Task.detached { await reporting.run() }
        let endpoint = "tcp://127.0.0.1:\(f.zmqPort)"
        let serverKey = try f.serverKey
        let flood = Task { try await onOwnThread { try joinFlood(endpoint: endpoint, serverKey: serverKey, count: 5000) } }
        let started = Date()
        let sent = try await flood.value
        let floodSeconds = Date().timeIntervalSince(started)
        await reporting.stop()
        _ = await reporter.value
        #expect(sent == 5000)
        let counts = await reporting.sent
        #expect(counts.values.allSatisfy { $0 > 10 })

        // Every report of an enrolled agent is stored.
        let stored = try f.eventually(30) { try peers.allSatisfy { host, _ in try f.storedReports(host) == counts[host] } }
        #expect(stored, "stored: \(peers.map { "\($0.0)=\((try? f.storedReports($0.0)) ?? -1)/\(counts[$0.0] ?? -1)" })")
        // The pending list fills to its bound and no further.
        #expect(try f.eventually(30) { try f.pendingJoins().count == 200 })
        #expect(try f.metric("regwatch_enrollment_pending") == 200)
        let refused = try ["rate_limited", "pending_full", "busy"].reduce(0.0) { $0 + (try f.metric("regwatch_enrollment_joins_total", "result=\"\($1)\"") ?? 0) }
        #expect(refused > 0)
        let rss = try String(contentsOfFile: "/proc/\(aggregatorPID)/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.map(String.init) ?? "?"
        print("enrollment flood: 5000 joins in \(String(format: "%.1f", floodSeconds)) s; stored \(counts.values.reduce(0, +)) of \(counts.values.reduce(0, +)) enrolled reports; pending 200; refused \(Int(refused)); aggregator peak \(rss)")
        let peakKiB = Int(rss.split(separator: " ").dropFirst().first ?? "") ?? Int.max
        #expect(peakKiB < 512 * 1024, "aggregator peak RSS \(rss)")
        for (_, p) in peers { await p.shutdown() }
    }

    /// 20 enrolled peers sending a report each every 100 ms until stopped, counting what they sent.
    actor Reporting {
        let peers: [(String, DealerClient)]
        var sent: [String: Int] = [:]
        var running = true
        init(peers: [(String, DealerClient)]) { self.peers = peers }
        func stop() { running = false }
        func run() async {
            let codec = WireCodec()
            var seq: UInt64 = 0
            while running {
                seq += 1
                for (host, peer) in peers {
                    guard let frame = try? codec.encode(Envelope(host: host, seq: seq, sentAt: Date(), body: emulatedReport(host: host, zone: "z1", at: Date()))) else { continue }
                    if peer.trySend(frame) { sent[host, default: 0] += 1 }
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}

extension Fleet {
    func lastSeen(_ host: String) throws -> Date {
        let h = try #require(try json("/api/v1/hosts").first { $0["id"] as? String == host }, "\(host) not in /api/v1/hosts")
        return try #require((h["lastSeen"] as? String).flatMap(RFC3339.parse))
    }

    func storedPullEvents() throws -> Int {
        try GRDB.DatabaseQueue(path: database).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM pull_event") ?? 0 }
    }
}

/// Whether `client` sees a transport event matching `match` within `seconds`.
func firstEvent(from client: DealerClient, within seconds: Double, _ match: @escaping @Sendable (TransportEvent) -> Bool) async -> Bool {
    await within(seconds) { () -> Bool? in
        for await event in client.events where match(event) { return true }
        return nil
    } ?? false
}
