import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// Three aggregators on one PostgreSQL, twelve agents in two zones listing all three, real registries
/// and runtime files, pull failures streaming from every host's kubelet log: kill the leader during a
/// rollout, kill a follower, restart PostgreSQL, cut the leader off PostgreSQL.
@Suite("aggregators sharing PostgreSQL: kills, restarts and cuts", .serialized, .ownThread, .tags(.root))
struct HAFailureTests {
    static let checkInterval = 1.0
    static let window = 2.0
    static let correlation = "{window: 2s, openAfter: 2, recoveryHold: 60s, minHosts: 2, minZones: 2, staleAfter: 6}"
    static let failover = "{mode: auto, canaryShare: 0.1, maxChangesPerHostPerHour: 20, resendInterval: 2s, canaryTimeout: 90s}"
    static let ids = (1...6).map { "z1-\($0)" } + (1...6).map { "z2-\($0)" }

    /// The lab with aggregator 0 leading (epoch 1), 1 and 2 following, every agent reporting.
    static func startLab() throws -> HALab {
        let ha = try HALab(aggregators: 3, mirrorNames: ["mirrorA", "mirrorB"], correlation: correlation, failover: failover,
                           leader: "{checkInterval: 1s}")
        do {
            for id in ids { try ha.addHost(id, zone: String(id.prefix(2))) }
            try ha.start(0)
            try #require(ha.lab.eventually(10) { ha.role(0).map { $0 == ("leader", 1) } ?? false }, "aggregator 0 does not lead")
            try ha.start(1)
            try ha.start(2)
            try #require(ha.lab.eventually(10) { ha.role(1)?.role == "follower" && ha.role(2)?.role == "follower" }, "1 and 2 do not follow")
            for id in ids { try ha.lab.startAgent(id) }
            try #require(try ha.lab.eventually(40) { try ha.reportedSince(0, .distantPast).count == ids.count },
                         "not every agent reported: \((try? ha.reportedSince(0, .distantPast)) ?? [])")
        } catch {
            ha.tearDown()
            throw error
        }
        return ha
    }

    /// Stops the writers, waits until every line written reached the database, and checks each is there once.
    static func expectEveryEventOnce(_ ha: HALab, _ writers: PullLogWriters) async throws -> Int {
        writers.stop()
        var written: [String: Set<String>] = [:]
        for id in ids { written[id] = writers.images(id) }
        var stored: [String: [String: Int]] = [:]
        let drained = try ha.lab.eventually(90) {
            stored = try ha.storedImages()
            return ids.allSatisfy { Set(stored[$0, default: [:]].keys) == written[$0] }
        }
        let progress = ids.map { "\($0) \(stored[$0]?.count ?? 0)/\(written[$0]?.count ?? 0)" }.joined(separator: ", ")
        #expect(drained, "not every written event reached the database: \(progress)")
        for id in ids {
            #expect(written[id]!.count > 0)
            let twice = stored[id, default: [:]].filter { $0.value != 1 }
            #expect(twice.isEmpty, "\(id): stored more than once: \(twice.keys.prefix(5))")
            #expect(Set(stored[id, default: [:]].keys).subtracting(written[id]!).isEmpty, "\(id): events nobody wrote")
        }
        return written.values.reduce(0) { $0 + $1.count }
    }

    @Test("kill -9 the leader while a failover rolls out: another leads within the check interval plus a window, the rollout completes, no generation twice, no old-epoch apply, every event once")
    func killLeaderDuringRollout() async throws {
        let ha = try Self.startLab()
        defer { ha.tearDown() }
        let writers = try Self.startWriters(ha)
        let b = ha.lab.url("mirrorB")

        // Kill the leader as soon as the generation to B is planned and not yet everywhere.
        let plan = try Self.killMirrorA(ha)
        try #require(plan.state != "complete", "the rollout completed before the kill: \(plan)")
        let killedAt = Date()
        ha.kill9(0)

        var next: (index: Int, epoch: Int)?
        while next == nil, Date() < killedAt.addingTimeInterval(30) {
            next = ha.leaders().first
            if next == nil { usleep(50_000) }
        }
        let tookOver = Date().timeIntervalSince(killedAt)
        let leader = try #require(next, "no aggregator took the lead")
        #expect(leader.epoch == 2)
        #expect(ha.leaders().count == 1, "two leaders: \(ha.leaders())")
        #expect(tookOver <= Self.checkInterval + Self.window, "the lead was taken \(tookOver) s after the kill")

        // The rollout completes under the new leader.
        let done = try Self.rolloutCompletes(ha, leader: leader.index)
        let completedAfter = Date().timeIntervalSince(killedAt)
        for host in ha.lab.hosts {
            let files = try ha.lab.fileMirrors(host)
            #expect(files.containerd == [b] && files.crio == [b], "\(host.id): \(files)")
        }

        // No generation number twice: the plans' are distinct, and every agent that applied a number applied
        // the same mirrors under it.
        let plans = try ha.failovers(leader.index)
        #expect(Set(plans.map(\.generation)).count == plans.count, "\(plans)")
        // The new term began at the latest when the leader was seen.
        let (oldEpoch, newEpoch) = try Self.expectNoGoingBack(ha, epoch: leader.epoch, termBegan: killedAt.addingTimeInterval(tookOver), completed: done)

        let events = try await Self.expectEveryEventOnce(ha, writers)
        print("ha-rollout: leader killed with generation \(plan.generation) in stage \(plan.state) (\(plan.acked) acked); aggregator \(leader.index) led with epoch \(leader.epoch) after \(String(format: "%.2f", tookOver)) s (bound \(Self.checkInterval + Self.window) s); rollout complete \(String(format: "%.1f", completedAfter)) s after the kill; \(oldEpoch) applies under epoch 1 before the new term, \(newEpoch) under epoch \(leader.epoch); \(events) pull events each stored once")
    }

    @Test("kill -9 a follower: its agents report through the others within the heartbeat timeout plus backoff; every event once")
    func killFollower() async throws {
        let ha = try Self.startLab()
        defer { ha.tearDown() }
        let writers = try Self.startWriters(ha)
        // Agents start at a random endpoint: some report through aggregator 2.
        let through2 = try Self.connectedHosts(ha, 2)
        try #require(!through2.isEmpty, "no agent connected to aggregator 2")

        let killedAt = Date()
        ha.kill9(2)
        // The agent's defaults: heartbeats time out after 15 s; the first reconnect waits at most 0.5 s.
        let bound = 15.0 + 0.5 + 1
        var all = false
        while !all, Date() < killedAt.addingTimeInterval(60) {
            all = (try? ha.reportedSince(0, killedAt.addingTimeInterval(0.5)).isSuperset(of: Self.ids)) ?? false
            if !all { usleep(100_000) }
        }
        let allBack = Date().timeIntervalSince(killedAt)
        #expect(all, "not every agent reports through aggregators 0 and 1")
        #expect(allBack <= bound, "every agent reported again \(allBack) s after the kill")
        #expect(ha.leaders().map(\.index) == [0] && ha.role(0)?.epoch == 1, "the leader changed: \(ha.leaders())")
        let moved = try Self.connectedHosts(ha, 0).union(Self.connectedHosts(ha, 1))
        #expect(moved.isSuperset(of: through2), "still not through 0 or 1: \(through2.subtracting(moved))")
        let events = try await Self.expectEveryEventOnce(ha, writers)
        print("ha-follower: \(through2.count) agents were on aggregator 2; every agent reported through the others \(String(format: "%.1f", allBack)) s after its kill -9 (bound \(bound) s); \(events) pull events each stored once")
    }

    @Test("restart PostgreSQL under load: aggregators reconnect, agents spool meanwhile, a leader returns, every event once")
    func restartPostgres() async throws {
        let ha = try Self.startLab()
        defer { ha.tearDown() }
        let writers = try Self.startWriters(ha)
        usleep(2_000_000)

        let stoppedAt = Date()
        ha.pg.stop()
        // While the database is away nothing is acknowledged: the agents' spools grow.
        let spools = Self.ids.map { "\(ha.dir)/\($0)/state/events.spool" }
        func sizes() -> [Int] { spools.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? -1 } }
        usleep(1_500_000)
        let before = sizes()
        usleep(4_000_000)
        let after = sizes()
        #expect(zip(before, after).allSatisfy { $0.0 >= 0 && $0.1 > $0.0 }, "spools did not grow while PostgreSQL was down: \(before) -> \(after)")
        #expect(ha.leaders().isEmpty, "an aggregator still leads without its database: \(ha.leaders())")
        try ha.pg.start()
        let restartedAt = Date()

        var leader: (index: Int, epoch: Int)?
        #expect(ha.lab.eventually(30) { leader = ha.leaders().first; return leader != nil }, "no leader after PostgreSQL came back")
        #expect((leader?.epoch ?? 0) >= 2)
        #expect(try ha.lab.eventually(30) { try ha.reportedSince(leader?.index ?? 0, restartedAt).isSuperset(of: Self.ids) },
                "not every agent reports after the restart")
        let reporting = Date().timeIntervalSince(restartedAt)
        for i in 0..<3 { #expect(!RegistryHarness.hasExited(ha.processes[i]), "aggregator \(i) exited") }
        let failedCommits = try (0..<3).map { try ha.lab.lines(ha.log($0), containing: "cannot store a batch").count }
        #expect(failedCommits.reduce(0, +) > 0, "no aggregator failed a commit: the restart was not under load")
        let events = try await Self.expectEveryEventOnce(ha, writers)
        print("ha-pg-restart: PostgreSQL down \(String(format: "%.1f", restartedAt.timeIntervalSince(stoppedAt))) s; spools grew \(zip(before, after).map { $0.1 - $0.0 }.reduce(0, +)) bytes in 4 s; aggregator \(leader?.index ?? -1) led with epoch \(leader?.epoch ?? -1); every agent reporting \(String(format: "%.1f", reporting)) s after the restart; \(events) pull events each stored once")
    }

    @Test("cut the leader off PostgreSQL (nftables) while agents reach it: it stops planning before another leads, sends nothing after, hands its agents over, no agent goes back; healed, it follows; every event once")
    func cutLeaderOffDatabase() async throws {
        let ha = try Self.startLab()
        defer { ha.tearDown() }
        let writers = try Self.startWriters(ha)
        let through0 = try Self.connectedHosts(ha, 0)

        let plan = try Self.killMirrorA(ha)

        // Drop every packet between aggregator 0's address and PostgreSQL, both ways; agents still reach it.
        let pgPort = ha.pg.port, address = ha.dbAddress(0)
        try ha.lab.inside(["/usr/sbin/nft", "add table inet rwcut"])
        try ha.lab.inside(["/usr/sbin/nft", "add chain inet rwcut out { type filter hook output priority 0 ; }"])
        try ha.lab.inside(["/usr/sbin/nft", "add rule inet rwcut out ip daddr \(address) tcp dport \(pgPort) counter drop"])
        try ha.lab.inside(["/usr/sbin/nft", "add rule inet rwcut out ip saddr \(address) tcp sport \(pgPort) counter drop"])
        let cutAt = Date()

        // Poll both sides: aggregator 0 must stop leading before any other starts, and never two at once.
        var stoppedAfter: Double?, next: (index: Int, epoch: Int)?, nextAfter: Double?, overlap: [(Int, Int)] = []
        while next == nil, Date() < cutAt.addingTimeInterval(40) {
            let leaders = ha.leaders()
            if leaders.count > 1 { overlap = leaders.map { ($0.index, $0.epoch) } }
            if stoppedAfter == nil, ha.role(0)?.role == "follower" { stoppedAfter = Date().timeIntervalSince(cutAt) }
            if let l = leaders.first(where: { $0.index != 0 }) { next = l; nextAfter = Date().timeIntervalSince(cutAt) }
            usleep(50_000)
        }
        let stopped = try #require(stoppedAfter, "aggregator 0 kept leading without its database: role \(String(describing: ha.role(0))), leaders \(ha.leaders()); its log: \(((try? ha.lab.lines(ha.log(0), containing: "lead")) ?? []).suffix(5))")
        let leader = try #require(next, "no other aggregator took the lead")
        #expect(overlap.isEmpty, "two leaders at once: \(overlap)")
        #expect(leader.epoch == 2)
        #expect(stopped <= Self.checkInterval * 1.5 + 0.5, "aggregator 0 stopped planning \(stopped) s after the cut")
        #expect(stopped < nextAfter!, "aggregator \(leader.index) led \(nextAfter!) s after the cut, before 0 stopped (\(stopped) s)")
        #expect(try metricValue(in: ha.get(0, "/metrics"), "regwatch_leader") == 0)
        #expect(try ha.lab.lines(ha.log(0), containing: "leadership lost").count == 1)

        // Its agents are handed over (it cannot store what they send) and report through the others; the
        // rollout completes everywhere while aggregator 0 is still cut off.
        var handedOver = false
        while !handedOver, Date() < cutAt.addingTimeInterval(60) {
            handedOver = (try? ha.reportedSince(leader.index, cutAt.addingTimeInterval(nextAfter!)).isSuperset(of: Self.ids)) ?? false
            if !handedOver { usleep(100_000) }
        }
        let allReporting = Date().timeIntervalSince(cutAt)
        #expect(handedOver, "the agents of aggregator 0 do not report through the others: \(Self.ids.filter { !((try? ha.reportedSince(leader.index, cutAt)) ?? []).contains($0) })")
        // Agents pick an aggregator at random: when some were on aggregator 0, it handed them over.
        if !through0.isEmpty {
            #expect(try !ha.lab.lines(ha.log(0), containing: "handing agents over to other aggregators").isEmpty)
        }
        let done = try Self.rolloutCompletes(ha, leader: leader.index)
        let completedAfter = Date().timeIntervalSince(cutAt)

        // Healed, aggregator 0 follows the new term.
        try ha.lab.inside(["/usr/sbin/nft", "delete table inet rwcut"])
        #expect(ha.lab.eventually(20) { ha.role(0).map { $0 == ("follower", leader.epoch) } ?? false }, "aggregator 0: \(String(describing: ha.role(0)))")
        #expect(ha.lab.eventually(20) { (try? ha.get(0, "/healthz")) == "ok\n" }, "aggregator 0 does not answer from the database again")

        // Nothing was sent by aggregator 0 once it stopped leading, and no agent went back or took the old
        // epoch after the new term began.
        let log0 = try String(contentsOfFile: ha.log(0), encoding: .utf8).split(separator: "\n")
        let lost = try #require(log0.firstIndex { $0.contains("leadership lost") })
        let sentAfter = log0[lost...].filter { $0.contains("failover directive sent") }
        #expect(sentAfter.isEmpty, "aggregator 0 sent directives after it stopped leading: \(sentAfter.prefix(3))")
        let (oldEpoch, newEpoch) = try Self.expectNoGoingBack(ha, epoch: leader.epoch, termBegan: cutAt.addingTimeInterval(nextAfter!), completed: done)
        let events = try await Self.expectEveryEventOnce(ha, writers)
        print("ha-cut: aggregator 0 cut off PostgreSQL in stage \(plan.state) of generation \(plan.generation), \(through0.count) agents on it; it stopped leading \(String(format: "%.2f", stopped)) s after the cut, aggregator \(leader.index) led with epoch \(leader.epoch) after \(String(format: "%.2f", nextAfter!)) s; every agent reporting through the others \(String(format: "%.1f", allReporting)) s after the cut, rollout complete \(String(format: "%.1f", completedAfter)) s after it (still cut); \(oldEpoch) applies under epoch 1, \(newEpoch) under epoch \(leader.epoch); \(events) pull events each stored once")
    }

    /// Starts the writers and returns once every host's log has its first lines.
    static func startWriters(_ ha: HALab) throws -> PullLogWriters {
        let writers = PullLogWriters(ids: ids, linesPerTick: 2, tick: .milliseconds(100)) { ha.kubeletLog($0) }
        writers.start()
        try #require(pollUntil(10) { ids.allSatisfy { (writers.counts[$0] ?? 0) > 0 } }, "the writers wrote nothing")
        return writers
    }

    /// Stops mirror A and returns the failover to B as soon as aggregator 0 has planned it.
    static func killMirrorA(_ ha: HALab) throws -> FailoverLab.Plan {
        let b = ha.lab.url("mirrorB")
        ha.lab.h.stop(name: "mirrorA")
        var rolling: FailoverLab.Plan?
        let deadline = Date().addingTimeInterval(90)
        while rolling == nil, Date() < deadline {
            rolling = (try? ha.failovers(0))?.first { $0.mirrors == [b] }
            if rolling == nil { usleep(50_000) }
        }
        return try #require(rolling, "no failover to B planned: \((try? ha.failovers(0)) ?? [])")
    }

    /// Waits until the failover to B is complete everywhere, as `leader` reports: every plan is complete,
    /// and every host applied a generation whose mirrors are B. Hosts that fell stale while their
    /// aggregator was cut off are left out of the generation in flight and, back, get one of their own
    /// (same mirrors, a new number): the newest such plan is returned.
    static func rolloutCompletes(_ ha: HALab, leader: Int) throws -> FailoverLab.Plan {
        let b = ha.lab.url("mirrorB")
        var done: FailoverLab.Plan?
        let completed = try ha.lab.eventually(120) {
            let plans = try ha.failovers(leader)
            let toB = Set(plans.filter { $0.mirrors == [b] && $0.state == "complete" }.map(\.generation))
            done = plans.first { toB.contains($0.generation) }
            let hosts = try ha.json(leader, "/api/v1/hosts")
            return done != nil && plans.allSatisfy { $0.state == "complete" } && hosts.count == ids.count
                && hosts.allSatisfy { toB.contains($0["appliedGeneration"] as? Int ?? -1) }
        }
        try #require(completed, "the rollout did not complete: \((try? ha.failovers(leader)) ?? []) applied \((try? ha.json(leader, "/api/v1/hosts").map { $0["appliedGeneration"] as? Int ?? -1 }) ?? [])")
        return done!
    }

    /// What every agent applied: (epoch, generation) only ever rising, nothing from an older epoch than
    /// `epoch` after `termBegan` (log times are whole seconds), and one mirror set per generation number.
    /// Returns how many applies were under an older epoch and how many under `epoch` or newer.
    static func expectNoGoingBack(_ ha: HALab, epoch: Int, termBegan: Date, completed: FailoverLab.Plan) throws -> (Int, Int) {
        let termSecond = termBegan.timeIntervalSince1970.rounded(.down)
        var mirrorsOf: [Int: Set<String>] = [:]
        var older = 0, newer = 0
        for id in ids {
            let applies = try ha.applies(id)
            for (a, b) in zip(applies, applies.dropFirst()) {
                #expect((a.epoch, a.generation) < (b.epoch, b.generation), "\(id) applied \(b) after \(a)")
            }
            for a in applies {
                mirrorsOf[a.generation, default: []].insert(a.mirrors)
                if a.epoch < epoch {
                    older += 1
                    #expect(a.at.timeIntervalSince1970 <= termSecond, "\(id) applied \(a) from the old epoch after the new term began")
                } else {
                    newer += 1
                }
            }
        }
        #expect(mirrorsOf.allSatisfy { $0.value.count == 1 }, "a generation number with two mirror sets: \(mirrorsOf)")
        #expect(mirrorsOf[completed.generation] != nil)
        return (older, newer)
    }

    /// Hosts with an established connection to aggregator `i`'s ZeroMQ port, by the agents' PIDs (`ss`).
    static func connectedHosts(_ ha: HALab, _ i: Int) throws -> Set<String> {
        let (status, out) = try RegistryHarness.spawnAndWait(ha.lab.enter[0], Array(ha.lab.enter.dropFirst()) + ["/usr/bin/ss", "-Htnp", "state", "established", "dport", "= :\(ha.zmqPort(i))"])
        guard status == 0 else { throw HarnessError("ss exited \(status)") }
        let pids = Set(out.split(separator: "\n").flatMap { line in
            line.split(separator: "pid=").dropFirst().compactMap { Int32($0.prefix { $0.isNumber }) }
        })
        return Set(ha.lab.agents.filter { pids.contains($0.value.processIdentifier) }.keys)
    }
}
