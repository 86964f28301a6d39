import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing

/// The failover controller across steps on a manual clock, against a simulated fleet of 10 hosts in two
/// zones (z1: a1…a5 behind nat-1, z2: b1…b5 behind nat-2).
@Suite("Failover controller")
struct FailoverControllerTests {
    typealias F = FailoverFleet

    static let downA = F.key(.endpointDown, F.mirrorA)

    static func controller(_ settings: FailoverSettings = .test()) -> FailoverController {
        FailoverController(settings: settings)
    }

    /// Fleet with mirror A down; the controller has stepped once at t0 (plan + canary sends).
    static func startedFailover(
        _ settings: FailoverSettings = .test(), setup: (inout F) -> Void = { _ in }
    ) -> (FailoverController, F, [FailoverAction]) {
        var c = controller(settings)
        var fleet = F()
        setup(&fleet)
        fleet.outages = [F.outage(downA)]
        let actions = fleet.cycle(&c, at: F.at(0))
        return (c, fleet, actions)
    }

    // MARK: Planning

    @Test("no outage, or only kinds that never fail over: nothing planned, nothing sent")
    func quietFleet() {
        var c = Self.controller()
        var fleet = F()
        #expect(fleet.run(&c, from: 0, count: 5).isEmpty)
        fleet.outages = [OutageKind.hostLocal, .zoneNetwork, .authBroken, .dnsOutage, .certExpiring].map { F.outage(F.key($0)) }
        #expect(fleet.run(&c, from: 150, count: 5).isEmpty)
        #expect(c.generation == 0 && c.plans.isEmpty)
    }

    @Test("endpoint_down of a mirror: one generation, canaries one per zone, directives without the mirror")
    func failoverPlanned() throws {
        let (c, _, actions) = Self.startedFailover()
        let plan = try #require(actions.plannedPlans.first)
        #expect(actions.plannedPlans.count == 1)
        #expect(plan.generation == 1 && c.generation == 1)
        #expect(plan.kind == .failover && plan.state == .canary)
        #expect(plan.mirrors == F.withoutA)
        #expect(plan.reason == "failover: endpoint_down(registry=docker.io endpoint=https://mirror-a:5000)")
        #expect(plan.hosts.count == 10)
        // 10% of 10 is one, but there are two zones.
        #expect(plan.canaries.count == 2)
        #expect(Set(plan.canaries.map { $0.prefix(1) }) == ["a", "b"])
        #expect(actions.sentHosts == plan.canaries)
        for (host, d) in actions.sends {
            #expect(d.target == host && d.generation == 1 && d.mirrors == F.withoutA)
            #expect(d.issuedAt == F.at(0) && d.expiresAt == F.at(600))
            #expect(d.reason == plan.reason)
        }
        #expect(c.summaries.first == FailoverPlan.Summary(
            generation: 1, state: .canary, reason: plan.reason, mirrors: F.withoutA, acked: 0, pending: 10, rejected: 0))
    }

    @Test("upstream_down_via_mirror fails over the same way")
    func upstreamDownViaMirror() throws {
        var c = Self.controller()
        var fleet = F()
        let k = F.key(.upstreamDownViaMirror, F.mirrorA)
        fleet.outages = [F.outage(k)]
        let plan = try #require(fleet.cycle(&c, at: F.at(0)).plannedPlans.first)
        #expect(plan.mirrors == F.withoutA && plan.reason == "failover: \(k)")
    }

    @Test("rate_limit_exhausted: only the hosts of that egress, authenticated mirror first")
    func rateLimitEgress() throws {
        var c = Self.controller()
        var fleet = F()
        fleet.outages = [F.outage(F.key(.rateLimitExhausted, F.hub, egress: "nat-1"))]
        let actions = fleet.run(&c, from: 0, count: 4)
        #expect(actions.plannedPlans.count == 1)
        let plan = try #require(actions.plannedPlans.first)
        #expect(plan.mirrors == ["docker.io": [F.mirrorAuth, F.mirrorA, F.mirrorB], "ghcr.io": [F.mirrorB]])
        #expect(Set(plan.hosts.keys) == ["a1", "a2", "a3", "a4", "a5"])
        #expect(plan.canaries.count == 1)
        #expect(Set(actions.sentHosts) == ["a1", "a2", "a3", "a4", "a5"])
        #expect(actions.completedGenerations == [1])
        for b in ["b1", "b2", "b3", "b4", "b5"] { #expect(fleet.agents[b]!.received.isEmpty) }
    }

    @Test("hosts needing different maps get separate generations from one counter")
    func separateGenerationsPerMap() {
        var c = Self.controller()
        var fleet = F()
        fleet.outages = [F.outage(Self.downA), F.outage(F.key(.rateLimitExhausted, F.hub, egress: "nat-1"))]
        let plans = fleet.cycle(&c, at: F.at(0)).plannedPlans
        #expect(plans.map(\.generation) == [1, 2])
        #expect(plans[0].mirrors == ["docker.io": [F.mirrorAuth, F.mirrorB], "ghcr.io": [F.mirrorB]])
        #expect(Set(plans[0].hosts.keys) == ["a1", "a2", "a3", "a4", "a5"])
        #expect(plans[1].mirrors == F.withoutA)
        #expect(Set(plans[1].hosts.keys) == ["b1", "b2", "b3", "b4", "b5"])
    }

    // MARK: Staged rollout

    @Test("canaries ack and probe the new first mirror healthy: the rest follow, then complete")
    func stagedRollout() throws {
        var (c, fleet, first) = Self.startedFailover()
        let canaries = try #require(first.plannedPlans.first).canaries
        let second = fleet.cycle(&c, at: F.at(30))
        #expect(second.contains(.stageAdvanced(generation: 1, to: .rolling)))
        #expect(Set(second.sentHosts) == Set(fleet.ids).subtracting(canaries))
        #expect(c.plans.first?.state == .rolling)
        let third = fleet.cycle(&c, at: F.at(60))
        #expect(third.completedGenerations == [1])
        #expect(third.sends.isEmpty)
        #expect(c.summaries.first == FailoverPlan.Summary(
            generation: 1, state: .complete, reason: c.plans[0].reason, mirrors: F.withoutA, acked: 10, pending: 0, rejected: 0))
        for a in fleet.agents.values { #expect(a.applied == 1 && a.mirrors == F.withoutA && a.received.count == 1) }
        // Converged: nothing more, ever.
        #expect(fleet.run(&c, from: 90, count: 20).isEmpty)
    }

    @Test("a probe received before the ack does not verify a canary")
    func probeMustFollowAck() throws {
        var c = Self.controller()
        var fleet = F()
        fleet.outages = [F.outage(Self.downA)]
        fleet.report(at: F.at(-1))
        let first = c.step(fleet.inputs(), now: F.at(0))
        fleet.report(at: F.at(0.5))            // probes before the apply
        fleet.deliver(first, at: F.at(1))     // acks
        let waiting = c.step(fleet.inputs(), now: F.at(30))
        #expect(!waiting.contains(.stageAdvanced(generation: 1, to: .rolling)))
        #expect(c.plans[0].state == .canary)
        fleet.report(at: F.at(31))
        #expect(c.step(fleet.inputs(), now: F.at(60)).contains(.stageAdvanced(generation: 1, to: .rolling)))
    }

    @Test("a rejecting canary halts the rollout and the canaries are rolled back")
    func haltOnRejection() throws {
        // Every z1 host rejects, so the z1 canary does.
        var (c, fleet, first) = Self.startedFailover { fleet in
            for id in fleet.ids where id.hasPrefix("a") { fleet.agents[id]!.behavior = .reject("mirror not in allowlist") }
        }
        let canaries = try #require(first.plannedPlans.first).canaries
        let rejecting = try #require(canaries.first { $0.hasPrefix("a") })
        let applied = try #require(canaries.first { $0.hasPrefix("b") })
        let actions = fleet.cycle(&c, at: F.at(30))
        #expect(actions.halts == ["canary \(rejecting) refused generation 1: rejected: mirror not in allowlist"])
        let rollback = try #require(actions.plannedPlans.first)
        #expect(rollback.kind == .rollback && rollback.generation == 2 && rollback.rollbackOf == 1)
        #expect(rollback.mirrors == F.preferred && rollback.state == .rolling)
        #expect(Set(rollback.hosts.keys) == [applied])
        #expect(actions.contains(.rolledBack(generation: 1, rollback: 2)))
        // Only the canary that applied gets a new generation; the refusing one still runs its old order.
        #expect(actions.sentHosts == [applied])
        #expect(actions.sends.first?.directive.mirrors == F.preferred)
        #expect(c.target(of: rejecting) == nil)
        let halted = try #require(c.plans.first { $0.generation == 1 })
        #expect(halted.state == .rolledBack && halted.followedBy == 2)
        #expect(halted.acked == 1 && halted.rejected == 1 && halted.pending == 8)
        #expect(halted.reason.contains("halted: canary \(rejecting)"))
        // The rollback converges; the same map is not planned again while the outages stay the same.
        let later = fleet.run(&c, from: 60, count: 20)
        #expect(later.completedGenerations == [2])
        #expect(later.plannedPlans.isEmpty && later.sends.isEmpty)
        #expect(fleet.agents[applied]!.mirrors == F.preferred)
        #expect(fleet.ids.filter { $0 != applied }.allSatisfy { fleet.agents[$0]!.applied == 0 })
        #expect(c.state.blocks.count == 1)
        // A thaw lifts the block even when nothing was frozen (the operator's "go ahead").
        var thawed = c, thawedFleet = fleet
        thawed.thaw(at: F.at(650))
        #expect(thawed.state.blocks.isEmpty)
        #expect(thawedFleet.cycle(&thawed, at: F.at(660)).plannedPlans.first?.mirrors == F.withoutA)
        // New information (another outage in effect) lifts the block.
        fleet.outages.append(F.outage(F.key(.rateLimitExhausted, F.hub, egress: "nat-9")))
        let retried = fleet.cycle(&c, at: F.at(700)).plannedPlans
        #expect(retried.map(\.generation) == [3] && retried.first?.mirrors == F.withoutA)
    }

    @Test("a canary failing to apply halts too")
    func haltOnFailedApply() throws {
        var (c, fleet, _) = Self.startedFailover { fleet in
            for id in fleet.ids { fleet.agents[id]!.behavior = .fail("dockerd did not reload") }
        }
        let actions = fleet.cycle(&c, at: F.at(30))
        #expect(actions.halts.count == 1 && actions.halts[0].contains("failed: dockerd did not reload"))
        // Nobody applied anything: nothing to roll back, targets restored.
        #expect(actions.plannedPlans.isEmpty && actions.sends.isEmpty)
        #expect(c.plans.first?.state == .halted)
        #expect(fleet.ids.allSatisfy { c.target(of: $0) == nil })
    }

    @Test("an unhealthy probe of the new first mirror after the apply halts and rolls back")
    func haltOnUnhealthyProbe() throws {
        var (c, fleet, first) = Self.startedFailover { $0.health[F.mirrorB] = .notFound }
        let canaries = try #require(first.plannedPlans.first).canaries
        let actions = fleet.cycle(&c, at: F.at(30))
        #expect(actions.halts.count == 1)
        #expect(actions.halts[0] == "canary \(canaries[0]) probe of \(F.mirrorB) (docker.io) after applying generation 1: not_found")
        let rollback = try #require(actions.plannedPlans.first)
        #expect(Set(rollback.hosts.keys) == Set(canaries) && rollback.mirrors == F.preferred)
        #expect(actions.sentHosts == canaries)
        #expect(!actions.contains(.stageAdvanced(generation: 1, to: .rolling)))
        fleet.run(&c, from: 60, count: 3)
        for id in canaries { #expect(fleet.agents[id]!.mirrors == F.preferred && fleet.agents[id]!.applied == 2) }
    }

    @Test("canaries that never converge halt at the timeout and are rolled back (they may have applied)")
    func haltOnTimeout() throws {
        var (c, fleet, first) = Self.startedFailover { fleet in
            for id in fleet.ids { fleet.agents[id]!.behavior = .silent }
        }
        let canaries = try #require(first.plannedPlans.first).canaries
        let before = fleet.run(&c, from: 30, count: 19)  // up to t = 570
        #expect(before.halts.isEmpty)
        let at600 = fleet.cycle(&c, at: F.at(600))
        #expect(at600.halts == ["canaries not verified within 600s: \(canaries.joined(separator: ", "))"])
        #expect(at600.contains(.rolledBack(generation: 1, rollback: 2)))
        #expect(at600.sentHosts == canaries)
    }

    // MARK: Level-triggered sends

    @Test("re-sent until converged, no more often than the resend interval")
    func resendUntilConverged() throws {
        var (c, fleet, first) = Self.startedFailover { fleet in
            for id in fleet.ids { fleet.agents[id]!.behavior = .silent }
        }
        let canaries = try #require(first.plannedPlans.first).canaries
        #expect(fleet.cycle(&c, at: F.at(30)).sends.isEmpty)
        #expect(fleet.cycle(&c, at: F.at(59)).sends.isEmpty)
        let resent = fleet.cycle(&c, at: F.at(60))
        #expect(resent.sentHosts == canaries)
        #expect(resent.sends.allSatisfy { $0.directive.generation == 1 && $0.directive.issuedAt == F.at(60) && $0.directive.expiresAt == F.at(660) })
        #expect(fleet.cycle(&c, at: F.at(90)).sends.isEmpty)
        // The message gets through this time.
        for id in fleet.ids { fleet.agents[id]!.behavior = .apply }
        #expect(fleet.cycle(&c, at: F.at(120)).sentHosts == canaries)
        #expect(fleet.cycle(&c, at: F.at(150)).contains(.stageAdvanced(generation: 1, to: .rolling)))
    }

    @Test("an agent that restarts and reports the old generation gets the directive again")
    func agentRestartReportsOldGeneration() {
        var (c, fleet, _) = Self.startedFailover()
        fleet.run(&c, from: 30, count: 3)
        #expect(c.plans.first?.state == .complete)
        // b3 lost its state: its ack said applied, but its newer report says generation 0.
        fleet.agents["b3"]!.applied = 0
        fleet.agents["b3"]!.mirrors = nil
        fleet.agents["b3"]!.behavior = .silent
        fleet.report(at: F.at(200))
        let again = c.step(fleet.inputs(), now: F.at(210))
        #expect(again.sentHosts == ["b3"])
        #expect(again.sends.first?.directive.generation == 1 && again.sends.first?.directive.mirrors == F.withoutA)
        // Still not applied: again only after the resend interval.
        #expect(c.step(fleet.inputs(), now: F.at(240)).sends.isEmpty)
        #expect(c.step(fleet.inputs(), now: F.at(270)).sentHosts == ["b3"])
        fleet.agents["b3"]!.behavior = .apply
        fleet.deliver(c.step(fleet.inputs(), now: F.at(330)), at: F.at(331))
        #expect(fleet.agents["b3"]!.mirrors == F.withoutA)
        #expect(c.step(fleet.inputs(), now: F.at(400)).isEmpty)
    }

    @Test("stale hosts are neither planned for nor sent to; they get their own generation when back")
    func staleHosts() throws {
        var c = Self.controller()
        var fleet = F()
        fleet.agents["b5"]!.stale = true
        fleet.outages = [F.outage(Self.downA)]
        let first = fleet.run(&c, from: 0, count: 3)
        #expect(first.completedGenerations == [1])
        #expect(!first.plannedPlans[0].hosts.keys.contains("b5"))
        #expect(fleet.agents["b5"]!.received.isEmpty)
        fleet.agents["b5"]!.stale = false
        let back = fleet.run(&c, from: 90, count: 3)
        let plan = try #require(back.plannedPlans.first)
        #expect(plan.generation == 2 && Set(plan.hosts.keys) == ["b5"] && plan.mirrors == F.withoutA)
        #expect(back.completedGenerations == [2])
        #expect(fleet.agents["b5"]!.mirrors == F.withoutA)
    }

    // MARK: Generations

    @Test("generations only go up: failover, supersede, failback, and never below what agents report")
    func generationsMonotonic() {
        var c = Self.controller(.test(recoveryHold: 0))
        var fleet = F()
        var seen: [UInt64] = []
        func record(_ actions: [FailoverAction]) { seen += actions.plannedPlans.map(\.generation) }
        fleet.outages = [F.outage(Self.downA)]
        record(fleet.run(&c, from: 0, count: 3))
        fleet.outages = [F.outage(Self.downA), F.outage(F.key(.endpointDown, F.mirrorB))]
        record(fleet.run(&c, from: 90, count: 3))
        fleet.outages = []
        record(fleet.run(&c, from: 180, count: 3))
        #expect(seen == [1, 2, 3])
        #expect(fleet.agents.values.allSatisfy { $0.applied == 3 && $0.mirrors == F.preferred })
        // Each agent got strictly increasing generations.
        for a in fleet.agents.values { #expect(a.received.map(\.generation) == a.received.map(\.generation).sorted()) }

        // A controller that lost its state starts above the highest generation the fleet reports.
        var fresh = Self.controller()
        fleet.outages = [F.outage(F.key(.endpointDown, F.mirrorAuth))]
        let plans = fleet.cycle(&fresh, at: F.at(300)).plannedPlans
        #expect(plans.map(\.generation) == [4])
        #expect(fresh.generation == 4)
    }

    @Test("a host reporting a generation the controller does not hold is resynced")
    func unknownHostStateResynced() throws {
        var c = Self.controller()
        var fleet = F()
        fleet.agents["a2"]!.applied = 7
        fleet.report(at: F.at(-5))
        let plan = try #require(fleet.cycle(&c, at: F.at(0)).plannedPlans.first)
        #expect(plan.generation == 8 && plan.kind == .failback && Set(plan.hosts.keys) == ["a2"])
        #expect(plan.mirrors == F.preferred && plan.reason.hasPrefix("resync"))
    }

    @Test("a new outage during the canary stage supersedes the plan")
    func supersede() throws {
        var (c, fleet, _) = Self.startedFailover { fleet in
            for id in fleet.ids { fleet.agents[id]!.behavior = .silent }
        }
        fleet.outages.append(F.outage(F.key(.endpointDown, F.mirrorB)))
        let actions = fleet.cycle(&c, at: F.at(30))
        #expect(actions.contains(.superseded(generation: 1, by: 2)))
        let plan = try #require(actions.plannedPlans.first)
        #expect(plan.generation == 2 && plan.hosts.count == 10 && plan.mirrors == ["docker.io": [F.mirrorAuth], "ghcr.io": [F.mirrorB]])
        #expect(c.plans.map(\.state) == [.canary, .superseded])
    }

    // MARK: Failback

    @Test("failback waits for the recovery hold, then is staged like a failover")
    func failbackAfterHold() throws {
        var c = Self.controller(.test(recoveryHold: 300))
        var fleet = F()
        fleet.outages = [F.outage(Self.downA)]
        fleet.run(&c, from: 0, count: 3)
        #expect(fleet.agents.values.allSatisfy { $0.mirrors == F.withoutA })
        fleet.outages = []
        // Gone from t = 1000; the hold runs until 1300.
        #expect(fleet.run(&c, from: 1000, count: 10).isEmpty)   // 1000 … 1270
        let failback = fleet.cycle(&c, at: F.at(1300))
        let plan = try #require(failback.plannedPlans.first)
        #expect(plan.kind == .failback && plan.generation == 2 && plan.state == .canary)
        #expect(plan.mirrors == F.preferred && plan.reason == "failback to the preferred order")
        #expect(failback.sentHosts == plan.canaries && plan.canaries.count == 2)
        let next = fleet.cycle(&c, at: F.at(1330))
        #expect(next.contains(.stageAdvanced(generation: 2, to: .rolling)))
        #expect(fleet.cycle(&c, at: F.at(1360)).completedGenerations == [2])
        #expect(fleet.agents.values.allSatisfy { $0.mirrors == F.preferred && $0.applied == 2 })
    }

    @Test("failback is verified through the recovered mirror: still broken, it halts")
    func failbackVerified() throws {
        var c = Self.controller(.test(recoveryHold: 0))
        var fleet = F()
        fleet.outages = [F.outage(Self.downA)]
        fleet.run(&c, from: 0, count: 3)
        fleet.outages = []
        fleet.health[F.mirrorA] = .tcpTimeout
        let plan = try #require(fleet.cycle(&c, at: F.at(100)).plannedPlans.first)
        let actions = fleet.cycle(&c, at: F.at(130))
        #expect(actions.halts.first?.contains("probe of \(F.mirrorA) (docker.io)") == true)
        let rollback = try #require(actions.plannedPlans.first)
        #expect(rollback.mirrors == F.withoutA && Set(rollback.hosts.keys) == Set(plan.canaries))
    }

    @Test("a given recovery time starts the hold from the recovery, not from when the controller noticed")
    func failbackFromRecoveredAt() {
        var c = Self.controller(.test(recoveryHold: 300))
        var fleet = F()
        fleet.outages = [F.outage(Self.downA)]
        fleet.run(&c, from: 0, count: 3)
        fleet.outages = []
        fleet.recovered = [.init(key: Self.downA, recoveredAt: F.at(900))]
        #expect(fleet.cycle(&c, at: F.at(1000)).isEmpty)
        #expect(fleet.cycle(&c, at: F.at(1199)).isEmpty)
        #expect(fleet.cycle(&c, at: F.at(1200)).plannedPlans.first?.kind == .failback)
    }

    @Test("an outage back during the hold means no failback")
    func flapDuringHold() {
        var c = Self.controller(.test(recoveryHold: 300))
        var fleet = F()
        fleet.outages = [F.outage(Self.downA)]
        fleet.run(&c, from: 0, count: 3)
        fleet.outages = []
        #expect(fleet.run(&c, from: 1000, count: 5).isEmpty)
        fleet.outages = [F.outage(Self.downA)]
        #expect(fleet.run(&c, from: 1150, count: 2).isEmpty)
        fleet.outages = []
        // The hold restarts from the new recovery at 1210.
        #expect(fleet.run(&c, from: 1210, count: 10).isEmpty)
        #expect(fleet.cycle(&c, at: F.at(1510)).plannedPlans.first?.kind == .failback)
    }

    // MARK: Rate limit

    @Test("no host gets more than maxChangesPerHostPerHour distinct generations in any hour")
    func hourlyBudget() throws {
        var c = Self.controller(.test(maxChanges: 2, recoveryHold: 0))
        var fleet = F(perZone: 2)
        var all: [FailoverAction] = []
        // Flap every two minutes for two hours and twenty minutes.
        for n in 0..<280 {
            fleet.outages = (n / 4) % 2 == 0 ? [F.outage(Self.downA)] : []
            all += fleet.cycle(&c, at: F.at(Double(n) * 30))
        }
        for a in fleet.agents.values {
            var firstSent: [UInt64: Date] = [:]
            for d in a.received where firstSent[d.generation] == nil { firstSent[d.generation] = d.issuedAt }
            let times = firstSent.values.sorted()
            #expect(times.count >= 3, "budget frees up after an hour")
            for (i, t) in times.enumerated() {
                let inHour = times[i...].filter { $0.timeIntervalSince(t) < 3600 }.count
                #expect(inHour <= 2, "\(a.id): \(inHour) generations within an hour from \(t)")
            }
        }
        let deferred = all.compactMap { a -> (UInt64?, [String], Date)? in
            if case .deferred(let g, let hosts, let until) = a { return (g, hosts, until) }
            return nil
        }
        // The third change (t = 240) waits for the budget the first change used at t = 0, without a
        // generation; it is reported once per wait, not every step nor every flap.
        #expect(!deferred.isEmpty)
        #expect(deferred[0].0 == nil && deferred[0].2 == F.at(3600) && deferred[0].1 == ["a1", "a2", "b1", "b2"])
        #expect(all.filter { if case .deferred = $0 { true } else { false } }.count <= 280 / 8, "at most once per flap")
        #expect(all.plannedPlans.allSatisfy { p in all.sends.contains { $0.directive.generation == p.generation } },
                "no generation is planned that is never sent")
        #expect(all.halts.isEmpty, "waiting for the budget is not a canary failure")
    }

    @Test("a steady wait for the budget is reported once, and the change goes when the budget frees")
    func steadyWait() throws {
        var c = Self.controller(.test(maxChanges: 1, recoveryHold: 0))
        var fleet = F(perZone: 1)
        fleet.outages = [F.outage(Self.downA)]
        fleet.run(&c, from: 0, count: 3)                 // generation 1 at t = 0
        fleet.outages = []
        let waiting = fleet.run(&c, from: 100, count: 116)   // t = 100 … 3550
        #expect(waiting == [.deferred(generation: nil, hosts: ["a1", "b1"], until: F.at(3600))])
        #expect(c.generation == 1 && c.state.waiting.count == 1)
        let go = fleet.cycle(&c, at: F.at(3600))
        #expect(go.plannedPlans.first?.kind == .failback && go.plannedPlans.first?.generation == 2)
        #expect(go.sentHosts == ["a1", "b1"])
    }

    @Test("rest hosts over budget are switched when their budget frees, and the plan completes then")
    func restDeferredInPlan() throws {
        var c = Self.controller(.test(maxChanges: 1, recoveryHold: 0))
        var fleet = F(perZone: 3)
        // Only the canaries of the failover can change now: the others used their budget at t = 0 on
        // a rate-limit failover of their own egress... simulated by a change record.
        fleet.outages = [F.outage(Self.downA)]
        var first = fleet.cycle(&c, at: F.at(0))
        let canaries = try #require(first.plannedPlans.first).canaries
        var state = c.state
        for id in fleet.ids where !canaries.contains(id) { state.hosts[id, default: .init()].changes = [F.at(-600)] }
        c = FailoverController(settings: c.settings, state: state)
        first = fleet.cycle(&c, at: F.at(30))
        #expect(first.contains(.stageAdvanced(generation: 1, to: .rolling)))
        let rest = fleet.ids.filter { !canaries.contains($0) }
        #expect(first.contains(.deferred(generation: 1, hosts: rest, until: F.at(3000))))
        #expect(first.sends.isEmpty)
        #expect(fleet.run(&c, from: 60, count: 98).filter { if case .deferred = $0 { true } else { false } }.isEmpty)
        #expect(c.plans.first?.state == .rolling && c.plans.first?.pending == rest.count)
        let go = fleet.cycle(&c, at: F.at(3000))
        #expect(go.sentHosts == rest)
        #expect(fleet.cycle(&c, at: F.at(3030)).completedGenerations == [1])
    }

    // MARK: Modes

    @Test("advise mode plans but never sends; the advice is retired when no longer needed")
    func adviseMode() throws {
        var c = Self.controller(.test(mode: .advise, recoveryHold: 0))
        var fleet = F()
        fleet.outages = [F.outage(Self.downA)]
        let actions = fleet.run(&c, from: 0, count: 10)
        #expect(actions.sends.isEmpty)
        #expect(actions.plannedPlans.count == 1)
        let plan = try #require(actions.plannedPlans.first)
        #expect(plan.state == .advised && plan.hosts.count == 10 && plan.canaries.isEmpty && plan.mirrors == F.withoutA)
        #expect(c.summaries == [FailoverPlan.Summary(
            generation: 1, state: .advised, reason: plan.reason, mirrors: F.withoutA, acked: 0, pending: 10, rejected: 0)])
        #expect(fleet.agents.values.allSatisfy { $0.received.isEmpty })

        // Switched to auto: the advice becomes a real, staged plan.
        c.settings.mode = .auto
        let auto = fleet.cycle(&c, at: F.at(300))
        #expect(auto.contains(.superseded(generation: 1, by: 2)))
        #expect(auto.plannedPlans.first?.state == .canary && auto.sends.count == 2)

        // Back to advise with the outage over: advice for failback, then retired when the outage returns.
        var d = Self.controller(.test(mode: .advise, recoveryHold: 0))
        var other = F()
        other.outages = [F.outage(Self.downA)]
        other.run(&d, from: 0, count: 2)
        other.outages = []
        let retired = other.run(&d, from: 60, count: 2)
        #expect(retired == [.superseded(generation: 1, by: nil)])
        #expect(d.plans.first?.state == .superseded)
    }

    @Test("freeze: no generations and no sends until thaw; thaw resumes")
    func freezeThaw() throws {
        var c = Self.controller()
        var fleet = F()
        c.freeze(reason: "change window", at: F.at(0))
        #expect(c.isFrozen)
        fleet.outages = [F.outage(Self.downA)]
        #expect(fleet.run(&c, from: 0, count: 10).isEmpty)
        #expect(c.generation == 0)
        c.thaw(at: F.at(300))
        let actions = fleet.cycle(&c, at: F.at(300))
        #expect(actions.plannedPlans.count == 1 && actions.sends.count == 2)

        // Frozen mid-rollout: canaries' acks are recorded, nothing advances or is re-sent.
        c.freeze(at: F.at(310))
        #expect(fleet.run(&c, from: 330, count: 40).isEmpty)   // past the canary timeout
        #expect(c.plans.first?.state == .canary && c.plans.first?.acked == 2)
        c.thaw(at: F.at(2000))
        fleet.report(at: F.at(2001))
        #expect(fleet.cycle(&c, at: F.at(2010)).contains(.stageAdvanced(generation: 1, to: .rolling)))
    }

    @Test("history keeps the live plans and the latest finished ones")
    func historyLimit() {
        var settings = FailoverSettings.test(recoveryHold: 0)
        settings.historyLimit = 3
        var c = Self.controller(settings)
        var fleet = F(perZone: 1)
        for n in 0..<10 {
            fleet.outages = n % 2 == 0 ? [F.outage(Self.downA)] : []
            fleet.run(&c, from: Double(n) * 3600, count: 3)
        }
        #expect(c.generation == 10)
        #expect(c.plans.map(\.generation) == [10, 9, 8])
        #expect(c.plans.allSatisfy { $0.state == .complete && $0.hosts.isEmpty && $0.acked == 2 })
    }

    @Test("a large fleet rolls out in three steps", .timeLimit(.minutes(1)))
    func largeFleet() {
        var c = Self.controller()
        var fleet = F(perZone: 1000, zones: ["z1", "z2", "z3"])
        fleet.outages = [F.outage(Self.downA)]
        let first = fleet.cycle(&c, at: F.at(0))
        #expect(first.sends.count == 300)
        #expect(Set(first.sends.map { fleet.agents[$0.host]!.labels["zone"]! }) == ["z1", "z2", "z3"])
        #expect(fleet.cycle(&c, at: F.at(30)).sends.count == 2700)
        #expect(fleet.cycle(&c, at: F.at(60)).completedGenerations == [1])
    }

    // MARK: Persistence and the API view

    @Test("the state survives a JSON round trip mid-rollout and the restored controller carries on identically")
    func codableRoundTrip() throws {
        var (c, fleet, _) = Self.startedFailover()
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let data = try encoder.encode(c.state)
        var restored = FailoverController(settings: c.settings, state: try decoder.decode(FailoverState.self, from: data))
        #expect(restored == c)
        #expect(restored.plans.first?.state == .canary)
        var fleet2 = fleet
        let a = fleet.run(&c, from: 30, count: 3)
        let b = fleet2.run(&restored, from: 30, count: 3)
        #expect(a == b)
        #expect(a.completedGenerations == [1])
        #expect(restored == c)
    }

    @Test("the plans view encodes exactly the contract fields")
    func summaryJSON() throws {
        let (c, _, _) = Self.startedFailover()
        let data = try JSONEncoder().encode(c.summaries)
        let objects = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(objects.count == 1)
        #expect(Set(objects[0].keys) == ["generation", "state", "reason", "mirrors", "acked", "pending", "rejected"])
        #expect(objects[0]["state"] as? String == "canary")
        #expect((objects[0]["mirrors"] as? [String: [String]]) == F.withoutA)
        #expect(FailoverPlan.State.rolledBack.rawValue == "rolled_back")
    }

    @Test("settings from the configuration file")
    func settingsFromConfig() {
        var fo = AggregatorConfig.Failover()
        fo.mode = .advise
        fo.canaryShare = 0.2
        fo.maxChangesPerHostPerHour = 6
        var corr = AggregatorConfig.Correlation()
        corr.recoveryHold = .seconds(120)
        let s = FailoverSettings(fo, correlation: corr)
        #expect(s.mode == .advise && s.canaryShare == 0.2 && s.maxChangesPerHostPerHour == 6 && s.recoveryHold == 120)
    }
}
