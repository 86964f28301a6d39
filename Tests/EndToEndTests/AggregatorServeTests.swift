import Foundation
import GRDB
import RegwatchShared
import RegwatchTestSupport
import Testing

/// `regwatch-aggregator serve` and `regwatch-agent run` as real processes over CURVE on loopback,
/// against real registries (an upstream and a pull-through mirror), with the embedded SQLite file (and,
/// for the fleet test, also with a PostgreSQL database).
@Suite("aggregator serve", .serialized, .ownThread)
struct AggregatorServeTests {
    @Test("three agents in two zones: hosts with labels, healthy endpoints, Prometheus text that promtool accepts, the CLI reads the live database",
          arguments: ["sqlite", "postgres"])
    func fleet(_ backend: String) throws {
        let f = try Fleet(postgres: backend == "postgres" ? PostgresServer("serve") : nil)
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
        // The operator-surface gauges: hosts per status, the failover state, no spool drops.
        #expect(try f.eventually(15) { try f.metric("regwatch_hosts{status=\"ok\"}") == 3 }, "\((try? f.get("/metrics")) ?? "")")
        let surface = try f.get("/metrics")
        for series in ["regwatch_hosts{status=\"stale\"}", "regwatch_failover_frozen", "regwatch_failover_blocked",
                       "regwatch_failover_frozen_since_timestamp_seconds", "regwatch_failover_plans{state=\"rolling\"}",
                       "regwatch_agent_events_dropped_total"] {
            let value: Double? = metricValue(in: surface, series)
            #expect(value == 0, "\(series): \(value.map { "\($0)" } ?? "missing")")
        }
        // Every metric the Prometheus alert rules and the Grafana dashboard use is one this aggregator
        // exports (a rename breaks this).
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
            #expect(exported.contains(name) || MetricNames.help[name] != nil, "the rules or the Grafana dashboard use \(name), which this aggregator does not export")
        }
        #expect(used.filter(exported.contains).count >= 4, "most rule metrics should be on a healthy fleet's page: \(used)")
        #expect(metrics.contains("regwatch_probe_duration_seconds_bucket{phase=\"total\""))
        #expect(try f.get("/healthz") == "ok\n")

        let cli = try CLI.run("regwatch-aggregator", ["hosts", "--config", f.config, "--json"])
        #expect(cli.status == 0)
        #expect(cli.stdout.contains("\"node-3\""))
        let statusCLI = try CLI.run("regwatch-aggregator", ["status", "--config", f.config, "--json"])
        #expect(statusCLI.stdout.contains("\"hosts\" : 3"), "\(statusCLI.stdout)")

        // Decommissioning a host: an unknown id changes nothing; a revoked, stopped host is forgotten and
        // stops counting (it would otherwise be stale for good).
        let unknown = try CLI.run("regwatch-aggregator", ["hosts", "forget", "--config", f.config, "node-3", "node-9"])
        #expect(unknown.status != 0 && unknown.stderrLines.count == 1 && unknown.stderr.contains("no such host: \"node-9\""), "\(unknown.stderr)")
        #expect(try f.json("/api/v1/hosts").count == 3)
        f.agents["node-3"]?.terminate()
        #expect(f.eventually(10) { RegistryHarness.hasExited(f.agents["node-3"]) })
        #expect(try CLI.run("regwatch-aggregator", ["keys", "revoke", "--config", f.config, "--host", "node-3"]).status == 0)
        let forget = try CLI.run("regwatch-aggregator", ["hosts", "forget", "--config", f.config, "node-3"])
        #expect(forget.status == 0 && forget.stdout.contains("forgot host node-3"), "\(forget.stdout)\(forget.stderr)")
        #expect(try Set(f.json("/api/v1/hosts").compactMap { $0["id"] as? String }) == ["node-1", "node-2"])
        #expect(try f.eventually(15) {
            try ["ok", "problems", "stale", "disconnected"].compactMap { try f.metric("regwatch_hosts{status=\"\($0)\"}") }.reduce(0, +) == 2
        }, "regwatch_hosts still counts the forgotten host")

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
        let writing = PullLogWriters(ids: ids) { "\(f.dir)/\($0)-kubelet.log" }
        writing.start()

        var rng = SystemRandomNumberGenerator()
        for round in 0..<20 {
            usleep(UInt32.random(in: 200_000...900_000, using: &rng))
            f.kill9Aggregator()
            let check = try await DatabaseQueue(path: f.database).read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
            #expect(check == "ok", "round \(round): \(check ?? "nil")")
            try f.startAggregator()
        }
        writing.stop()
        let written = writing.counts

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
                #expect(Set(images) == Set((0..<(written[id] ?? 0)).map { PullLogWriters.image(id, $0) }))
            }
        }
    }

    @Test("an agent whose spool overflows while the aggregator is away: its drops reach its host row, the API and regwatch_agent_events_dropped_total")
    func spoolDrops() throws {
        let f = try Fleet()
        let log = "\(f.dir)/node-s-kubelet.log"
        // 4 KiB holds about a dozen events; 300 are written before the aggregator exists.
        try f.addAgent("node-s", zone: "z1", events: "{files: [\(log)], filePoll: 50ms, resendAfter: 1s, journalUnits: [], spoolMaxBytes: 4096}")
        try f.startAgent("node-s")
        #expect(f.eventually(15) { f.log("node-s").contains("agent running") })
        usleep(1_000_000)  // its file source is polling; a file that appears later is read from its start
        var text = ""
        for i in 0..<300 {
            let image = "registry.test:5000/spool/app:\(i)"
            text += "I1129 01:02:05.123456 1234 event.go:307] \"Event occurred\" reason=\"Failed\" message=\"Failed to pull image \\\"\(image)\\\": "
                + "rpc error: code = Unknown desc = 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit\"\n"
        }
        try text.write(toFile: log + ".new", atomically: false, encoding: .utf8)
        #expect(rename(log + ".new", log) == 0)
        #expect(f.eventually(15) { f.log("node-s").contains("spool full") }, "the agent never said it dropped events: \(f.log("node-s").suffix(2000))")
        try f.startAggregator()
        var dropped = 0
        #expect(try f.eventually(30) {
            guard let spool = try f.json("/api/v1/hosts").first?["spool"] as? [String: Any] else { return false }
            dropped = spool["dropped"] as? Int ?? 0
            return dropped > 0 && spool["pending"] as? Int == 0
        }, "hosts: \((try? f.get("/api/v1/hosts")) ?? "")")
        #expect(dropped < 300, "every event was dropped: the spool kept none")
        let stored = try DatabaseQueue(path: f.database).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM pull_event") ?? 0 }
        #expect(stored + dropped == 300, "\(stored) stored + \(dropped) dropped != 300 written")
        // The counter adds what the host row says, once: later reports with the same count add nothing.
        #expect(try f.eventually(15) { try f.metric("regwatch_agent_events_dropped_total") == Double(dropped) },
                "\((try? f.get("/metrics")) ?? "")")
    }

    @Test("a TLS mirror whose certificate expires in 5 days: regwatch_certificate_expiry_timestamp_seconds is its notAfter, and a cert_expiring outage carries it")
    func certificateExpiry() throws {
        let f = try Fleet(correlation: "{staleAfter: 3, window: 1s, openAfter: 2, minHosts: 1}")
        let ca = try f.h.certificateAuthority()
        let cert = try f.h.signedCertificate(name: "mirror-tls", days: 5)
        let port = try f.h.startRegistry(name: "mirror-tls", tls: cert)
        let url = "https://127.0.0.1:\(port)"
        try f.addAgent("node-t", zone: "z1", registries: """
            registries:
              - name: docker.io
                upstream: "http://127.0.0.1:\(f.upstream)"
                rateLimit: false
                probeImage: library/alpine:3.20
                mirrors: [{url: "\(url)", ca: "\(ca)"}]
            """)
        try f.startAggregator()
        try f.startAgent("node-t")
        let (status, end) = try RegistryHarness.spawnAndWait("/usr/bin/openssl", ["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", cert.cert])
        try #require(status == 0, "\(end)")
        // notAfter=2026-12-09 07:50:00Z
        let notAfter = try #require(ISO8601DateFormatter().date(from: end.split(separator: "=")[1].trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: " ", with: "T")))
        var value: Double?
        #expect(try f.eventually(20) {
            value = try f.metric("regwatch_certificate_expiry_timestamp_seconds{endpoint=\"\(url)\"}")
            return value != nil
        }, "\((try? f.get("/metrics")) ?? "")")
        #expect(value == notAfter.timeIntervalSince1970, "gauge \(value ?? -1), certificate notAfter \(notAfter.timeIntervalSince1970)")
        #expect(try f.eventually(20) {
            try f.metric("regwatch_outage{kind=\"cert_expiring\",scope=\"endpoint=\(url)\",class=\"none\"}") == 1
        }, "\((try? f.get("/metrics"))?.split(separator: "\n").filter { $0.hasPrefix("regwatch_outage") } ?? [])")
    }
}
