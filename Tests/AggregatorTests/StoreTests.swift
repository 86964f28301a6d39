import Foundation
import GRDB
@testable import RegwatchAggregator
import RegwatchShared
import Testing

private typealias F = StoreFixture

@Suite("Fleet store: opening and schema")
struct StoreSchemaTests {
    @Test("migrations create every table and index, in WAL mode with foreign keys on")
    func tables() throws {
        let store = try F.open()
        let (tables, views, indexes, journal, foreignKeys, appID) = try store.pool.read { db in
            (try String.fetchSet(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"),
             try String.fetchSet(db, sql: "SELECT name FROM sqlite_master WHERE type = 'view'"),
             try String.fetchSet(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"),
             try String.fetchOne(db, sql: "PRAGMA journal_mode"),
             try Bool.fetchOne(db, sql: "PRAGMA foreign_keys"),
             try Int32.fetchOne(db, sql: "PRAGMA application_id"))
        }
        #expect(tables == ["grdb_migrations", "store_meta", "host", "probe_report", "probe_minute", "runtime_state",
                           "pull_event", "outage", "failover_plan", "failover_ack", "failover_state", "failover_last_ack", "headroom_minute",
                           "leader_term"])
        #expect(views == ["endpoint_state", "probe_sample"])
        #expect(indexes.isSuperset(of: ["probe_report_observedAt", "pull_event_at", "probe_minute_minute", "host_zone", "host_egress", "headroom_minute_minute"]))
        #expect(journal == "wal")
        #expect(foreignKeys == true)
        #expect(appID == StoreSchema.applicationID)
        #expect(try store.status(now: F.t0, staleAfter: 3).schemaVersion == "v7-leader-term")
    }

    @Test("reopening an existing database keeps its data; a read-only open works on it")
    func reopen() throws {
        let path = F.path()
        do {
            let store = try FleetStore(path: path)
            try F.ingest(store, [F.report("node-a1", probes: [F.probe(F.hub)])])
        }
        let again = try FleetStore(path: path)
        #expect(try again.hosts(now: F.t0, staleAfter: 3).map(\.id) == ["node-a1"])
        let readOnly = try FleetStore(path: path, readOnly: true)
        #expect(try readOnly.status(now: F.t0, staleAfter: 3).hosts == 1)
        #expect(throws: StoreError.self) { try readOnly.setConnected(hostID: "node-a1", connected: false) }
    }

    @Test("a read-only open works while no writer has the file open")
    func readOnlyAlone() throws {
        let path = F.path()
        do {
            let store = try FleetStore(path: path)
            try F.ingest(store, [F.report("node-a1", probes: [F.probe(F.hub)])])
        }
        let readOnly = try FleetStore(path: path, readOnly: true)
        #expect(try readOnly.hosts(now: F.t0, staleAfter: 3).map(\.id) == ["node-a1"])
    }

    @Test("a database migrated by a newer regwatch is refused, naming the file and the unknown migration")
    func newerSchema() throws {
        let path = F.path()
        do {
            let store = try FleetStore(path: path)
            try store.pool.write { db in
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-outage-evidence')")
            }
        }
        #expect(throws: StoreError.newerSchema(path: path, unknownMigrations: ["v99-outage-evidence"])) { try FleetStore(path: path) }
        #expect(throws: StoreError.newerSchema(path: path, unknownMigrations: ["v99-outage-evidence"])) { try FleetStore(path: path, readOnly: true) }
        let message = StoreError.newerSchema(path: path, unknownMigrations: ["v99-outage-evidence"]).description
        #expect(message.hasPrefix(path))
        #expect(message.contains("v99-outage-evidence") && !message.contains("\n"))
    }

    @Test("files that are not regwatch databases are refused before anything is written")
    func foreignFiles() throws {
        let garbage = F.path("garbage")
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: garbage))
        #expect(throws: StoreError.notRegwatchDatabase(path: garbage, reason: "not an SQLite database")) { try FleetStore(path: garbage) }

        let other = F.path("other")
        try DatabaseQueue(path: other).write { db in try db.execute(sql: "CREATE TABLE photos (id INTEGER PRIMARY KEY)") }
        #expect(throws: StoreError.notRegwatchDatabase(path: other, reason: "it holds tables of another application")) { try FleetStore(path: other) }
        #expect(try DatabaseQueue(path: other).read { db in try db.tableExists("host") } == false)

        let otherApp = F.path("other-app")
        try DatabaseQueue(path: otherApp).writeWithoutTransaction { db in try db.execute(sql: "PRAGMA application_id = 42") }
        #expect(throws: StoreError.notRegwatchDatabase(path: otherApp, reason: "application_id 42")) { try FleetStore(path: otherApp) }
    }

    @Test("cannot open: a missing file read-only, a path below a regular file")
    func cannotOpen() throws {
        let missing = F.path("missing")
        #expect(throws: StoreError.cannotOpen(path: missing, reason: "no such file")) { try FleetStore(path: missing, readOnly: true) }
        #expect(!FileManager.default.fileExists(atPath: missing))

        let file = F.path("file")
        try Data().write(to: URL(fileURLWithPath: file))
        let below = "\(file)/regwatch.db"
        do {
            _ = try FleetStore(path: below)
            Issue.record("opened a database below a regular file")
        } catch {
            #expect(error.code == "cannot_open")
            #expect(error.description.hasPrefix(below))
        }
    }

    @Test("the directory of a new database is created")
    func createsDirectory() throws {
        let path = "\(temporaryDirectory("store-dir"))/var/lib/regwatch/regwatch.db"
        _ = try FleetStore(path: path)
        #expect(FileManager.default.fileExists(atPath: path))
    }
}

@Suite("Fleet store: ingest")
struct StoreIngestTests {

    @Test("classSince keeps the time of the first report with the current class, and moves when the class changes", arguments: StoreBackend.allCases)
    func classSince(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        func since(_ url: String) throws -> Date? {
            try store.latestStates(now: F.t0.addingTimeInterval(100), staleAfter: 100).first { $0.probe.endpoint.url == url }?.classSince
        }
        let t1 = F.t0, t2 = F.t0.addingTimeInterval(30), t3 = F.t0.addingTimeInterval(60)
        try F.ingest(store, [F.report("a1", at: t1, probes: [F.probe(F.mirrorA, .tcpTimeout, at: t1), F.probe(F.hub, at: t1)])])
        #expect(try since(F.mirrorA) == t1)
        try F.ingest(store, [F.report("a1", at: t2, probes: [F.probe(F.mirrorA, .tcpTimeout, at: t2), F.probe(F.hub, at: t2)])])
        #expect(try since(F.mirrorA) == t1, "same class: the first report's time stays")
        #expect(try since(F.hub) == t1)
        try F.ingest(store, [F.report("a1", at: t3, probes: [F.probe(F.mirrorA, at: t3), F.probe(F.hub, .tcpRefused, at: t3)])])
        #expect(try since(F.mirrorA) == t3 && since(F.hub) == t3, "a class change restarts it")
    }

    @Test("a report fills host, endpoint_state, runtime_state and probe_sample; labels and probes round-trip", arguments: StoreBackend.allCases)
    func firstReport(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        let probes = [F.probe(F.hub, remaining: 57), F.probe(F.mirrorA), F.probe(F.mirrorB, .tcpTimeout, totalMs: nil)]
        let runtimes = [RuntimeConfigState(runtime: .docker, mirrors: ["docker.io": [F.mirrorA, F.mirrorB]], valid: true, hash: "h1")]
        var report = F.report("node-a1", probes: probes, runtimes: runtimes, generation: 7)
        report.host.labels["rack"] = "r \"7\"\n"
        report.eventSources = [EventSourceStatus(name: "docker-events", state: .active), EventSourceStatus(name: "journal", state: .absent, detail: "no journal")]
        var batch = IngestBatch()
        batch.append(report: report, hostID: "node-a1", seq: 41, receivedAt: F.t0.addingTimeInterval(1))
        let result = try store.commit(batch)
        #expect(result.reportsStored == 1 && result.reportsOutdated == 0)

        let hosts = try store.hosts(now: F.t0, staleAfter: 3)
        #expect(hosts.count == 1)
        let h = try #require(hosts.first)
        #expect(h.labels == report.host.labels)
        #expect(h.appliedGeneration == 7 && h.agentVersion == "0.1.0" && h.intervalSeconds == 30 && h.connected)
        #expect(h.lastSeen == F.t0.addingTimeInterval(1) && h.firstSeen == h.lastSeen)
        #expect(h.status == .problems)
        #expect(h.eventSources == report.eventSources)

        let row = try #require(try t.rows("SELECT zone, egress, lastReportSeq, mirrorPools FROM host WHERE id = 'node-a1'").first)
        #expect(row[0] == .text("z1") && row[1] == .text("203.0.113.7") && row[2] == .int(41))
        let pools = try JSONDecoder().decode([String: [MirrorSpec]].self, from: Data((row[3].string ?? "").utf8))
        #expect(pools == report.mirrorPools)

        let latest = try store.latestStates(now: F.t0, staleAfter: 3)
        #expect(latest.map(\.probe) == probes.sorted { ($0.endpoint.registry, $0.endpoint.url) < ($1.endpoint.registry, $1.endpoint.url) })
        #expect(latest.allSatisfy { $0.hostID == "node-a1" && $0.labels == report.host.labels && !$0.stale && $0.zone == "z1" })

        let runtime = try #require(try t.rows("SELECT runtime, mirrors, valid, hash FROM runtime_state").first)
        #expect(runtime[0] == .text("docker") && runtime[2] == .int(1) && runtime[3] == .text("h1"))
        #expect(try JSONDecoder().decode([String: [String]].self, from: Data((runtime[1].string ?? "").utf8)) == ["docker.io": [F.mirrorA, F.mirrorB]])
        #expect(try t.count("probe_sample") == 3)
        #expect(try t.count("probe_sample", "totalMs IS NULL AND bucket IS NULL AND class = 'tcp_timeout'") == 1)
    }

    @Test("a newer report replaces the host's endpoints and runtimes; dropped ones disappear", arguments: StoreBackend.allCases)
    func newerReplaces(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        try F.ingest(store, [F.report("node-a1", probes: [F.probe(F.hub), F.probe(F.mirrorA), F.probe(F.mirrorB)],
                                      runtimes: [RuntimeConfigState(runtime: .docker, mirrors: ["docker.io": [F.mirrorA]], valid: true, hash: "h1"),
                                                 RuntimeConfigState(runtime: .containerd, mirrors: [:], valid: true, hash: "c1")])])
        let later = F.t0.addingTimeInterval(30)
        try F.ingest(store, [F.report("node-a1", zone: "z2", at: later, probes: [F.probe(F.hub, at: later), F.probe(F.mirrorA, .serverError, at: later)],
                                      runtimes: [RuntimeConfigState(runtime: .docker, mirrors: ["docker.io": [F.mirrorB]], valid: false, detail: "bad json", hash: "h2")])])
        let latest = try store.latestStates(now: later, staleAfter: 3)
        #expect(latest.map(\.probe.endpoint.url) == [F.mirrorA, F.hub])
        #expect(latest.map(\.probe.errorClass) == [.serverError, .ok])
        #expect(latest.allSatisfy { $0.zone == "z2" && $0.observedAt == later })
        let runtimes = try t.rows("SELECT runtime, mirrors, valid, detail FROM runtime_state")
        #expect(runtimes.count == 1)
        #expect(runtimes.first?[1] == .text(#"{"docker.io":["https://mirror-b:5000"]}"#))
        #expect(runtimes.first?[3] == .text("bad json"))
        #expect(try t.count("probe_sample") == 5)
        #expect(try store.hosts(now: later, staleAfter: 3).first?.firstSeen == F.t0)
    }

    @Test("an unchanged runtime hash refreshes validity without rewriting mirrors", arguments: StoreBackend.allCases)
    func runtimeSameHash(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        try F.ingest(store, [F.report("node-a1", probes: [], runtimes: [RuntimeConfigState(runtime: .crio, mirrors: ["docker.io": [F.mirrorA]], valid: true, hash: "x")])])
        let later = F.t0.addingTimeInterval(30)
        try F.ingest(store, [F.report("node-a1", at: later, probes: [], runtimes: [RuntimeConfigState(runtime: .crio, mirrors: ["docker.io": [F.mirrorA]], valid: false, detail: "reload failed", hash: "x")])])
        let row = try #require(try t.rows("SELECT valid, detail, observedAt, mirrors FROM runtime_state").first)
        #expect(row[0] == .int(0) && row[1] == .text("reload failed") && row[2].double == later.timeIntervalSince1970)
        #expect(row[3] == .text(#"{"docker.io":["https://mirror-a:5000"]}"#))
    }

    @Test("newest wins: an older or resent report does not overwrite latest state, but counts as a sign of life", arguments: StoreBackend.allCases)
    func olderDoesNotOverwrite(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        let later = F.t0.addingTimeInterval(30)
        try F.ingest(store, [F.report("node-a1", at: later, probes: [F.probe(F.hub, .rateLimited, at: later)], generation: 3)])
        var batch = IngestBatch()
        let older = F.report("node-a1", zone: "old", at: F.t0, probes: [F.probe(F.hub), F.probe(F.mirrorA)], generation: 2)
        batch.append(report: older, hostID: "node-a1", seq: 9, receivedAt: later.addingTimeInterval(5))
        batch.append(report: F.report("node-a1", at: later, probes: []), hostID: "node-a1", seq: 10, receivedAt: later.addingTimeInterval(6))
        let result = try store.commit(batch)
        #expect(result.reportsOutdated == 2 && result.reportsStored == 0)
        let h = try #require(try store.hosts(now: later, staleAfter: 3).first)
        #expect(h.labels["zone"] == "z1" && h.appliedGeneration == 3)
        #expect(h.lastSeen == later.addingTimeInterval(6))
        #expect(try store.latestStates(now: later, staleAfter: 3).map(\.probe.errorClass) == [.rateLimited])
        #expect(try t.count("probe_sample") == 1)
    }

    @Test("several reports of one host in one batch: the newest ends up as latest state", arguments: StoreBackend.allCases)
    func sameHostInOneBatch(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        let reports = (0..<3).map { i in
            let at = F.t0.addingTimeInterval(Double(i) * 30)
            return F.report("node-a1", at: at, probes: [F.probe(F.hub, totalMs: Double(10 + i), at: at)])
        }
        let result = try F.ingest(store, [reports[0], reports[2], reports[1]])
        #expect(result.reportsStored == 2 && result.reportsOutdated == 1)
        #expect(try store.latestStates(now: F.t0, staleAfter: 3).first?.probe.phases.totalMs == 12)
    }

    @Test("a report naming one endpoint or runtime twice is stored (last wins) instead of failing the batch", arguments: StoreBackend.allCases)
    func duplicateKeysInReport(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        let rt = RuntimeConfigState(runtime: .docker, mirrors: [:], valid: true, hash: "a")
        var rt2 = rt
        rt2.valid = false
        let result = try F.ingest(store, [F.report("node-a1", probes: [F.probe(F.hub), F.probe(F.hub, .timeout)], runtimes: [rt, rt2])])
        #expect(result.reportsStored == 1)
        #expect(try store.latestStates(now: F.t0, staleAfter: 3).map(\.probe.errorClass) == [.timeout])
        #expect(try t.count("runtime_state", "NOT valid") == 1 && t.count("runtime_state") == 1)
        let later = F.t0.addingTimeInterval(30)
        try F.ingest(store, [F.report("node-a1", at: later, probes: [F.probe(F.hub, at: later), F.probe(F.mirrorA, at: later)])])
        #expect(try t.count("endpoint_state") == 2 && t.count("runtime_state") == 0)
    }

    @Test("pull events: duplicates are ignored but acknowledged, per host, in a batch mixing hosts", arguments: StoreBackend.allCases)
    func pullEvents(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        var batch = IngestBatch()
        batch.append(events: [F.event(1), F.event(2), F.event(3, .failure, .tcpTimeout)], hostID: "node-a1")
        batch.append(events: [F.event(1), F.event(UInt64.max)], hostID: "node-b1")
        batch.append(events: [F.event(2)], hostID: "node-a1")
        let first = try store.commit(batch)
        #expect(first.eventsInserted == 5 && first.eventsDuplicate == 1)
        #expect(first.committedSeqs == ["node-a1": [1, 2, 3, 2], "node-b1": [1, UInt64.max]])
        #expect(first.insertedByOutcome == [.init(result: "success", errorClass: "ok"): 4, .init(result: "failure", errorClass: "tcp_timeout"): 1])

        var resend = IngestBatch()
        resend.append(events: [F.event(3), F.event(4)], hostID: "node-a1")
        resend.append(events: [F.event(UInt64.max)], hostID: "node-b1")
        let second = try store.commit(resend)
        #expect(second.eventsInserted == 1 && second.eventsDuplicate == 2)
        #expect(second.committedSeqs == ["node-a1": [3, 4], "node-b1": [UInt64.max]])
        #expect(second.insertedByOutcome == [.init(result: "success", errorClass: "ok"): 1])

        let stored = try t.rows("SELECT hostId, seq, class, result FROM pull_event")
            .map { "\($0[0])/\(UInt64(bitPattern: $0[1].int ?? 0))/\($0[2])/\($0[3])" }
            .sorted() // seqs >= 2^63 are stored by bit pattern and sort negative in SQL
        #expect(stored == ["node-a1/1/ok/success", "node-a1/2/ok/success", "node-a1/3/tcp_timeout/failure", "node-a1/4/ok/success",
                           "node-b1/1/ok/success", "node-b1/\(UInt64.max)/ok/success"])
        #expect(try store.status(now: F.t0, staleAfter: 3).pullEvents == 6)
    }

    @Test("one transaction: when any row fails, nothing of the batch is stored or acknowledged, and the next batch works", arguments: StoreBackend.allCases)
    func atomic(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        try t.failInserts(ofImage: "boom")
        var batch = IngestBatch()
        batch.append(report: F.report("node-a1", probes: [F.probe(F.hub)]), hostID: "node-a1", seq: 1, receivedAt: F.t0)
        batch.append(events: [F.event(1)], hostID: "node-a1")
        var bad = F.event(2)
        bad.image = "boom"
        batch.append(events: [bad], hostID: "node-b1")
        do {
            _ = try store.commit(batch)
            Issue.record("commit succeeded")
        } catch {
            #expect(error.code == "write_failed" && error.description.contains("boom"))
        }
        #expect(try t.count("host") == 0 && t.count("endpoint_state") == 0 && t.count("probe_sample") == 0 && t.count("pull_event") == 0)

        batch.events.removeLast()
        let result = try store.commit(batch)
        #expect(result.reportsStored == 1 && result.committedSeqs == ["node-a1": [1]])
        #expect(try t.count("endpoint_state") == 1 && t.count("pull_event") == 1)
    }

    @Test("an empty batch commits nothing and succeeds", arguments: StoreBackend.allCases)
    func emptyBatch(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        #expect(try store.commit(IngestBatch()) == IngestResult())
    }
}

@Suite("Fleet store: queries")
struct StoreQueryTests {

    @Test("hosts(): ok, problems (failing endpoint or invalid runtime), stale, disconnected; stale beats disconnected", arguments: StoreBackend.allCases)
    func hostStatus(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        let old = F.t0.addingTimeInterval(-600)
        try F.ingest(store, [
            F.report("ok-1", probes: [F.probe(F.hub), F.probe(F.mirrorA)]),
            F.report("problem-1", probes: [F.probe(F.hub), F.probe(F.mirrorA, .tlsExpired)]),
            F.report("problem-2", probes: [F.probe(F.hub)], runtimes: [RuntimeConfigState(runtime: .docker, mirrors: [:], valid: false, hash: "")]),
            F.report("stale-1", at: old, probes: [F.probe(F.hub, at: old)]),
            F.report("stale-2", at: old, probes: [F.probe(F.hub, at: old)]),
            F.report("gone-1", probes: [F.probe(F.hub, .dnsFailure)]),
            F.report("slow-1", at: old, probes: [F.probe(F.hub, at: old)], interval: 300),
        ])
        try store.setConnected(hostID: "gone-1", connected: false)
        try store.setConnected(hostID: "stale-2", connected: false)
        try store.setConnected(hostID: "unknown", connected: false)
        let now = F.t0.addingTimeInterval(60)
        let status = Dictionary(uniqueKeysWithValues: try store.hosts(now: now, staleAfter: 3).map { ($0.id, $0.status) })
        #expect(status == ["ok-1": .ok, "problem-1": .problems, "problem-2": .problems, "stale-1": .stale, "stale-2": .stale,
                           "gone-1": .disconnected, "slow-1": .ok])
        // Exactly at the limit is not stale yet: 3 x 30 s after t0.
        #expect(try store.hosts(now: F.t0.addingTimeInterval(90), staleAfter: 3).first { $0.id == "ok-1" }?.status == .ok)
        #expect(try store.hosts(now: F.t0.addingTimeInterval(91), staleAfter: 3).first { $0.id == "ok-1" }?.status == .stale)

        let summary = try store.status(now: now, staleAfter: 3)
        #expect(summary.hosts == 7 && summary.hostsStale == 2 && summary.hostsConnected == 5)
        #expect(summary.endpointStates == 9 && summary.databaseBytes > 0 && summary.path == store.location)

        try store.setAllDisconnected()
        #expect(try store.status(now: now, staleAfter: 3).hostsConnected == 0)
        #expect(try store.hosts(now: now, staleAfter: 3).first { $0.id == "ok-1" }?.status == .disconnected)
    }

    @Test("endpoints(): counts, dominant failing class, exact p50/p95, lowest quota; stale hosts excluded", arguments: StoreBackend.allCases)
    func endpoints(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        var reports: [Report] = []
        // 20 fresh hosts probe the mirror with totalMs 10, 20, ..., 200; 3 fail with tcp_timeout, 2 with dns_failure.
        for i in 1...20 {
            let cls: ErrorClass = i <= 3 ? .tcpTimeout : i <= 5 ? .dnsFailure : .ok
            reports.append(F.report(String(format: "node-%02d", i), probes: [
                F.probe(F.hub, totalMs: 100, remaining: 100 - i),
                F.probe(F.mirrorA, cls, totalMs: Double(i * 10)),
            ]))
        }
        // A stale host fails everything slowly and has the lowest quota: none of it may count.
        let old = F.t0.addingTimeInterval(-3600)
        reports.append(F.report("stale-1", at: old, probes: [
            F.probe(F.hub, .rateLimited, totalMs: 9000, remaining: 0, at: old), F.probe(F.mirrorA, .tlsUntrusted, totalMs: 9000, at: old),
            F.probe(F.mirrorB, .tlsUntrusted, at: old),
        ]))
        try F.ingest(store, reports)

        let rows = try store.endpoints(now: F.t0.addingTimeInterval(10), staleAfter: 3)
        #expect(rows.map(\.endpoint) == [F.hub, F.mirrorA, F.mirrorB])
        let hub = rows[0], mirror = rows[1], onlyStale = rows[2]
        #expect(hub.role == .upstream && hub.hostsReporting == 20 && hub.hostsFailing == 0 && hub.errorClass == .ok)
        #expect(hub.p50Ms == 100 && hub.p95Ms == 100 && hub.lowestRateLimitRemaining == 80)
        #expect(mirror.role == .mirror && mirror.registry == "docker.io")
        #expect(mirror.hostsReporting == 20 && mirror.hostsFailing == 5 && mirror.errorClass == .tcpTimeout)
        #expect(mirror.p50Ms == 100 && mirror.p95Ms == 190 && mirror.lowestRateLimitRemaining == nil)
        #expect(onlyStale.hostsReporting == 0 && onlyStale.errorClass == .ok && onlyStale.p50Ms == nil)

        let json = String(decoding: try JSONEncoder().encode(onlyStale), as: UTF8.self)
        #expect(json.contains(#""p50Ms":null"#) && json.contains(#""lowestRateLimitRemaining":null"#))

        let latest = try store.latestStates(now: F.t0.addingTimeInterval(10), staleAfter: 3)
        #expect(latest.count == 43)
        #expect(latest.filter(\.stale).map(\.hostID) == ["stale-1", "stale-1", "stale-1"])
    }

    @Test("a dominant-class tie is broken alphabetically", arguments: StoreBackend.allCases)
    func dominantTie(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        try F.ingest(store, [
            F.report("a", probes: [F.probe(F.mirrorA, .tcpTimeout)]), F.report("b", probes: [F.probe(F.mirrorA, .dnsFailure)]),
        ])
        #expect(try store.endpoints(now: F.t0, staleAfter: 3).first?.errorClass == .dnsFailure)
    }

    @Test("one mirror URL serving two registries keeps a state per registry", arguments: StoreBackend.allCases)
    func urlSharedByRegistries(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        try F.ingest(store, [F.report("a", probes: [F.probe(F.mirrorA, registry: "docker.io"), F.probe(F.mirrorA, registry: "ghcr.io", .notFound)])])
        let rows = try store.endpoints(now: F.t0, staleAfter: 3)
        #expect(rows.map(\.registry) == ["docker.io", "ghcr.io"])
        #expect(rows.map(\.errorClass) == [.ok, .notFound])
    }
}

@Suite("Fleet store: maintenance")
struct StoreMaintenanceTests {
    /// SQLite's own check of the file; PostgreSQL keeps its files itself.
    private func integrityOK(_ t: TestStore) throws -> Bool {
        if t.backend == .postgres { return true }
        return try t.rows("PRAGMA integrity_check").first?.first?.string == "ok"
    }

    /// Minute 0: 4 hosts, mirror-a 10/20/30/40 ms, one failing tcp_timeout without timing (a 5th probe).
    /// Minute 1: 4 hosts, mirror-a 100 ms each. Minute 2 (current at t0+150 s): 4 hosts.
    private func fill(_ store: any FleetStoring) throws {
        for minute in 0..<3 {
            let at = F.t0.addingTimeInterval(Double(minute) * 60 + 5)
            let reports = (1...4).map { i in
                var probes = [F.probe(F.mirrorA, totalMs: minute == 0 ? Double(i * 10) : 100, at: at)]
                if minute == 0 && i == 1 { probes.append(F.probe(F.mirrorB, .tcpTimeout, totalMs: nil, at: at)) }
                return F.report("node-\(i)", at: at, probes: probes)
            }
            try F.ingest(store, reports)
        }
        var events = IngestBatch()
        events.append(events: [F.event(1, at: F.t0.addingTimeInterval(-8 * 86400)), F.event(2, at: F.t0)], hostID: "node-1")
        _ = try store.commit(events)
    }

    @Test("complete minutes roll up with correct counts; re-running changes nothing; raw rows stay for their retention", arguments: StoreBackend.allCases)
    func rollUp(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        try fill(store)
        let now = F.t0.addingTimeInterval(150)
        let first = try store.maintain(now: now, rawRetention: 3600, minuteRetention: 7 * 86400, eventRetention: 7 * 86400)
        #expect(first.minutesWritten == 3)
        #expect(first.samplesDeleted == 0 && first.eventsDeleted == 1)

        let minutes = try store.probeMinutes(since: F.t0.addingTimeInterval(-3600))
        #expect(minutes.map(\.endpoint) == [F.mirrorA, F.mirrorA, F.mirrorB])
        #expect(minutes.map(\.minute) == [F.t0, F.t0.addingTimeInterval(60), F.t0])
        let a0 = minutes[0], a1 = minutes[1], b0 = minutes[2]
        #expect(a0.samples == 4 && a0.failures == 0 && a0.timedSamples == 4 && a0.meanMs == 25 && a0.maxMs == 40)
        #expect(a1.samples == 4 && a1.meanMs == 100 && a1.maxMs == 100 && a1.p50Ms == 100 && a1.p95Ms == 100)
        #expect(a0.minMs == 10)
        #expect(b0.samples == 1 && b0.failures == 1 && b0.failureClasses == ["tcp_timeout": 1] && b0.timedSamples == 0)
        #expect(b0.meanMs == nil && b0.p50Ms == nil)
        let p50 = try #require(a0.p50Ms)
        #expect(abs(p50 - 20) / 20 < 0.1)

        let again = try store.maintain(now: now, rawRetention: 3600, minuteRetention: 7 * 86400, eventRetention: 7 * 86400)
        #expect(again == MaintenanceResult())
        #expect(try store.probeMinutes(since: F.t0.addingTimeInterval(-3600)) == minutes)
        #expect(try t.count("probe_sample") == 13)
        #expect(try integrityOK(t))
    }

    @Test("past retention: raw samples, minutes and events are deleted; the current minute is rolled later, once", arguments: StoreBackend.allCases)
    func retention(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        try fill(store)
        try store.maintain(now: F.t0.addingTimeInterval(150), rawRetention: 3600, minuteRetention: 7 * 86400, eventRetention: 7 * 86400)
        // Two hours later: every raw sample is past retention, minute 2 is now complete.
        let later = F.t0.addingTimeInterval(7200)
        let r = try store.maintain(now: later, rawRetention: 3600, minuteRetention: 7 * 86400, eventRetention: 7 * 86400)
        #expect(r.minutesWritten == 1 && r.samplesDeleted == 13)
        #expect(try t.count("probe_sample") == 0)
        let minutes = try store.probeMinutes(since: F.t0, until: later, endpoint: F.mirrorA)
        #expect(minutes.map(\.samples) == [4, 4, 4])

        // A week and a bit later: the minutes go, and so does the remaining event.
        let r2 = try store.maintain(now: F.t0.addingTimeInterval(8 * 86400), rawRetention: 3600, minuteRetention: 7 * 86400, eventRetention: 7 * 86400)
        #expect(r2.minutesDeleted == 4 && r2.eventsDeleted == 1)
        #expect(try t.count("probe_minute") == 0 && t.count("pull_event") == 0)
        #expect(try integrityOK(t))
        if let sqlite = store as? FleetStore {
            try sqlite.checkpoint()
            #expect(try store.status(now: later, staleAfter: 3).walBytes == 0)
        }
    }

    @Test("raw samples not yet rolled up are kept even past raw retention", arguments: StoreBackend.allCases)
    func unrolledKept(_ backend: StoreBackend) throws {
        let t = try backend.open()
        let store = t.store
        try fill(store)
        // With a 1 s raw retention, the current minute's samples (minute 2) must wait for their roll-up.
        let r = try store.maintain(now: F.t0.addingTimeInterval(150), rawRetention: 1, minuteRetention: 86400, eventRetention: 86400 * 30)
        #expect(r.minutesWritten == 3 && r.samplesDeleted == 9)
        #expect(try t.count("probe_sample") == 4)
        let r2 = try store.maintain(now: F.t0.addingTimeInterval(180), rawRetention: 1, minuteRetention: 86400, eventRetention: 86400 * 30)
        #expect(r2.minutesWritten == 1 && r2.samplesDeleted == 4)
        #expect(try store.probeMinutes(since: F.t0, endpoint: F.mirrorA).map(\.samples) == [4, 4, 4])
    }
}

@Suite("Fleet store: latency histogram")
struct StoreLatencyHistogramTests {
    @Test("bucket bounds are log-scale, 4 per doubling, clamped at both ends")
    func buckets() {
        #expect(LatencyHistogram.bucket(forMs: 0) == 0)
        #expect(LatencyHistogram.bucket(forMs: -5) == 0)
        #expect(LatencyHistogram.bucket(forMs: .nan) == 0)
        #expect(LatencyHistogram.bucket(forMs: 0.1) == 0)
        #expect(LatencyHistogram.bucket(forMs: 0.2) == 4)
        #expect(LatencyHistogram.bucket(forMs: 0.21) == 5)
        #expect(LatencyHistogram.bucket(forMs: .infinity) == LatencyHistogram.bucketCount - 1)
        #expect(LatencyHistogram.bucket(forMs: 1e12) == LatencyHistogram.bucketCount - 1)
        for ms in [0.3, 1, 7.5, 42, 999, 30_000] {
            let i = LatencyHistogram.bucket(forMs: ms)
            #expect(LatencyHistogram.upperBoundMs(bucket: i - 1) < ms && ms <= LatencyHistogram.upperBoundMs(bucket: i) * (1 + 1e-12))
        }
    }

    @Test("quantiles of known data are within 10%, and the JSON form round-trips")
    func quantiles() {
        var h = LatencyHistogram()
        for ms in 1...1000 { h.add(ms: Double(ms)) }
        #expect(h.total == 1000)
        let p50 = h.quantileMs(0.5)!, p95 = h.quantileMs(0.95)!
        #expect(abs(p50 - 500) / 500 < 0.1)
        #expect(abs(p95 - 950) / 950 < 0.1)
        #expect(LatencyHistogram(json: h.json) == h)
        #expect(LatencyHistogram(json: "not json") == LatencyHistogram())
        #expect(LatencyHistogram().quantileMs(0.5) == nil)
        var merged = LatencyHistogram(counts: [3: 2])
        merged.merge(LatencyHistogram(counts: [3: 1, 9: 4]))
        #expect(merged.counts == [3: 3, 9: 4] && merged.total == 7)
    }
}
