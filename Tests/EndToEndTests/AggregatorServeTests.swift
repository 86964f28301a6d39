import Foundation
import GRDB
import RegwatchShared
import RegwatchTestSupport
import Testing

/// `regwatch-aggregator serve` and `regwatch-agent run` as real processes over CURVE on loopback,
/// against real registries (an upstream and a pull-through mirror), with the embedded SQLite file.
@Suite("aggregator serve", .serialized, .ownThread)
struct AggregatorServeTests {
    @Test("three agents in two zones: hosts with labels, healthy endpoints, Prometheus text that promtool accepts, the CLI reads the live database")
    func fleet() throws {
        let f = try Fleet()
        for (id, zone) in [("node-1", "z1"), ("node-2", "z2"), ("node-3", "z2")] { try f.addAgent(id, zone: zone) }
        try f.startAggregator()
        for id in ["node-1", "node-2", "node-3"] { try f.startAgent(id) }

        #expect(try f.eventually(20) { try f.json("/api/v1/hosts").count == 3 }, "hosts: \((try? f.get("/api/v1/hosts")) ?? "")")
        let hosts = try f.json("/api/v1/hosts")
        #expect(Set(hosts.compactMap { $0["id"] as? String }) == ["node-1", "node-2", "node-3"])
        let node2 = try #require(hosts.first { $0["id"] as? String == "node-2" })
        #expect((node2["labels"] as? [String: String])?["zone"] == "z2")
        #expect(node2["status"] as? String == "ok")
        #expect(node2["appliedGeneration"] as? Int == 0)
        #expect((node2["lastSeen"] as? String).flatMap(RFC3339.parse) != nil)

        // Two intervals later every agent has reported both endpoints, all healthy.
        #expect(try f.eventually(20) {
            let endpoints = try f.json("/api/v1/endpoints")
            return endpoints.count == 2 && endpoints.allSatisfy { $0["hostsReporting"] as? Int == 3 }
        }, "endpoints: \((try? f.get("/api/v1/endpoints")) ?? "")")
        for e in try f.json("/api/v1/endpoints") {
            #expect(e["errorClass"] as? String == "ok", "\(e)")
            #expect(e["hostsFailing"] as? Int == 0)
            #expect((e["p50Ms"] as? Double ?? -1) > 0)
            #expect(e.keys.contains("lowestRateLimitRemaining"))
        }
        #expect(Set(try f.json("/api/v1/endpoints").compactMap { $0["role"] as? String }) == ["upstream", "mirror"])

        // The fleet gauges refresh every few seconds.
        #expect(try f.eventually(15) {
            let m = try f.get("/metrics")
            return m.contains("regwatch_agents_connected 3") && m.contains("regwatch_probe_success{endpoint=\"http://127.0.0.1:\(f.mirror)\"} 1")
        }, "\((try? f.get("/metrics")) ?? "")")
        let metrics = try f.get("/metrics")
        try metrics.write(toFile: "\(f.dir)/metrics.txt", atomically: true, encoding: .utf8)
        let (status, _) = try RegistryHarness.spawnAndWait("/bin/sh", ["-c", "/usr/bin/promtool check metrics < \(f.dir)/metrics.txt > \(f.dir)/promtool.out 2>&1"])
        #expect(status == 0, "promtool: \((try? String(contentsOfFile: "\(f.dir)/promtool.out", encoding: .utf8)) ?? "")")
        #expect(metrics.contains("regwatch_reports_ingested_total"))
        // Every metric the Prometheus alert rules use is one this aggregator exports (a rename breaks this).
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let (rulesStatus, _) = try RegistryHarness.spawnAndWait("/bin/bash", ["\(repo)/scripts/test-prometheus.sh", "\(f.dir)/rule-metrics.txt"])
        #expect(rulesStatus == 0, "scripts/test-prometheus.sh failed")
        let used = try String(contentsOfFile: "\(f.dir)/rule-metrics.txt", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(!used.isEmpty)
        let exported = Set(metrics.split(separator: "\n").compactMap { line -> String? in
            if line.hasPrefix("# TYPE ") { return line.split(separator: " ").dropFirst(2).first.map(String.init) }
            return line.hasPrefix("#") ? nil : line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
        // Series made on first use (a rejection, a rate-limit reading) are absent from a healthy fleet's
        // page: those must at least be in the exporter's catalog, which the exposition takes its names from.
        for name in used {
            #expect(exported.contains(name) || MetricNames.help[name] != nil, "the rules use \(name), which this aggregator does not export")
        }
        #expect(used.filter(exported.contains).count >= 4, "most rule metrics should be on a healthy fleet's page: \(used)")
        #expect(metrics.contains("regwatch_probe_duration_seconds_bucket{phase=\"total\""))
        #expect(try f.get("/healthz") == "ok\n")

        let cli = try CLI.run("regwatch-aggregator", ["hosts", "--config", f.config, "--json"])
        #expect(cli.status == 0)
        #expect(cli.stdout.contains("\"node-3\""))
        let statusCLI = try CLI.run("regwatch-aggregator", ["status", "--config", f.config, "--json"])
        #expect(statusCLI.stdout.contains("\"hosts\" : 3"), "\(statusCLI.stdout)")

        // SIGTERM: a clean stop.
        f.aggregator?.terminate()
        #expect(f.eventually(10) { RegistryHarness.hasExited(f.aggregator) }, "aggregator did not stop on SIGTERM")
    }

    @Test("an unenrolled agent never appears; a revoked key stops being accepted on its open connection")
    func enrollment() throws {
        let f = try Fleet()
        try f.addAgent("node-a", zone: "z1")
        try f.addAgent("node-x", zone: "z1", enroll: false)
        try f.startAggregator()
        try f.startAgent("node-a")
        try f.startAgent("node-x")
        #expect(try f.eventually(20) { try f.json("/api/v1/hosts").count == 1 })
        usleep(3_000_000)
        #expect(try f.json("/api/v1/hosts").compactMap { $0["id"] as? String } == ["node-a"])
        // It joined and waits for an operator, and says so.
        #expect(f.eventually(10) { f.log("node-x").contains("join pending") }, "the unenrolled agent should say why it is not admitted")
        #expect(try f.pendingJoins().compactMap { $0["host"] as? String } == ["node-x"])

        #expect(try CLI.run("regwatch-aggregator", ["keys", "revoke", "--config", f.config, "--host", "node-a"]).status == 0)
        usleep(1_500_000)  // a report already in flight may still land
        let before = try f.json("/api/v1/hosts").first?["lastSeen"] as? String
        usleep(3_000_000)  // three more intervals
        let after = try f.json("/api/v1/hosts").first?["lastSeen"] as? String
        #expect(before != nil && before == after, "reports from a revoked key were still stored (\(before ?? "nil") -> \(after ?? "nil"))")
        // Still running and trying: nothing is stored because the key is refused, not because the agent died.
        #expect(!RegistryHarness.hasExited(f.agents["node-a"]), "the agent exited")
        #expect(f.eventually(10) { f.log("node-a").contains("refused this agent's key") })
    }

    @Test("kill -9 the aggregator 20 times while agents stream pull events: every event stored exactly once, integrity ok")
    func killNine() async throws {
        let f = try Fleet()
        let ids = ["node-k1", "node-k2"]
        for id in ids {
            FileManager.default.createFile(atPath: "\(f.dir)/\(id)-kubelet.log", contents: nil)
            try f.addAgent(id, zone: "z1", events: "{files: [\(f.dir)/\(id)-kubelet.log], filePoll: 50ms, resendAfter: 1s, journalUnits: [], spoolMaxBytes: 268435456}")
        }
        try f.startAggregator()
        for id in ids { try f.startAgent(id) }
        #expect(try f.eventually(20) { try f.json("/api/v1/hosts").count == 2 })

        // Writers: each agent's kubelet log gets pull failures at a few hundred lines a second.
        let writing = Writers(dir: f.dir, ids: ids)
        let writer = Task.detached { await writing.run() }

        var rng = SystemRandomNumberGenerator()
        for round in 0..<20 {
            usleep(UInt32.random(in: 200_000...900_000, using: &rng))
            f.kill9Aggregator()
            let check = try await DatabaseQueue(path: f.database).read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
            #expect(check == "ok", "round \(round): \(check ?? "nil")")
            try f.startAggregator()
        }
        await writing.stop()
        _ = await writer.value
        let written = await writing.counts

        // Let every agent's spool drain: the aggregator acknowledges after each commit.
        let drained = try f.eventually(60) {
            try ids.allSatisfy { id in
                let count = try DatabaseQueue(path: f.database).read { db in
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM pull_event WHERE hostId = ?", arguments: [id]) ?? 0
                }
                return count >= written[id, default: 0]
            }
        }
        #expect(drained, "not every written event reached the database")
        f.aggregator?.terminate()
        #expect(f.eventually(10) { RegistryHarness.hasExited(f.aggregator) })
        try await DatabaseQueue(path: f.database).read { db in
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
            for id in ids {
                let rows = try Row.fetchAll(db, sql: "SELECT seq, image FROM pull_event WHERE hostId = ? ORDER BY seq", arguments: [id])
                let images = rows.map { $0["image"] as String }
                #expect(rows.count == written[id], "\(id): \(rows.count) stored, \(written[id] ?? 0) written")
                #expect(Set(images).count == images.count, "\(id): an event stored twice")
                #expect(Set(images) == Set((0..<(written[id] ?? 0)).map { "registry.test:5000/\(id)/app:\($0)" }))
            }
        }
    }

    /// Appends kubelet pull-failure lines, each image unique, to every agent's log until stopped.
    actor Writers {
        let dir: String
        let ids: [String]
        var counts: [String: Int] = [:]
        var stopped = false

        init(dir: String, ids: [String]) {
            self.dir = dir
            self.ids = ids
        }

        func stop() { stopped = true }

        func run() async {
            let handles = ids.compactMap { FileHandle(forWritingAtPath: "\(dir)/\($0)-kubelet.log") }
            while !stopped {
                for (id, handle) in zip(ids, handles) {
                    var text = ""
                    for _ in 0..<5 {
                        let n = counts[id, default: 0]
                        counts[id] = n + 1
                        let image = "registry.test:5000/\(id)/app:\(n)"
                        text += "I1129 01:02:05.123456 1234 event.go:307] \"Event occurred\" reason=\"Failed\" message=\"Failed to pull image \\\"\(image)\\\": rpc error: code = Unknown desc = 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit\"\n"
                    }
                    handle.seekToEndOfFile()
                    handle.write(Data(text.utf8))
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            for h in handles { try? h.close() }
        }
    }
}
