import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// Two `regwatch-aggregator serve` on one PostgreSQL database, agents listing both: one leads, the other
/// follows; kill -9 the leader and the other leads with the next term while every agent reports through it.
@Suite("aggregators sharing PostgreSQL", .serialized, .ownThread)
struct HAServeTests {
    /// `/healthz`'s role headers on one aggregator: (role, epoch), nil when it does not answer.
    static func role(_ h: RegistryHarness, http: Int) -> (String, Int)? {
        guard let head = try? h.run("/usr/bin/curl", ["-sf", "-D", "-", "-o", "/dev/null", "http://127.0.0.1:\(http)/healthz"]) else { return nil }
        var role: String?, epoch: Int?
        for line in head.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0].lowercased() == "regwatch-role" { role = parts[1] }
            if parts[0].lowercased() == "regwatch-leader-epoch" { epoch = Int(parts[1]) }
        }
        guard let role, let epoch else { return nil }
        return (role, epoch)
    }

    /// A second aggregator's config beside the fleet's: the same database and keys, its own ports.
    static func secondConfig(_ f: Fleet) throws -> (path: String, zmq: Int, http: Int) {
        let zmq2 = RegistryHarness.freePort(), http2 = RegistryHarness.freePort()
        let config2 = "\(f.dir)/aggregator-2.yaml"
        try String(contentsOfFile: f.config, encoding: .utf8)
            .replacingOccurrences(of: "tcp://127.0.0.1:\(f.zmqPort)", with: "tcp://127.0.0.1:\(zmq2)")
            .replacingOccurrences(of: "127.0.0.1:\(f.httpPort)", with: "127.0.0.1:\(http2)")
            .write(toFile: config2, atomically: true, encoding: .utf8)
        return (config2, zmq2, http2)
    }

    @Test("one leader, one follower; kill -9 the leader: the follower leads with epoch 2 and every agent reports through it")
    func killLeader() throws {
        let pg = try PostgresServer("ha")
        let f = try Fleet(extra: "leader: {checkInterval: 500ms}", postgres: pg)
        let (config2, zmq2, http2) = try Self.secondConfig(f)
        let ids = ["node-1", "node-2", "node-3", "node-4"]
        for (i, id) in ids.enumerated() {
            try f.addAgent(id, zone: i < 2 ? "z1" : "z2")
            let yaml = try String(contentsOfFile: "\(f.dir)/\(id).yaml", encoding: .utf8)
                .replacingOccurrences(of: "endpoint: \"tcp://127.0.0.1:\(f.zmqPort)\"",
                                      with: "endpoints: [\"tcp://127.0.0.1:\(f.zmqPort)\", \"tcp://127.0.0.1:\(zmq2)\"]")
            #expect(yaml.contains("endpoints: ["))
            try yaml.write(toFile: "\(f.dir)/\(id).yaml", atomically: true, encoding: .utf8)
        }

        try f.startAggregator()
        #expect(f.eventually(10) { Self.role(f.h, http: f.httpPort).map { $0 == ("leader", 1) } ?? false }, "aggregator 1 does not lead")
        let second = try f.h.start(CLI.binary("regwatch-aggregator"), ["serve", "--config", config2], stderrPath: "\(f.dir)/aggregator-2.log")
        defer { if !RegistryHarness.hasExited(second) { kill(second.processIdentifier, SIGKILL) } }
        #expect(RegistryHarness.waitForPort(http2), "aggregator 2's HTTP API did not come up")
        #expect(f.eventually(10) { Self.role(f.h, http: http2).map { $0 == ("follower", 1) } ?? false }, "aggregator 2 does not follow term 1")
        #expect(try metricValue(in: f.h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(http2)/metrics"]), "regwatch_leader") == 0)

        for id in ids { try f.startAgent(id) }
        // Both aggregators answer from the one database.
        #expect(try f.eventually(20) { try f.json("/api/v1/hosts").count == 4 }, "hosts: \((try? f.get("/api/v1/hosts")) ?? "")")
        let hosts2 = try f.h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(http2)/api/v1/hosts"])
        #expect(ids.allSatisfy { hosts2.contains("\"\($0)\"") })

        let killedAt = Date()
        f.kill9Aggregator()
        #expect(f.eventually(10) { Self.role(f.h, http: http2).map { $0 == ("leader", 2) } ?? false },
                "aggregator 2 did not take the lead: \(String(describing: Self.role(f.h, http: http2)))")
        let tookOver = Date().timeIntervalSince(killedAt)
        #expect(try metricValue(in: f.h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(http2)/metrics"]), "regwatch_leader_epoch") == 2)

        // Every agent reports through aggregator 2: each host's lastSeen passes the kill.
        func allReportedSince(_ t: Date) throws -> Bool {
            let data = Data(try f.h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(http2)/api/v1/hosts"]).utf8)
            let hosts = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
            return hosts.count == 4 && hosts.allSatisfy { h in ((h["lastSeen"] as? String).flatMap(RFC3339.parse) ?? .distantPast) > t.addingTimeInterval(1) }
        }
        #expect(try f.eventually(30) { try allReportedSince(killedAt) }, "not every agent reports through aggregator 2")
        let allBack = Date().timeIntervalSince(killedAt)
        print("ha: new leader \(String(format: "%.1f", tookOver)) s after kill -9, every agent reporting through the other \(String(format: "%.1f", allBack)) s after")
        let log = try String(contentsOfFile: "\(f.dir)/aggregator-2.log", encoding: .utf8)
        #expect(log.contains("leading: correlation and failover planning run here"))
    }

    @Test("enrollments live in the database: a token made through one aggregator enrolls an agent joining the other; revoked through the first, the other closes its connection")
    func sharedEnrollments() throws {
        let pg = try PostgresServer("ha-enroll")
        let f = try Fleet(extra: "enrollment: {mode: token}\nleader: {checkInterval: 500ms}", postgres: pg)
        let (config2, zmq2, http2) = try Self.secondConfig(f)
        let token = try f.createToken("t", extra: ["--max-uses", "1"])
        try f.startAggregator()
        let second = try f.h.start(CLI.binary("regwatch-aggregator"), ["serve", "--config", config2], stderrPath: "\(f.dir)/aggregator-2.log")
        defer { if !RegistryHarness.hasExited(second) { kill(second.processIdentifier, SIGKILL) } }
        #expect(RegistryHarness.waitForPort(http2), "aggregator 2's HTTP API did not come up")

        // The agent knows only aggregator 2, which never saw the token being made.
        try f.addJoiningAgent("node-j", zone: "z1", tokenFile: token)
        let yaml = try String(contentsOfFile: "\(f.dir)/node-j.yaml", encoding: .utf8)
            .replacingOccurrences(of: "endpoint: \"tcp://127.0.0.1:\(f.zmqPort)\"", with: "endpoint: \"tcp://127.0.0.1:\(zmq2)\"")
        #expect(yaml.contains(":\(zmq2)"))
        try yaml.write(toFile: "\(f.dir)/node-j.yaml", atomically: true, encoding: .utf8)
        try f.startAgent("node-j")
        #expect(try f.eventually(20) { try f.hostIDs() == ["node-j"] }, "node-j did not join through aggregator 2: \(f.log("node-j").suffix(800))")
        // Aggregator 1's CLI sees the enrollment and the token's use; nothing is in keys.dir's files.
        let records = try f.keysList()
        #expect(records.filter(EnrollmentEndToEndTests.isActive).compactMap { $0["host"] as? String } == ["node-j"])
        #expect(records.first?["via"] as? String == "token t")
        let tokens = try CLI.run("regwatch-aggregator", ["tokens", "list", "--config", config2, "--json"])
        #expect(tokens.status == 0 && tokens.stdout.contains("\"uses\" : 1"), "\(tokens.stdout) \(tokens.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(f.dir)/keys/agents.json"))
        #expect(!FileManager.default.fileExists(atPath: "\(f.dir)/keys/tokens.json"))

        let disconnectsBefore = f.log("node-j").components(separatedBy: "disconnected from aggregator").count
        #expect(try CLI.run("regwatch-aggregator", ["keys", "revoke", "--config", f.config, "--host", "node-j"]).status == 0)
        let revoked = Date()
        #expect(f.eventually(10) { f.log("node-j").components(separatedBy: "disconnected from aggregator").count > disconnectsBefore },
                "aggregator 2 kept the revoked agent's connection")
        let took = Date().timeIntervalSince(revoked)
        #expect(f.eventually(10) { f.log("node-j").contains("refused this agent's key") })
        print("ha-enrollment: a token made through aggregator 1 enrolled an agent joining aggregator 2; revoked through aggregator 1's CLI, aggregator 2 closed the connection \(String(format: "%.2f", took)) s later")
    }
}
