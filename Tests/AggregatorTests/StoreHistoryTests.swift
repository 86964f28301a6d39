import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing

/// What the dashboard and the operator metrics read beyond the latest state: the quota history per
/// egress, the agents' spool counts, a host's runtimes and pull failures, outages of a window.
@Suite("Fleet store: history and host detail")
struct StoreHistoryTests {
    typealias F = StoreFixture

    @Test("headroom: the lowest reading of a minute is kept, minutes come back in order, retention drops old ones", arguments: StoreBackend.allCases)
    func headroom(_ backend: StoreBackend) throws {
        let store = try backend.open().store
        let minute = Date(timeIntervalSince1970: 1_700_000_040)  // a minute's start
        try store.recordHeadroom(["nat-1": 40, "nat-2": 90], at: minute.addingTimeInterval(5))
        try store.recordHeadroom(["nat-1": 55], at: minute.addingTimeInterval(30))   // higher: the 40 stands
        try store.recordHeadroom(["nat-1": 12], at: minute.addingTimeInterval(59))   // lower: taken
        try store.recordHeadroom(["nat-1": 80], at: minute.addingTimeInterval(60))   // the next minute
        try store.recordHeadroom([:], at: minute)
        let rows = try store.headroom(since: minute)
        #expect(rows == [
            HeadroomMinuteRow(egress: "nat-1", minute: minute, remaining: 12),
            HeadroomMinuteRow(egress: "nat-1", minute: minute.addingTimeInterval(60), remaining: 80),
            HeadroomMinuteRow(egress: "nat-2", minute: minute, remaining: 90),
        ])
        #expect(try store.headroom(since: minute.addingTimeInterval(60)).count == 1)
        try store.maintain(now: minute.addingTimeInterval(7 * 86400 + 30), rawRetention: 3600, minuteRetention: 7 * 86400, eventRetention: 7 * 86400)
        #expect(try store.headroom(since: .distantPast) == [HeadroomMinuteRow(egress: "nat-1", minute: minute.addingTimeInterval(60), remaining: 80)])
    }

    @Test("spool counts: stored per host, dropped events counted as increases, an agent restart counted from zero, outdated reports not counted", arguments: StoreBackend.allCases)
    func spool(_ backend: StoreBackend) throws {
        let store = try backend.open().store
        func report(_ at: Double, _ spool: SpoolStatus?) -> Report {
            var r = F.report("node-1", at: F.t0.addingTimeInterval(at), probes: [F.probe(F.hub)])
            r.spool = spool
            return r
        }
        #expect(try F.ingest(store, [report(0, SpoolStatus(pending: 5, dropped: 3))]).eventsDroppedByAgents == 3)
        #expect(try F.ingest(store, [report(30, SpoolStatus(pending: 9, dropped: 10))]).eventsDroppedByAgents == 7)
        #expect(try F.ingest(store, [report(60, SpoolStatus(pending: 0, dropped: 10))]).eventsDroppedByAgents == 0)
        // Restarted agent: its count starts again.
        #expect(try F.ingest(store, [report(90, SpoolStatus(pending: 1, dropped: 2))]).eventsDroppedByAgents == 2)
        // An outdated report is not applied, so not counted either.
        #expect(try F.ingest(store, [report(10, SpoolStatus(pending: 0, dropped: 50))]).eventsDroppedByAgents == 0)
        let host = try #require(try store.hosts(now: F.t0.addingTimeInterval(95), staleAfter: 3, id: "node-1").first)
        #expect(host.spool == SpoolStatus(pending: 1, dropped: 2))
        // An older agent that sends no spool: nothing counted, nothing shown.
        #expect(try F.ingest(store, [report(120, nil)]).eventsDroppedByAgents == 0)
        #expect(try store.hosts(now: F.t0.addingTimeInterval(125), staleAfter: 3, id: "node-1").first?.spool == nil)
        #expect(try store.hosts(now: F.t0, staleAfter: 3, id: "no-such-host").isEmpty)
    }

    @Test("host detail: runtime mirror order as reported, newest pull failures only, outages overlapping a window", arguments: StoreBackend.allCases)
    func hostDetail(_ backend: StoreBackend) throws {
        let store = try backend.open().store
        let runtime = RuntimeConfigState(runtime: .containerd, mirrors: ["docker.io": [F.mirrorB, F.mirrorA]], valid: true, hash: "h1")
        try F.ingest(store, [F.report("node-1", probes: [F.probe(F.mirrorA)], runtimes: [runtime])])
        var batch = IngestBatch()
        batch.append(events: [F.event(1, at: F.t0, .failure, .tcpRefused), F.event(2, at: F.t0.addingTimeInterval(5)),
                              F.event(3, at: F.t0.addingTimeInterval(10), .failure, .authFailed)], hostID: "node-1")
        try store.commit(batch)
        #expect(try store.runtimeStates(host: "node-1") == [runtime])
        #expect(try store.runtimeStates(host: "node-2").isEmpty)
        #expect(try store.pullEvents(host: "node-1", failuresOnly: true).map(\.seq) == [3, 1])
        #expect(try store.pullEvents(host: "node-1", failuresOnly: false, limit: 2).map(\.seq) == [3, 2])
        #expect(try store.outages(since: F.t0).isEmpty)
    }

    @Test("forget: hosts and their runtime states go, all or nothing; pull events stay", arguments: StoreBackend.allCases)
    func forget(_ backend: StoreBackend) throws {
        let store = try backend.open().store
        let runtime = RuntimeConfigState(runtime: .containerd, mirrors: ["docker.io": [F.mirrorA]], valid: true, hash: "h1")
        try F.ingest(store, [F.report("node-1", probes: [F.probe(F.mirrorA)], runtimes: [runtime]),
                             F.report("node-2", probes: [F.probe(F.mirrorA)], runtimes: [runtime])])
        var batch = IngestBatch()
        batch.append(events: [F.event(1, .failure, .tcpRefused)], hostID: "node-1")
        try store.commit(batch)
        #expect(throws: StoreError.unknownHosts(path: store.location, hosts: ["node-9"])) { try store.forget(hosts: ["node-1", "node-9"]) }
        #expect(try store.hosts(now: F.t0, staleAfter: 3).count == 2)
        try store.forget(hosts: ["node-1", "node-1"])
        #expect(try store.hosts(now: F.t0, staleAfter: 3).map(\.id) == ["node-2"])
        #expect(try store.runtimeStates(host: "node-1").isEmpty)
        #expect(try store.runtimeStates(host: "node-2") == [runtime])
        #expect(try store.pullEvents(host: "node-1", failuresOnly: true).count == 1)
    }

    @Test("latest states of one host", arguments: StoreBackend.allCases)
    func latestStatesOfOneHost(_ backend: StoreBackend) throws {
        let store = try backend.open().store
        try F.ingest(store, [F.report("node-1", probes: [F.probe(F.mirrorA), F.probe(F.hub)]), F.report("node-2", probes: [F.probe(F.mirrorA)])])
        #expect(try store.latestStates(now: F.t0, staleAfter: 3, host: "node-1").map(\.hostID) == ["node-1", "node-1"])
        #expect(try store.latestStates(now: F.t0, staleAfter: 3, host: "node-9").isEmpty)
        #expect(try store.latestStates(now: F.t0, staleAfter: 3).count == 3)
    }
}
