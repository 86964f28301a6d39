import Foundation
import Logging
@testable import RegwatchAggregator
import RegwatchShared
import RegwatchTestSupport
import Testing

/// Several aggregators on one PostgreSQL database: exactly one leads (the advisory lock's holder), each
/// term gets the next epoch, a leader whose lock session is gone stops leading at its next check, and a
/// deposed leader cannot commit failover state.
@Suite("Leader election")
struct LeaderElectionTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    struct Aggregator {
        let store: PostgresFleetStore
        let lock: PostgresAdvisoryLock
        let leadership = Leadership()
        let election: LeaderElectionService

        init(_ name: String, _ location: PostgresLocation, _ server: PostgresServer) throws {
            store = try PostgresFleetStore(location: location, password: server.password)
            lock = try PostgresAdvisoryLock(location: location, password: server.password, timeout: .seconds(2), logger: LeaderElectionTests.logger)
            election = LeaderElectionService(lock: lock, store: store, holder: name, interval: .seconds(1), leadership: leadership, logger: LeaderElectionTests.logger)
        }
    }

    @Test("one leader at a time; a lost lock session ends its term at the next check; the deposed leader cannot save failover state")
    func election() throws {
        let server = try SharedPostgres.server.get()
        let location = try PostgresLocation.parse(try server.createDatabase("t_leader"))
        let a = try Aggregator("a", location, server), b = try Aggregator("b", location, server), c = try Aggregator("c", location, server)
        defer { for x in [a, b, c] { x.lock.release(); x.store.close() } }

        a.election.check(now: StoreFixture.t0)
        b.election.check(now: StoreFixture.t0)
        c.election.check(now: StoreFixture.t0)
        #expect(a.leadership.current == .init(leading: 1, epoch: 1))
        #expect(b.leadership.current == .init(leading: nil, epoch: 1) && c.leadership.current == .init(leading: nil, epoch: 1))
        #expect(try a.store.currentTerm() == LeaderTerm(epoch: 1, holder: "a", since: StoreFixture.t0))
        // A second check changes nothing.
        for x in [a, b, c] { x.election.check(now: StoreFixture.t0) }
        #expect(a.leadership.current.leading == 1 && !b.leadership.current.isLeader && !c.leadership.current.isLeader)

        var state = FailoverState()
        state.generation = 4
        try a.store.saveFailover(state, now: StoreFixture.t0, epoch: 1)

        // The leader's lock session ends (its database connection was cut, or the server restarted it).
        let killed = try server.psql("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
              AND objid = \(PostgresAdvisoryLock.key & 0xFFFF_FFFF) AND classid = \(PostgresAdvisoryLock.key >> 32)
            """)
        #expect(killed == "1")
        // Another candidate gets the lock once the server has ended that session (at once, or a moment
        // later): there is never a second leader of the same term.
        let deadline = Date().addingTimeInterval(10)
        while !b.leadership.current.isLeader, Date() < deadline {
            b.election.check(now: StoreFixture.t0.addingTimeInterval(1))
            if !b.leadership.current.isLeader { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(b.leadership.current == .init(leading: 2, epoch: 2))
        a.election.check(now: StoreFixture.t0.addingTimeInterval(1))
        #expect(a.leadership.current == .init(leading: nil, epoch: 1), "a kept leading after its lock was gone")
        c.election.check(now: StoreFixture.t0.addingTimeInterval(1))
        #expect(!c.leadership.current.isLeader && c.leadership.current.epoch == 2)

        // The old leader's late save of its term is refused and writes nothing.
        state.generation = 5
        #expect(throws: StoreError.deposed(path: location.description, epoch: 1, current: 2)) {
            try a.store.saveFailover(state, now: StoreFixture.t0.addingTimeInterval(2), epoch: 1)
        }
        #expect(try b.store.failoverState()?.generation == 4)
        state.generation = 6
        try b.store.saveFailover(state, now: StoreFixture.t0.addingTimeInterval(2), epoch: 2)
        #expect(try a.store.failoverState()?.generation == 6)

        // A follower's operator change is refused, naming the leader.
        let follower = try FailoverService(store: a.store, settings: FailoverSettings(), signer: nil, router: nil, interval: .seconds(1),
                                           staleAfter: 3, logger: Self.logger, leadership: a.leadership)
        #expect(throws: StoreError.notLeader(path: location.description, leader: "b")) { try follower.freeze(reason: "x") }

        // Shutting down the leader lets the next candidate lead with the next epoch.
        // (The server frees the lock once it has processed the closed session: a check a moment later takes it.)
        b.lock.release()
        let again = Date().addingTimeInterval(10)
        while !a.leadership.current.isLeader, Date() < again {
            a.election.check(now: StoreFixture.t0.addingTimeInterval(3))
            if !a.leadership.current.isLeader { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(a.leadership.current == .init(leading: 3, epoch: 3))
    }

    @Test("on SQLite the one aggregator leads, with a new term at each start")
    func sole() throws {
        let path = StoreFixture.path("sole")
        for expected in [UInt64(1), 2] {
            let store = try FleetStore(path: path)
            let leadership = Leadership()
            LeaderElectionService(lock: SoleLeaderLock(), store: store, holder: "solo", interval: .seconds(1), leadership: leadership, logger: Self.logger)
                .check(now: StoreFixture.t0)
            #expect(leadership.current == .init(leading: expected, epoch: expected))
        }
    }
}

/// What a follower forwards for the leader: only committed targets, only to live hosts that lack them,
/// at most once per resend interval, nothing while frozen, and it never plans.
@Suite("Failover forwarding by a follower")
struct FollowerSendTests {
    @Test("committed targets only, to live hosts that have not applied them, once per resend interval; frozen: nothing")
    func sends() throws {
        let now = StoreFixture.t0
        var state = FailoverState()
        state.generation = 5
        let target = FailoverState.Target(generation: 5, mirrors: ["docker.io": ["https://b"]], reason: "endpoint_down https://a")
        for id in ["h1", "h2", "h3", "h4"] { state.hosts[id] = .init(target: target) }
        state.hosts["h5"] = .init(target: nil)
        let pools: [String: [MirrorSpec]] = ["docker.io": [MirrorSpec(url: "https://a"), MirrorSpec(url: "https://b")]]
        let inputs = FailoverInputs(hosts: [
            .init(id: "h1", mirrorPools: pools, reportedAt: now),
            .init(id: "h2", mirrorPools: pools, appliedGeneration: 5, reportedAt: now),
            .init(id: "h3", mirrorPools: pools, reportedAt: now, stale: true),
            .init(id: "h4", mirrorPools: pools, reportedAt: now.addingTimeInterval(-5),
                  lastAck: .init(generation: 5, outcome: .applied, reason: "", at: now)),
            .init(id: "h5", mirrorPools: pools, reportedAt: now),
            .init(id: "h6", mirrorPools: pools, reportedAt: now),
        ])
        var settings = FailoverSettings()
        settings.resendInterval = 30
        let controller = FailoverController(settings: settings, state: state)
        let first = controller.followerSends(inputs, now: now, lastSent: [:])
        #expect(first.map(\.host) == ["h1"])
        #expect(first.first?.directive.generation == 5 && first.first?.directive.mirrors == target.mirrors && first.first?.directive.target == "h1")
        #expect(controller.followerSends(inputs, now: now.addingTimeInterval(10), lastSent: ["h1": (5, now)]).isEmpty)
        #expect(controller.followerSends(inputs, now: now.addingTimeInterval(31), lastSent: ["h1": (5, now)]).map(\.host) == ["h1"])
        #expect(controller.state == state, "forwarding changed the controller's state")

        var frozen = state
        frozen.frozen = .init(since: now, reason: "change freeze")
        #expect(FailoverController(settings: settings, state: frozen).followerSends(inputs, now: now, lastSent: [:]).isEmpty)
    }
}
