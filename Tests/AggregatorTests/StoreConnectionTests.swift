import Foundation
@testable import RegwatchAggregator
import Testing

@Suite("Host connection state")
struct StoreConnectionTests {
    typealias F = StoreFixture

    @Test("a report connects a host; two silent intervals disconnect it; stale comes after staleAfter", arguments: StoreBackend.allCases)
    func silence(_ backend: StoreBackend) throws {
        let store = try backend.open("connection").store
        try F.ingest(store, [F.report("quiet", probes: [F.probe(F.hub)]), F.report("chatty", probes: [F.probe(F.hub)])])
        #expect(try store.hosts(now: F.t0, staleAfter: 3).allSatisfy { $0.connected })

        // 61 s later (interval 30 s): "chatty" reported again, "quiet" did not.
        try F.ingest(store, [F.report("chatty", at: F.t0.addingTimeInterval(61), probes: [F.probe(F.hub)])])
        #expect(try store.markSilentHostsDisconnected(now: F.t0.addingTimeInterval(61)) == 1)
        let hosts = Dictionary(uniqueKeysWithValues: try store.hosts(now: F.t0.addingTimeInterval(61), staleAfter: 3).map { ($0.id, $0) })
        #expect(hosts["quiet"]?.status == .disconnected)
        #expect(hosts["chatty"]?.status == .ok)
        #expect(try store.hosts(now: F.t0.addingTimeInterval(91), staleAfter: 3).first { $0.id == "quiet" }?.status == .stale)

        // It reports again: connected.
        try F.ingest(store, [F.report("quiet", at: F.t0.addingTimeInterval(95), probes: [F.probe(F.hub)])])
        #expect(try store.hosts(now: F.t0.addingTimeInterval(95), staleAfter: 3).first { $0.id == "quiet" }?.status == .ok)
    }
}
