import Foundation
import Logging
@testable import RegwatchAggregator
import RegwatchShared
import Testing

/// The failover service's store side on both backends (an SQLite file, a PostgreSQL database): inputs gathered from ingested reports and
/// recorded outages, the controller state saved after a step and restored by a new service (a restart),
/// acks recorded as the host's latest and in the timeline, and the read-only preview of `failover plan`.
@Suite("Failover service and store")
struct FailoverServiceTests {
    typealias F = StoreFixture
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let hosts = [("z1-a", "z1"), ("z1-b", "z1"), ("z2-a", "z2"), ("z2-b", "z2")]

    /// Four hosts whose probes of mirror A time out, and the open `endpoint_down` outage for A.
    static func fleetWithOutage(at t: Date, _ backend: StoreBackend) throws -> any FleetStoring {
        let store = try backend.open("failover").store
        try F.ingest(store, hosts.map { id, zone in
            F.report(id, zone: zone, at: t, probes: [F.probe(F.mirrorA, .tcpTimeout, at: t), F.probe(F.mirrorB, at: t)], interval: 1)
        })
        let key = OutageKey(kind: .endpointDown, endpoint: F.mirrorA, registry: "docker.io")
        let active = ActiveOutage(candidate: OutageCandidate(key: key, errorClass: .tcpTimeout, affectedHosts: 4, totalHosts: 4), startedAt: t)
        _ = try store.record([.opened(active.candidate, at: t)], active: [key: active])
        return store
    }

    @Test("a step plans a generation from the store's outages and pools, saves it, and a new service resumes it", arguments: StoreBackend.allCases)
    func stepPersistRestore(_ backend: StoreBackend) throws {
        let t = F.t0
        let store = try Self.fleetWithOutage(at: t, backend)
        let settings = FailoverSettings(mode: .auto, canaryShare: 0.1)
        let service = try FailoverService(store: store, settings: settings, signer: nil, router: nil, interval: .seconds(1), staleAfter: 5, logger: Self.logger)
        // Without a signing key nothing can be sent: the service only advises.
        var acks: [String: FailoverInputs.Ack] = [:]
        service.step(acks: &acks, now: t.addingTimeInterval(0.5))
        let plans = service.plans
        #expect(plans.count == 1 && plans[0].state == .advised && plans[0].mirrors == ["docker.io": [F.mirrorB]], "\(plans)")
        #expect(plans[0].hosts.count == 4)

        let restored = try FailoverService(store: store, settings: settings, signer: nil, router: nil, interval: .seconds(1), staleAfter: 5, logger: Self.logger)
        #expect(restored.generation == service.generation && restored.summaries == service.summaries)
        // The timeline table has the generation too.
        let preview = try FailoverService.preview(store: store, settings: settings, staleAfter: 5, now: t.addingTimeInterval(0.6))
        #expect(preview.map(\.mirrors) == [["docker.io": [F.mirrorB]]])
    }

    @Test("with a signing key the canaries (one per zone) are targeted; acks are stored and drive the next step", arguments: StoreBackend.allCases)
    func canariesAndAcks(_ backend: StoreBackend) throws {
        let t = F.t0
        let store = try Self.fleetWithOutage(at: t, backend)
        let signer = CommandSigner(key: .init())
        let service = try FailoverService(
            store: store, settings: FailoverSettings(mode: .auto, canaryShare: 0.1), signer: signer, router: nil, interval: .seconds(1),
            staleAfter: 5, logger: Self.logger)
        var acks: [String: FailoverInputs.Ack] = [:]
        service.step(acks: &acks, now: t.addingTimeInterval(0.5))
        let plan = try #require(service.plans.first)
        #expect(plan.state == .canary && plan.canaries.count == 2 && Set(plan.canaries.map { $0.prefix(2) }) == ["z1", "z2"])

        for canary in plan.canaries {
            service.receive(ack: FailoverAck(generation: plan.generation, outcome: .applied, reason: "ok", appliedGeneration: plan.generation),
                            from: canary, at: t.addingTimeInterval(0.7))
        }
        service.receive(ack: FailoverAck(generation: 99, outcome: .rejected, reason: "not ours", appliedGeneration: 0), from: "z1-x", at: t)
        service.step(acks: &acks, now: t.addingTimeInterval(0.8))
        #expect(Set(acks.keys) == Set(plan.canaries + ["z1-x"]))
        let stored = try store.lastFailoverAcks()
        #expect(stored[plan.canaries[0]]?.outcome == .applied && stored[plan.canaries[0]]?.generation == plan.generation)
        #expect(try store.failoverState()?.plans.first?.acked == 2)
        // The canaries' next probes of B (after the ack) are healthy: the rest follow.
        let t2 = t.addingTimeInterval(1)
        try F.ingest(store, Self.hosts.map { id, zone in
            F.report(id, zone: zone, at: t2, probes: [F.probe(F.mirrorA, .tcpTimeout, at: t2), F.probe(F.mirrorB, at: t2)],
                     generation: plan.canaries.contains(id) ? plan.generation : 0, interval: 1)
        })
        service.step(acks: &acks, now: t2.addingTimeInterval(0.1))
        #expect(service.plans.first?.state == .rolling, "\(String(describing: service.plans.first))")
    }

    /// A database restored from a backup (or a new one after a move) has an older term than agents
    /// obeyed: their refusals for the term alone raise it, and do not halt the plan.
    @Test("agents that obeyed a newer term: the term is raised above it, the plan goes on", arguments: StoreBackend.allCases)
    func termRaisedByAgents(_ backend: StoreBackend) throws {
        let t = F.t0
        let store = try Self.fleetWithOutage(at: t, backend)
        let leadership = Leadership()
        let election = LeaderElectionService(lock: SoleLeaderLock(), store: store, holder: "solo", interval: .seconds(1), leadership: leadership, logger: Self.logger)
        election.check(now: t)
        #expect(leadership.current.leading == 1)
        let service = try FailoverService(
            store: store, settings: FailoverSettings(mode: .auto, canaryShare: 0.1), signer: CommandSigner(key: .init()), router: nil,
            interval: .seconds(1), staleAfter: 5, logger: Self.logger, leadership: leadership)
        var acks: [String: FailoverInputs.Ack] = [:]
        service.step(acks: &acks, now: t.addingTimeInterval(0.5))
        let plan = try #require(service.plans.first)
        #expect(plan.state == .canary)
        for canary in plan.canaries {
            service.receive(ack: FailoverAck(generation: plan.generation, outcome: .rejected, reason: "epoch 1 is older than the applied epoch 7 generation 0",
                                             appliedGeneration: 0, appliedEpoch: 7), from: canary, at: t.addingTimeInterval(0.6))
        }
        service.step(acks: &acks, now: t.addingTimeInterval(0.7))
        #expect(leadership.current.leading == 8)
        #expect(try store.currentTerm()?.epoch == 8)
        #expect(service.plans.first?.state == .canary && service.plans.first?.rejected == 0, "\(String(describing: service.plans.first))")
        // Saves of the raised term go through.
        try service.freeze(reason: "check", at: t.addingTimeInterval(0.8))
        #expect(try store.failoverState()?.frozen?.reason == "check")
    }

    @Test("operator freeze is saved at once and blocks new plans until thaw", arguments: StoreBackend.allCases)
    func freezeThaw(_ backend: StoreBackend) throws {
        let t = F.t0
        let store = try Self.fleetWithOutage(at: t, backend)
        let service = try FailoverService(
            store: store, settings: FailoverSettings(), signer: CommandSigner(key: .init()), router: nil, interval: .seconds(1), staleAfter: 5,
            logger: Self.logger)
        try service.freeze(reason: "change freeze", at: t)
        #expect(try store.failoverState()?.frozen?.reason == "change freeze")
        var acks: [String: FailoverInputs.Ack] = [:]
        service.step(acks: &acks, now: t.addingTimeInterval(0.5))
        #expect(service.plans.isEmpty && service.isFrozen)
        try service.thaw(at: t.addingTimeInterval(0.6))
        service.step(acks: &acks, now: t.addingTimeInterval(0.7))
        #expect(service.plans.count == 1 && !service.isFrozen)
    }

    @Test("API token: read from a private file, compared exactly; a world-readable or short token is refused")
    func apiToken() throws {
        let dir = temporaryDirectory("token")
        let path = "\(dir)/token"
        try "s3cret-token-0123456789\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let token = try #require(try APIToken.load(path, configFile: "agg.yaml"))
        #expect(token.authorizes("Bearer s3cret-token-0123456789"))
        #expect(!token.authorizes("Bearer s3cret-token-012345678"))
        #expect(!token.authorizes("Bearer s3cret-token-0123456780"))
        #expect(!token.authorizes("Basic s3cret-token-0123456789"))
        #expect(!token.authorizes(nil))
        chmod(path, 0o644)
        #expect(throws: ConfigError.self) { try APIToken.load(path, configFile: "agg.yaml") }
        try "short".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        #expect(throws: ConfigError.self) { try APIToken.load(path, configFile: "agg.yaml") }
        #expect(try APIToken.load(nil, configFile: "agg.yaml") == nil)
    }
}
