import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing

@Suite("Outage records and alerts")
struct OutageRecordTests {
    let t0 = StoreFixture.t0
    let key = OutageKey(kind: .endpointDown, endpoint: StoreFixture.mirrorA, registry: "docker.io")

    func candidate(affected: Int = 4) -> OutageCandidate {
        OutageCandidate(key: key, errorClass: .tcpTimeout, affectedHosts: affected, totalHosts: 4,
                        evidence: [OutageEvidence(host: "n1", zone: "z1", endpoint: StoreFixture.mirrorA, errorClass: .tcpTimeout, detail: "dial tcp: i/o timeout")])
    }

    @Test("opened, updated and closed transitions become one row; the engine restores from the store without reopening", arguments: StoreBackend.allCases)
    func lifecycle(_ backend: StoreBackend) throws {
        let t = try backend.open("outages")
        let store = t.store
        var engine = CorrelationEngine(settings: CorrelationSettings(openAfter: 1))
        let opened = engine.evaluate(candidates: [candidate()], now: t0)
        let rows = try store.record(opened, active: engine.active)
        #expect(rows.count == 1)
        #expect(rows.first?.state == .active)
        #expect(rows.first?.endpoint == StoreFixture.mirrorA)
        #expect(rows.first?.registry == "docker.io")
        #expect(rows.first?.evidence.first?.host == "n1")

        let updated = engine.evaluate(candidates: [candidate(affected: 3)], now: t0.addingTimeInterval(30))
        try store.record(updated, active: engine.active)
        #expect(try store.outages(activeOnly: true).first?.affectedHosts == 3)

        // A restart: the engine comes back from the store with the outage open and emits no second `opened`.
        var restored = CorrelationEngine(settings: CorrelationSettings(openAfter: 1), active: try t.reopen().activeOutageStates())
        #expect(restored.active.keys.contains(key))
        #expect(restored.evaluate(candidates: [candidate(affected: 3)], now: t0.addingTimeInterval(60)).isEmpty)

        // Absent for longer than the recovery hold (default 5 min): closed, with its end time.
        _ = restored.evaluate(candidates: [], now: t0.addingTimeInterval(90))
        let closing = restored.evaluate(candidates: [], now: t0.addingTimeInterval(90 + 301))
        try store.record(closing, active: restored.active)
        #expect(try store.outages(activeOnly: true).isEmpty)
        let all = try store.outages(activeOnly: false)
        #expect(all.count == 1)
        #expect(all.first?.state == .resolved)
        #expect(all.first?.endedAt != nil)
        #expect(try store.activeOutageStates().isEmpty)
    }

    @Test("the API shape: every contract field present, absent values as null", arguments: StoreBackend.allCases)
    func apiShape(_ backend: StoreBackend) throws {
        let store = try backend.open("outage-json").store
        var engine = CorrelationEngine(settings: CorrelationSettings(openAfter: 1))
        let rows = try store.record(engine.evaluate(candidates: [candidate()], now: t0), active: engine.active)
        let json = try #require(try JSONSerialization.jsonObject(with: JSONCoding.encoder().encode(rows)) as? [[String: Any]])
        for field in ["id", "kind", "state", "endpoint", "zone", "host", "egress", "errorClass", "affectedHosts", "totalHosts", "startedAt", "endedAt"] {
            #expect(json[0].keys.contains(field), "missing \(field)")
        }
        #expect(json[0]["zone"] is NSNull)
        #expect(json[0]["endedAt"] is NSNull)
        #expect(json[0]["startedAt"] as? String == RFC3339.format(t0))
    }

    @Test("Alertmanager body: an array of one alert with labels (no empty ones), annotations, startsAt, endsAt once resolved")
    func alertmanagerBody() throws {
        var row = OutageRow(id: 7, kind: .endpointDown, state: .active, endpoint: StoreFixture.mirrorA, registry: "docker.io", zone: nil, host: nil,
                            egress: nil, errorClass: .tcpTimeout, affectedHosts: 4, totalHosts: 4, evidence: candidate().evidence, startedAt: t0, endedAt: nil)
        let open = try AlertDispatcher.body(.init(event: .opened, outage: row), format: .alertmanager, generatorURL: "http://127.0.0.1:7451/api/v1/outages")
        let alerts = try #require(try JSONSerialization.jsonObject(with: open) as? [[String: Any]])
        #expect(alerts.count == 1)
        let labels = try #require(alerts[0]["labels"] as? [String: String])
        #expect(labels == ["alertname": "RegwatchOutage", "kind": "endpoint_down", "severity": "critical", "endpoint": StoreFixture.mirrorA,
                           "registry": "docker.io", "class": "tcp_timeout"])
        #expect(alerts[0]["startsAt"] as? String == RFC3339.format(t0))
        #expect(alerts[0]["endsAt"] == nil)
        #expect((alerts[0]["annotations"] as? [String: String])?["summary"]?.contains("4/4 hosts") == true)

        row.state = .resolved
        row.endedAt = t0.addingTimeInterval(600)
        let closed = try AlertDispatcher.body(.init(event: .closed, outage: row), format: .alertmanager, generatorURL: "x")
        let resolved = try #require(try JSONSerialization.jsonObject(with: closed) as? [[String: Any]])
        #expect(resolved[0]["endsAt"] as? String == RFC3339.format(t0.addingTimeInterval(600)))

        let plain = try AlertDispatcher.body(.init(event: .opened, outage: row), format: .json, generatorURL: "x")
        let doc = try #require(try JSONSerialization.jsonObject(with: plain) as? [String: Any])
        #expect(doc["event"] as? String == "opened")
        #expect((doc["outage"] as? [String: Any])?["id"] as? Int == 7)
    }

    @Test("a webhook that refuses is retried with backoff, and evaluation never waits for it")
    func retries() async throws {
        // A local HTTP server that fails twice, then accepts.
        let server = try TinyHTTPServer(responses: [500, 500, 200])
        defer { server.stop() }
        let dispatcher = AlertDispatcher(webhooks: [.init(url: "http://127.0.0.1:\(server.port)/hook", format: .json)], generatorURL: "x",
                                         logger: .init(label: "test"), maxAttempts: 5, initialBackoff: .milliseconds(50))
        let row = OutageRow(id: 1, kind: .hostLocal, state: .active, endpoint: nil, registry: nil, zone: nil, host: "n9", egress: nil,
                            errorClass: .tcpRefused, affectedHosts: 1, totalHosts: 1, evidence: [], startedAt: t0, endedAt: nil)
        // Enqueued before the dispatcher even runs: if enqueueing waited for delivery this would never return.
        dispatcher.enqueue(.init(event: .opened, outage: row))
        let task = Task { try await dispatcher.run() }
        for _ in 0..<100 where server.requests < 3 { try await Task.sleep(for: .milliseconds(50)) }
        task.cancel()
        #expect(server.requests == 3)
        #expect(server.lastBody.contains("\"host\":\"n9\""))
    }
}

/// A one-thread HTTP/1.1 server on loopback answering each request with the next status of `responses`
/// (the last one repeats). Enough to play a flaky webhook receiver.
final class TinyHTTPServer: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var _requests = 0
    private var _lastBody = ""
    var requests: Int { lock.withLock { _requests } }
    var lastBody: String { lock.withLock { _lastBody } }

    init(responses: [Int]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listen(fd, 16)
        let listener = fd
        Thread.detachNewThread { [self] in
            var n = 0
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                var data = [UInt8]()
                var buf = [UInt8](repeating: 0, count: 65536)
                // Read headers and the body announced by Content-Length.
                while true {
                    let r = read(c, &buf, buf.count)
                    if r <= 0 { break }
                    data += buf[0..<r]
                    let text = String(decoding: data, as: UTF8.self)
                    if let end = text.range(of: "\r\n\r\n") {
                        let length = text.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                        if text.utf8.distance(from: end.upperBound, to: text.endIndex) >= length { break }
                    }
                }
                let text = String(decoding: data, as: UTF8.self)
                let status = responses[min(n, responses.count - 1)]
                n += 1
                lock.withLock {
                    _requests += 1
                    _lastBody = text.components(separatedBy: "\r\n\r\n").dropFirst().joined()
                }
                let reply = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                _ = reply.withCString { write(c, $0, strlen($0)) }
                close(c)
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
