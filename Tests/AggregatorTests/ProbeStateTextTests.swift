import Foundation
import GRDB
@testable import RegwatchAggregator
import RegwatchShared
import RegwatchTestSupport
import Testing

private typealias F = StoreFixture

@Suite("Fleet store: one row per report")
struct ProbeStateTextTests {
    let store: FleetStore

    init() throws {
        store = try F.open()
    }

    /// A probe whose strings need every kind of JSON escape, and one with nothing optional.
    static let awkward = ProbeResult(
        endpoint: Endpoint(registry: "ex\"ample.io", url: "https://mirror-ü:5000/a\\b", role: .mirror), errorClass: .tlsUntrusted,
        detail: "x509: \"bad\"\n\ttab \u{01} ✓ 🚀 \u{2028}",
        phases: PhaseTimings(dnsMs: 0.25, connectMs: 1e-7, tlsMs: 123456.789, ttfbMs: nil, totalMs: 1.5e3),
        tls: TLSState(trusted: false, daysLeft: -3, expiresAt: Date(unixSeconds: 1_700_000_000.5)),
        rateLimit: RateLimitState(limit: 100, remaining: 0, windowSeconds: 21600, source: "203.0.113.9 \"nat\""),
        manifest: ManifestState(reference: "library/alp\"ine:3", status: 404, digest: nil),
        checkedAt: Date(unixSeconds: 1_700_000_040.125))
    static let bare = ProbeResult(
        endpoint: Endpoint(registry: "docker.io", url: F.hub, role: .upstream), errorClass: .tcpTimeout,
        phases: PhaseTimings(), checkedAt: F.t0)

    @Test("latest states read back exactly, through latestStates and through the endpoint_state view")
    func roundTrip() throws {
        try F.ingest(store, [F.report("node-1", probes: [Self.awkward, Self.bare])])
        let latest = try store.latestStates(now: F.t0, staleAfter: 3)
        #expect(latest.map(\.probe) == [Self.bare, Self.awkward])  // ordered by registry bytes: "do" < "ex"
        #expect(latest.allSatisfy { $0.classSince == F.t0 && $0.observedAt == F.t0 })

        let row = try #require(try store.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM endpoint_state WHERE class = 'tls_untrusted'")
        })
        let p = Self.awkward
        #expect(row["hostId"] as String == "node-1")
        #expect(row["registry"] as String == p.endpoint.registry && row["endpoint"] as String == p.endpoint.url)
        #expect(row["role"] as String == "mirror" && row["detail"] as String == p.detail)
        #expect(row["dnsMs"] as Double == 0.25 && row["connectMs"] as Double == 1e-7 && row["tlsMs"] as Double == 123456.789)
        #expect(row["ttfbMs"] as Double? == nil && row["totalMs"] as Double == 1500)
        #expect(row["tlsTrusted"] as Bool == false && row["tlsDaysLeft"] as Int == -3 && row["tlsExpiresAt"] as Double == 1_700_000_000.5)
        #expect(row["rateLimitLimit"] as Int == 100 && row["rateLimitRemaining"] as Int == 0 && row["rateLimitWindowSeconds"] as Int == 21600)
        #expect(row["rateLimitSource"] as String == "203.0.113.9 \"nat\"")
        #expect(row["manifestReference"] as String == "library/alp\"ine:3" && row["manifestStatus"] as Int == 404)
        #expect(row["manifestDigest"] as String? == nil)
        #expect(row["checkedAt"] as Double == 1_700_000_040.125)
        #expect(row["observedAt"] as Double == F.t0.unixSeconds && row["cycleStartedAt"] as Double == F.t0.unixSeconds)
        #expect(row["classSince"] as Double == F.t0.unixSeconds)

        let samples = try store.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT registry, endpoint, class, totalMs, bucket, observedAt FROM probe_sample ORDER BY endpoint")
        }
        #expect(samples.map { $0[1] as String } == [p.endpoint.url, F.hub])
        #expect(samples[1][3] as Double? == nil && samples[1][4] as Int? == nil && samples[1][2] as String == "tcp_timeout")
        #expect(samples[0][3] as Double == 1500 && samples[0][4] as Int == LatencyHistogram.bucket(forMs: 1500))
    }

    @Test("an endpoint named twice in one report is stored once: the later probe wins, as before")
    func duplicateEndpoint() throws {
        let first = F.probe(F.mirrorA, .serverError), second = F.probe(F.mirrorA, totalMs: 7)
        try F.ingest(store, [F.report("node-1", probes: [first, F.probe(F.hub), second])])
        let latest = try store.latestStates(now: F.t0, staleAfter: 3)
        #expect(latest.map(\.probe) == [second, F.probe(F.hub)])
        #expect(try store.status(now: F.t0, staleAfter: 3).endpointStates == 2)
        // History keeps every probe the report carried.
        #expect(try store.status(now: F.t0, staleAfter: 3).probeSamples == 3)
    }

    @Test("a class keeps its since across reports and restarts; a changed class starts again")
    func classSince() throws {
        try F.ingest(store, [F.report("node-1", probes: [F.probe(F.mirrorA, .tcpTimeout), F.probe(F.mirrorB)])])
        let t1 = F.t0.addingTimeInterval(30), t2 = F.t0.addingTimeInterval(60)
        try F.ingest(store, [F.report("node-1", at: t1, probes: [F.probe(F.mirrorA, .tcpTimeout, at: t1), F.probe(F.mirrorB, .serverError, at: t1)])])
        let reopened = try FleetStore(path: store.path)
        try F.ingest(reopened, [F.report("node-1", at: t2, probes: [F.probe(F.mirrorA, .tcpTimeout, at: t2), F.probe(F.mirrorB, .serverError, at: t2)])])
        let since = try reopened.latestStates(now: t2, staleAfter: 3).map(\.classSince)
        #expect(since == [F.t0, t1])
    }

    @Test("a v4 database's latest states and raw samples carry over into the new layout")
    func migrationFromV4() throws {
        let path = F.path("v4")
        do {
            let queue = try DatabaseQueue(path: path)
            try StoreSchema.migrator.migrate(queue, upTo: "v4-class-since")
            try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO host (id, labels, zone, egress, firstSeen, lastSeen, lastCycleStartedAt, intervalSeconds, endpointCount)
                    VALUES ('old-1', '{"zone":"z1"}', 'z1', NULL, 100, 160, 150, 30, 2);
                    INSERT INTO endpoint_state (hostId, registry, endpoint, role, class, detail, dnsMs, totalMs, tlsTrusted, tlsDaysLeft,
                        rateLimitLimit, rateLimitRemaining, rateLimitWindowSeconds, manifestReference, checkedAt, observedAt, cycleStartedAt, classSince)
                    VALUES ('old-1', 'docker.io', 'https://mirror-b:5000', 'mirror', 'tcp_timeout', 'dial "x"', 0.5, NULL, NULL, NULL,
                            NULL, NULL, NULL, NULL, 149, 160, 150, 120),
                           ('old-1', 'docker.io', 'https://mirror-a:5000', 'mirror', 'ok', '', 0.5, 12.5, 1, 40,
                            100, 42, 21600, 'library/alpine:latest', 149, 160, 150, 100);
                    INSERT INTO probe_sample (hostId, registry, endpoint, class, totalMs, bucket, observedAt) VALUES
                        ('old-1', 'docker.io', 'https://mirror-a:5000', 'ok', 12.5, 3, 160),
                        ('old-1', 'docker.io', 'https://mirror-b:5000', 'tcp_timeout', NULL, NULL, 160),
                        ('old-1', 'docker.io', 'https://mirror-a:5000', 'ok', 10, 2, 130);
                    """)
            }
        }
        let migrated = try FleetStore(path: path)
        let latest = try migrated.latestStates(now: Date(unixSeconds: 170), staleAfter: 3)
        #expect(latest.map(\.probe.endpoint.url) == [F.mirrorA, F.mirrorB])
        #expect(latest.map(\.probe.errorClass) == [.ok, .tcpTimeout])
        #expect(latest.map(\.classSince) == [Date(unixSeconds: 100), Date(unixSeconds: 120)])
        #expect(latest[0].probe.rateLimit == RateLimitState(limit: 100, remaining: 42, windowSeconds: 21600))
        #expect(latest[0].probe.tls == TLSState(trusted: true, daysLeft: 40) && latest[1].probe.tls == nil)
        #expect(latest[1].probe.detail == "dial \"x\"" && latest[1].probe.phases.totalMs == nil)
        #expect(latest.allSatisfy { $0.observedAt == Date(unixSeconds: 160) })
        let reports = try migrated.pool.read { db in try Row.fetchAll(db, sql: "SELECT observedAt, json_array_length(probes) FROM probe_report ORDER BY id") }
        #expect(reports.map { $0[0] as Double } == [160, 130] && reports.map { $0[1] as Int } == [2, 1])
        #expect(try migrated.status(now: Date(unixSeconds: 170), staleAfter: 3).probeSamples == 3)
        // A newer report continues from the migrated classes.
        try F.ingest(migrated, [F.report("old-1", at: Date(unixSeconds: 190), probes: [F.probe(F.mirrorB, .tcpTimeout, at: Date(unixSeconds: 190))])])
        #expect(try migrated.latestStates(now: Date(unixSeconds: 190), staleAfter: 3).map(\.classSince) == [Date(unixSeconds: 120)])
    }

    @Test("the reader accepts what JSON allows in that shape and nothing else")
    func reader() {
        var rows: [[CompactJSONReader.Value]] = []
        #expect(CompactJSONReader.forEachRow(#" [ [ "a\u00e9\ud83d\ude80\/" , -1.5e2, null, true ] , [] ] "#) { rows.append($0) })
        #expect(rows == [[.string("aé🚀/"), .number(-150), .null, .bool(true)], []])
        for bad in ["", "[", "[[1]", "[[1],]", "[1]", "[[\"x]]", "[[\"\\ud83d\"]]", "[[nul]]", "[[1]] x", "[[{}]]", "[[\"\\q\"]]"] {
            #expect(!CompactJSONReader.forEachRow(bad) { _ in }, "\(bad)")
        }
    }

    @Test("a kept class copies its stored since as text; a changed class, a null or an unreadable text start now")
    func sinceCarriedAsText() {
        let latest = ProbeStateText.Latest([F.probe(F.mirrorA, .tcpTimeout), F.probe(F.mirrorB)])
        func since(_ stored: String) -> [String] {
            var bytes = Array(stored.utf8)
            let text = bytes.withUnsafeMutableBufferPointer { latest.text(receivedAt: 500.25, previous: .init(UnsafeBufferPointer($0))) }
            var out: [String] = []
            CompactJSONReader.forEachRow(String(decoding: text, as: UTF8.self)) { row in out.append("\(row[4].double ?? -1)") }
            return out
        }
        let a = "\"docker.io\",\"\(F.mirrorA)\"", b = "\"docker.io\",\"\(F.mirrorB)\""
        // A detail holding brackets, quotes and commas does not end its element early.
        let stored = "[[\(b),\"mirror\",\"ok\",1700000000.123456789,\"],[\\\"x\\\",\",null], [\(a),\"mirror\",\"tcp_timeout\",120,\"\"]]"
        #expect(since(stored) == ["120.0", "1700000000.1234567"])
        #expect(since("[[\(a),\"mirror\",\"server_error\",120],[\(b),\"mirror\",\"ok\",null]]") == ["500.25", "500.25"])
        #expect(since("[[\(a),\"mirror\",\"tcp_timeout\",\"120\"],[\(b),\"mirror\",\"ok\",true]]") == ["500.25", "500.25"])
        for bad in ["", "[", "[[\(a),\"mirror\",\"tcp_timeout\",120]", "[[\(a),\"mirror\",\"tcp_timeout\",120]] x", "{}"] {
            #expect(since(bad) == ["500.25", "500.25"], "\(bad)")
        }
        // The text is copied, not reformatted: the same bytes as stored.
        var bytes = Array("[[\(a),\"mirror\",\"tcp_timeout\",1.0e2]]".utf8)
        let text = String(decoding: bytes.withUnsafeMutableBufferPointer { latest.text(receivedAt: 1, previous: .init(UnsafeBufferPointer($0))) }, as: UTF8.self)
        #expect(text.contains("\"tcp_timeout\",1.0e2,"))
    }

    @Test("numbers are written short and read back as the same value")
    func numbers() {
        func text(_ v: Double?) -> String {
            var out = JSONBytes(capacity: 32)
            out.number(v)
            return out.string
        }
        #expect(text(96) == "96" && text(2.1) == "2.1" && text(0.05) == "0.05" && text(-2.1) == "-2.1" && text(0) == "0")
        #expect(text(1_764_000_123.456) == "1764000123.456" && text(3000.2) == "3000.2" && text(-0.001) == "-0.001")
        #expect(text(1e-7) == "1e-07" && text(.infinity) == "null" && text(nil) == "null" && text(.nan) == "null")
        var rng = SplitMix(seed: 7)
        for _ in 0..<20_000 {
            let bits = rng.next()
            let v: Double = switch bits % 4 {
            case 0: Double(Int64(bitPattern: rng.next()) % 10_000_000) / 1000
            case 1: Double(bitPattern: rng.next())
            case 2: Double(rng.next() % 1_000_000_000_000) / 10
            default: (Double(rng.next() % 1_000_000) / 1e6) * 1e12
            }
            guard v.isFinite else { continue }
            #expect(Double(text(v)) == v, "\(v) written as \(text(v))")
        }
    }
}
