import Foundation
import RegwatchShared

/// Closes the loop from outages to the runtimes' mirror order across the fleet, as a value: inputs and a
/// time in, actions out. No clock, no I/O, no database; the service gathers ``FailoverInputs``, calls
/// ``step(_:now:)`` once per correlation window (and when acks arrive, if it likes), performs the sends,
/// and persists ``state`` after every step.
///
/// Rules, in the order a step applies them:
/// 1. Outages in effect: open `endpoint_down` / `upstream_down_via_mirror` / `rate_limit_exhausted`
///    outages, plus those that recovered less than `recoveryHold` ago (failback waits for the hold).
/// 2. Desired order per host: ``MirrorOrder`` of the host's preferred pools under those outages.
/// 3. Live plans advance (auto mode only): canaries verified (ack `applied` and, for every registry whose
///    list changed, a probe of the new first mirror received after the apply, healthy) → the rest are
///    switched; a canary rejecting or failing, an unhealthy probe, or canaries not verified within
///    `canaryTimeout` → halt, block that mirror map while the outages stay the same, roll back the
///    canaries that may have applied it with a new generation (the others just get their old target back).
///    A rolling plan completes when every non-stale host applied it.
/// 4. Hosts whose desired order differs from their target (and is not already what their live plan
///    brings, nor blocked) get new generations, one per distinct mirror map, each a staged plan;
///    live plans sharing hosts with them, or that some host no longer wants, are superseded as a whole
///    (their hosts still needing a change are planned anew). In `advise` mode the plans are only shown.
/// 5. Sends (auto mode only, level-triggered): every non-stale host whose report or ack does not show its
///    target generation applied is sent the target, at most once per `resendInterval`, with fresh
///    issue and expiry times.
/// A host's target changes at most `maxChangesPerHostPerHour` times in any sliding hour (rollbacks
/// included); a switch over budget waits and is reported: a new plan whose canaries are over budget is
/// not created yet (no generation), a rest host over budget is switched when its budget frees.
/// Frozen, a step only records acks.
public struct FailoverController: Sendable, Equatable {
    public var settings: FailoverSettings
    /// Persist this after each step; restore with ``init(settings:state:)``.
    public private(set) var state: FailoverState

    public init(settings: FailoverSettings, state: FailoverState = FailoverState()) {
        self.settings = settings
        self.state = state
    }

    /// The highest generation issued: `regwatch_failover_generation`.
    public var generation: UInt64 { state.generation }

    /// Plans newest first: `GET /api/v1/failovers` is `plans.map(\.summary)`.
    public var plans: [FailoverPlan] { state.plans.reversed() }

    /// The contract view of ``plans``.
    public var summaries: [FailoverPlan.Summary] { plans.map(\.summary) }

    public var isFrozen: Bool { state.frozen != nil }

    /// The target the controller holds for a host (nil: never targeted).
    public func target(of host: String) -> FailoverState.Target? { state.hosts[host]?.target }

    /// Operator freeze: no new generations and no sends until ``thaw(at:)``. Acks are still recorded.
    public mutating func freeze(reason: String = "", at now: Date) {
        if state.frozen == nil { state.frozen = .init(since: now, reason: reason) }
    }

    /// Operator thaw. Halted mirror maps may be tried again, frozen or not: a thaw is the operator's
    /// "go ahead". Live canary stages restart their timeout (the freeze is not the canaries' fault).
    public mutating func thaw(at now: Date) {
        state.blocks = []
        guard state.frozen != nil else { return }
        state.frozen = nil
        for i in state.plans.indices where state.plans[i].state == .canary { state.plans[i].stageStartedAt = now }
    }

    // MARK: - Step

    /// Advances the controller to `now` given `inputs`; returns what to do and record, in order.
    public mutating func step(_ inputs: FailoverInputs, now: Date) -> [FailoverAction] {
        var step = Step(inputs: inputs, now: now)
        raiseGenerationFloor(step)
        trackOutages(inputs, now: now)
        let inEffect = state.outages.map(\.key)
        let inEffectSet = Set(inEffect)
        state.blocks.removeAll { Set($0.outages) != inEffectSet }
        step.inEffect = inEffect
        observe(step)

        if state.frozen == nil {
            if settings.mode == .auto { advance(&step) }
            plan(&step)
            if settings.mode == .auto { send(&step) }
        }
        finishAndCount(&step)
        trimHistory()
        return step.actions
    }

    /// One step's inputs, indexed, and the actions accumulated.
    struct Step {
        let now: Date
        let hosts: [String: FailoverInputs.Host]
        /// host → (registry, normalised URL) → latest probe.
        let probes: [String: [ProbeKey: FailoverInputs.Probe]]
        var inEffect: [OutageKey] = []
        var actions: [FailoverAction] = []

        struct ProbeKey: Hashable {
            var registry: String
            var url: String
            init(registry: String, url: String) {
                self.registry = registry
                var u = Substring(url)
                while u.hasSuffix("/") { u = u.dropLast() }
                self.url = String(u)
            }
        }

        init(inputs: FailoverInputs, now: Date) {
            self.now = now
            var hosts: [String: FailoverInputs.Host] = [:]
            for h in inputs.hosts {
                if let other = hosts[h.id], (other.reportedAt ?? .distantPast) > (h.reportedAt ?? .distantPast) { continue }
                hosts[h.id] = h
            }
            self.hosts = hosts
            var probes: [String: [ProbeKey: FailoverInputs.Probe]] = [:]
            for p in inputs.probes {
                let key = ProbeKey(registry: p.registry, url: p.url)
                if let seen = probes[p.host]?[key], seen.observedAt > p.observedAt { continue }
                probes[p.host, default: [:]][key] = p
            }
            self.probes = probes
        }

        func live(_ id: String) -> FailoverInputs.Host? {
            guard let h = hosts[id], !h.stale else { return nil }
            return h
        }
    }

    // MARK: Bookkeeping

    /// Generations only go up, even after the controller's state was lost: never below what any agent
    /// reports or acks (an agent ignores a generation not above the one it has).
    private mutating func raiseGenerationFloor(_ step: Step) {
        for h in step.hosts.values {
            state.generation = max(state.generation, h.appliedGeneration, h.lastAck?.generation ?? 0)
        }
    }

    private mutating func nextGeneration() -> UInt64 {
        state.generation += 1
        return state.generation
    }

    /// Open failover outages are in effect; one that disappears stays in effect until `recoveryHold`
    /// after it recovered (the given recovery time, else the first step that misses it).
    private mutating func trackOutages(_ inputs: FailoverInputs, now: Date) {
        let active = Set(inputs.outages.map(\.key).filter { MirrorOrder.drivesFailover($0.kind) })
        var recoveredAt: [OutageKey: Date] = [:]
        for r in inputs.recovered where MirrorOrder.drivesFailover(r.key.kind) {
            recoveredAt[r.key] = min(recoveredAt[r.key] ?? r.recoveredAt, r.recoveredAt)
        }
        var tracked = Dictionary(state.outages.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for key in active { tracked[key] = .init(key: key) }
        for (key, at) in recoveredAt where tracked[key] == nil && !active.contains(key) {
            tracked[key] = .init(key: key, recoveredAt: at)
        }
        for (key, var t) in tracked where !active.contains(key) {
            let since = t.recoveredAt ?? recoveredAt[key] ?? now
            if now.timeIntervalSince(since) >= settings.recoveryHold {
                tracked[key] = nil
            } else {
                t.recoveredAt = since
                tracked[key] = t
            }
        }
        state.outages = tracked.keys.sorted().map { tracked[$0]! }
    }

    /// Whether `host` has applied generation `g`: its report says so, or an ack newer than its report does
    /// (a report newer than the ack that shows an older generation means the agent lost it).
    static func hasApplied(_ host: FailoverInputs.Host, _ g: UInt64) -> Bool {
        if host.appliedGeneration >= g { return true }
        if let ack = host.lastAck, ack.generation == g, ack.outcome == .applied,
           host.reportedAt.map({ ack.at >= $0 }) ?? true {
            return true
        }
        return false
    }

    /// The agent's refusal of generation `g`, if its latest ack is one.
    static func refusal(_ host: FailoverInputs.Host, _ g: UInt64) -> String? {
        guard let ack = host.lastAck, ack.generation == g, !hasApplied(host, g) else { return nil }
        switch ack.outcome {
        case .rejected, .failed, .rolledBack:
            return ack.reason.isEmpty ? ack.outcome.rawValue : "\(ack.outcome.rawValue): \(ack.reason)"
        case .applied, .ignored:
            return nil
        }
    }

    /// Records applies and refusals of switched hosts of live plans.
    private mutating func observe(_ step: Step) {
        for i in state.plans.indices where state.plans[i].state == .canary || state.plans[i].state == .rolling {
            let g = state.plans[i].generation
            for (id, var p) in state.plans[i].hosts where p.switchedAt != nil {
                guard let h = step.hosts[id] else { continue }
                if p.appliedAt == nil, Self.hasApplied(h, g) {
                    if let ack = h.lastAck, ack.generation == g, ack.outcome == .applied {
                        p.appliedAt = ack.at
                    } else {
                        p.appliedAt = step.now
                    }
                    p.rejected = nil
                } else if p.appliedAt == nil {
                    p.rejected = Self.refusal(h, g)
                }
                state.plans[i].hosts[id] = p
            }
        }
    }

    /// The order a host runs as far as the controller knows; nil when unknown (it reports a generation
    /// the controller does not hold, e.g. after the controller's state was lost).
    private func current(_ h: FailoverInputs.Host) -> [String: [String]]? {
        if let t = state.hosts[h.id]?.target {
            return h.appliedGeneration > t.generation ? nil : t.mirrors
        }
        return h.appliedGeneration == 0 ? MirrorOrder.preferred(h.mirrorPools) : nil
    }

    // MARK: Switching and the hourly budget

    /// The time the host's budget allows its next change, or nil if it may change now.
    private func budgetWait(_ id: String, now: Date) -> Date? {
        let recent = (state.hosts[id]?.changes ?? []).filter { now.timeIntervalSince($0) < 3600 }
        guard recent.count >= settings.changeBudget else { return nil }
        return recent.sorted()[recent.count - settings.changeBudget].addingTimeInterval(3600)
    }

    /// Makes plan `i` the host's target if its budget allows; otherwise marks it deferred and returns the
    /// time it may go (reported by the caller when newly deferred).
    private mutating func trySwitch(plan i: Int, host id: String, step: Step) -> (switched: Bool, newlyDeferredUntil: Date?) {
        let now = step.now
        var p = state.plans[i].hosts[id] ?? .init(role: .rest)
        if let until = budgetWait(id, now: now) {
            let newly = p.deferredUntil == nil
            p.deferredUntil = until
            state.plans[i].hosts[id] = p
            return (false, newly ? until : nil)
        }
        var record = state.hosts[id] ?? .init()
        p.previousTarget = record.target
        p.previous = step.hosts[id].flatMap { current($0) }
        p.switchedAt = now
        p.deferredUntil = nil
        record.changes = record.changes.filter { now.timeIntervalSince($0) < 3600 } + [now]
        record.target = .init(generation: state.plans[i].generation, mirrors: state.plans[i].mirrors, reason: state.plans[i].reason)
        state.hosts[id] = record
        state.plans[i].hosts[id] = p
        return (true, nil)
    }

    /// Switches the given hosts of plan `i` (those not switched yet), reporting new deferrals.
    private mutating func switchHosts(plan i: Int, _ ids: [String], step: inout Step) {
        var deferred: [String] = []
        var until: Date?
        for id in ids.sorted() where state.plans[i].hosts[id]?.switchedAt == nil {
            let r = trySwitch(plan: i, host: id, step: step)
            if let u = r.newlyDeferredUntil {
                deferred.append(id)
                until = min(until ?? u, u)
            }
        }
        if let until { step.actions.append(.deferred(generation: state.plans[i].generation, hosts: deferred, until: until)) }
    }

    // MARK: Advancing live plans

    private enum Verdict { case waiting, verified, failed(String) }

    /// A canary's verdict: refused, or applied and probed healthy through every new first mirror after
    /// the apply (registries whose list did not change for it need no probe; an empty list has none).
    private func verdict(_ p: FailoverPlan.HostProgress, host id: String, plan: FailoverPlan, step: Step) -> Verdict {
        guard p.switchedAt != nil else { return .waiting }
        if let r = p.rejected { return .failed("canary \(id) refused generation \(plan.generation): \(r)") }
        if p.verifiedAt != nil { return .verified }
        guard let appliedAt = p.appliedAt else { return .waiting }
        var waiting = false
        for registry in plan.mirrors.keys.sorted() {
            let list = plan.mirrors[registry]!
            guard let first = list.first, p.previous?[registry] != list else { continue }
            guard let probe = step.probes[id]?[.init(registry: registry, url: first)], probe.observedAt > appliedAt else {
                waiting = true
                continue
            }
            if !probe.healthy {
                return .failed("canary \(id) probe of \(first) (\(registry)) after applying generation \(plan.generation): \(probe.errorClass.rawValue)")
            }
        }
        return waiting ? .waiting : .verified
    }

    private mutating func advance(_ step: inout Step) {
        for i in state.plans.indices {
            switch state.plans[i].state {
            case .canary: advanceCanary(i, &step)
            case .rolling: advanceRolling(i, &step)
            default: continue
            }
        }
    }

    private mutating func advanceCanary(_ i: Int, _ step: inout Step) {
        let plan = state.plans[i]
        // Canaries that were deferred get their switch as soon as the budget allows.
        switchHosts(plan: i, plan.canaries, step: &step)
        var failure: String?
        var unverified: [String] = []
        for id in state.plans[i].canaries {
            switch verdict(state.plans[i].hosts[id]!, host: id, plan: state.plans[i], step: step) {
            case .failed(let why): failure = failure ?? why
            case .waiting: unverified.append(id)
            case .verified:
                if state.plans[i].hosts[id]!.verifiedAt == nil { state.plans[i].hosts[id]!.verifiedAt = step.now }
            }
        }
        // The timeout runs from when the last canary was switched: canaries waiting for their hourly
        // budget are not failing, and a rate limit must not turn into a halt.
        let switched = state.plans[i].canaries.compactMap { state.plans[i].hosts[$0]?.switchedAt }
        if failure == nil, !unverified.isEmpty, switched.count == state.plans[i].canaries.count {
            let since = max(plan.stageStartedAt, switched.max() ?? plan.stageStartedAt)
            if step.now.timeIntervalSince(since) >= settings.canaryTimeout {
                failure = "canaries not verified within \(Int(settings.canaryTimeout))s: \(unverified.joined(separator: ", "))"
            }
        }
        if let failure {
            halt(i, failure, &step)
        } else if unverified.isEmpty {
            state.plans[i].state = .rolling
            state.plans[i].stageStartedAt = step.now
            step.actions.append(.stageAdvanced(generation: plan.generation, to: .rolling))
            switchHosts(plan: i, Array(state.plans[i].hosts.keys), step: &step)
            advanceRolling(i, &step)
        }
    }

    private mutating func advanceRolling(_ i: Int, _ step: inout Step) {
        switchHosts(plan: i, Array(state.plans[i].hosts.keys), step: &step)
        let g = state.plans[i].generation
        let done = state.plans[i].hosts.allSatisfy { id, p in
            guard p.switchedAt != nil else { return false }
            guard let h = step.live(id) else { return true }
            return Self.hasApplied(h, g)
        }
        if done {
            state.plans[i].state = .complete
            state.plans[i].finishedAt = step.now
            step.actions.append(.completed(generation: g))
        }
    }

    /// Stops plan `i`, blocks its mirror map, and rolls its canaries back: those that refused it get
    /// their previous target again (nothing to undo), the others a new generation with their previous
    /// order (one per distinct order), sent to all at once.
    private mutating func halt(_ i: Int, _ failure: String, _ step: inout Step) {
        let g = state.plans[i].generation
        state.plans[i].state = .halted
        state.plans[i].haltReason = failure
        state.plans[i].reason += "; halted: \(failure)"
        state.plans[i].finishedAt = step.now
        step.actions.append(.halted(generation: g, reason: failure))
        state.blocks.append(.init(mirrors: state.plans[i].mirrors, generation: g, reason: failure, outages: step.inEffect))

        var groups: [[String: [String]]: [String]] = [:]
        for (id, p) in state.plans[i].hosts where p.switchedAt != nil && state.hosts[id]?.target?.generation == g {
            if p.rejected != nil {
                state.hosts[id]?.target = p.previousTarget
                continue
            }
            let pools = step.hosts[id]?.mirrorPools ?? [:]
            let back = Self.restorable(p.previous, pools: pools)
            groups[back, default: []].append(id)
        }
        let ordered = groups.sorted { $0.value.min()! < $1.value.min()! }
        for (mirrors, ids) in ordered {
            let r = nextGeneration()
            var plan = FailoverPlan(
                generation: r, kind: .rollback, state: .rolling, reason: "rollback of generation \(g): \(failure)",
                mirrors: mirrors, createdAt: step.now, hosts: Dictionary(uniqueKeysWithValues: ids.map { ($0, .init(role: .rest)) }))
            plan.rollbackOf = g
            state.plans.append(plan)
            let j = state.plans.count - 1
            switchHosts(plan: j, ids, step: &step)
            step.actions.append(.planned(state.plans[j]))
            if state.plans[i].followedBy == nil {
                state.plans[i].followedBy = r
                state.plans[i].state = .rolledBack
            }
            step.actions.append(.rolledBack(generation: g, rollback: r))
        }
    }

    /// A previous order made safe to send again: only mirrors still in the host's pools (the agent's
    /// allowlist may have changed since); unknown → the preferred order.
    static func restorable(_ previous: [String: [String]]?, pools: [String: [MirrorSpec]]) -> [String: [String]] {
        guard let previous else { return MirrorOrder.preferred(pools) }
        var out: [String: [String]] = [:]
        for (registry, urls) in previous {
            guard let pool = pools[registry] else { continue }
            out[registry] = urls.filter { u in pool.contains { MirrorOrder.sameURL($0.url, u) } }
        }
        return out
    }

    // MARK: Planning

    private mutating func plan(_ step: inout Step) {
        let liveIndex: [String: Int] = {
            var m: [String: Int] = [:]
            for (i, p) in state.plans.enumerated() where p.state.isLive {
                for id in p.hosts.keys { m[id] = i }
            }
            return m
        }()
        let advise = settings.mode == .advise
        var superseded = Set<Int>()
        var candidates: [String: (mirrors: [String: [String]], causes: [OutageKey], preferred: Bool, unknown: Bool)] = [:]

        func consider(_ id: String) {
            guard candidates[id] == nil, let h = step.live(id) else { return }
            let (desired, causes) = MirrorOrder.desired(pools: h.mirrorPools, egress: h.egress, outages: step.inEffect)
            let cur = current(h)
            if cur == desired { return }
            if state.blocks.contains(where: { $0.mirrors == desired }) { return }
            if let i = liveIndex[id], !superseded.contains(i), state.plans[i].mirrors == desired,
               advise || state.plans[i].state != .advised {
                return
            }
            candidates[id] = (desired, causes, desired == MirrorOrder.preferred(h.mirrorPools), cur == nil)
        }

        // A live plan that some of its hosts no longer want (the outage it answers ended, or another
        // appeared) is superseded as a whole; those of its hosts that still need a change are planned anew.
        // A blocked map is no opinion: a rollback plan stays wanted although the hosts' desired order is
        // the map that failed.
        for i in Set(liveIndex.values).sorted() where advise || state.plans[i].state != .advised {
            let plan = state.plans[i]
            let unwanted = plan.hosts.keys.contains { id in
                guard let h = step.live(id) else { return false }
                let desired = MirrorOrder.desired(pools: h.mirrorPools, egress: h.egress, outages: step.inEffect).mirrors
                return desired != plan.mirrors && !state.blocks.contains { $0.mirrors == desired }
            }
            if unwanted { superseded.insert(i) }
        }
        for id in step.hosts.keys.sorted() { consider(id) }
        while true {
            let newly = Set(candidates.keys.compactMap { liveIndex[$0] }).subtracting(superseded)
            if newly.isEmpty { break }
            superseded.formUnion(newly)
            for i in newly { for id in state.plans[i].hosts.keys.sorted() { consider(id) } }
        }
        var waiting: [FailoverState.Waiting] = []
        defer {
            retireObsoleteAdvice(step)
            state.waiting = waiting
        }
        guard !candidates.isEmpty || !superseded.isEmpty else { return }

        var groups: [[String: [String]]: [String]] = [:]
        for (id, c) in candidates { groups[c.mirrors, default: []].append(id) }
        var newPlanOf: [String: UInt64] = [:]
        for (mirrors, ids) in groups.sorted(by: { $0.value.min()! < $1.value.min()! }) {
            let members = ids.sorted()
            var canaries = Set<String>()
            if !advise {
                canaries = CanarySelection.choose(
                    members.map { .init(id: $0, zone: step.hosts[$0]?.zone, canSwitch: budgetWait($0, now: step.now) == nil) },
                    share: settings.canaryShare)
                // Canaries over their hourly budget: the change waits, without a generation, so that a
                // flapping outage does not leave a trail of plans that were never sent.
                let waits = canaries.compactMap { budgetWait($0, now: step.now) }
                if let until = waits.max() {
                    let w = FailoverState.Waiting(mirrors: mirrors, hosts: members, until: until)
                    if !state.waiting.contains(w) { step.actions.append(.deferred(generation: nil, hosts: members, until: until)) }
                    waiting.append(w)
                    continue
                }
            }
            let g = nextGeneration()
            let kind: FailoverPlan.Kind = members.allSatisfy { candidates[$0]!.preferred } ? .failback : .failover
            let reason: String
            switch kind {
            case .failback where members.allSatisfy({ candidates[$0]!.unknown }):
                reason = "resync: host state unknown, preferred order"
            case .failback:
                reason = "failback to the preferred order"
            default:
                let causes = Set(members.flatMap { candidates[$0]!.causes }).sorted()
                reason = causes.isEmpty ? "resync: host state unknown" : "failover: " + causes.map(\.description).joined(separator: ", ")
            }
            var hosts = Dictionary(uniqueKeysWithValues: members.map { ($0, FailoverPlan.HostProgress(role: .rest)) })
            for id in canaries { hosts[id]?.role = .canary }
            let plan = FailoverPlan(
                generation: g, kind: kind, state: advise ? .advised : .canary, reason: reason, mirrors: mirrors,
                createdAt: step.now, hosts: hosts)
            state.plans.append(plan)
            let i = state.plans.count - 1
            for id in members { newPlanOf[id] = g }
            if !advise { switchHosts(plan: i, state.plans[i].canaries, step: &step) }
            step.actions.append(.planned(state.plans[i]))
        }
        for i in superseded.sorted() {
            let by = state.plans[i].hosts.keys.compactMap { newPlanOf[$0] }.min()
            state.plans[i].state = .superseded
            state.plans[i].followedBy = by
            state.plans[i].finishedAt = step.now
            step.actions.append(.superseded(generation: state.plans[i].generation, by: by))
        }
    }

    /// An advised plan none of whose hosts still needs it (the outage ended, or the hosts moved on) is
    /// no longer advice: it is marked superseded, so the list shows only current advice as `advised`.
    private mutating func retireObsoleteAdvice(_ step: Step) {
        for i in state.plans.indices where state.plans[i].state == .advised {
            let plan = state.plans[i]
            let needed = plan.hosts.keys.contains { id in
                guard let h = step.live(id) else { return false }
                let desired = MirrorOrder.desired(pools: h.mirrorPools, egress: h.egress, outages: step.inEffect).mirrors
                return desired == plan.mirrors && current(h) != desired
            }
            if !needed {
                state.plans[i].state = .superseded
                state.plans[i].finishedAt = step.now
            }
        }
    }

    // MARK: Sending

    private mutating func send(_ step: inout Step) {
        let now = step.now
        for id in state.hosts.keys.sorted() {
            guard var record = state.hosts[id], let target = record.target, target.generation > 0,
                  let h = step.live(id), !Self.hasApplied(h, target.generation)
            else { continue }
            guard isDue(target, lastSent: record.lastSentAt.map { (record.lastSentGeneration, $0) }, now: now) else { continue }
            let directive = directive(target, for: id, now: now)
            record.lastSentAt = now
            record.lastSentGeneration = target.generation
            state.hosts[id] = record
            step.actions.append(.send(host: id, directive: directive))
        }
    }

    /// Whether `target` is to be sent now: not sent yet, or last sent a resend interval ago.
    func isDue(_ target: FailoverState.Target, lastSent: (generation: UInt64, at: Date)?, now: Date) -> Bool {
        guard let lastSent, lastSent.generation == target.generation else { return true }
        return now.timeIntervalSince(lastSent.at) >= settings.resendInterval
    }

    /// The directive that carries `target` to host `id`, issued `now`.
    func directive(_ target: FailoverState.Target, for id: String, now: Date) -> FailoverDirective {
        FailoverDirective(
            generation: target.generation, issuedAt: now, expiresAt: now.addingTimeInterval(settings.commandTTL),
            target: id, mirrors: target.mirrors, reason: target.reason)
    }

    // MARK: Counts and history

    /// Refreshes the acked/pending/rejected counts of live plans, freezes them for plans that finished,
    /// and drops finished plans' per-host detail.
    private mutating func finishAndCount(_ step: inout Step) {
        for i in state.plans.indices where !state.plans[i].hosts.isEmpty {
            let g = state.plans[i].generation
            var acked = 0, rejected = 0
            for (id, p) in state.plans[i].hosts {
                if p.appliedAt != nil || (p.switchedAt != nil && step.hosts[id].map { Self.hasApplied($0, g) } == true) {
                    acked += 1
                } else if p.rejected != nil {
                    rejected += 1
                }
            }
            state.plans[i].acked = acked
            state.plans[i].rejected = rejected
            state.plans[i].pending = state.plans[i].hosts.count - acked - rejected
            if !state.plans[i].state.isLive { state.plans[i].hosts = [:] }
        }
    }

    private mutating func trimHistory() {
        let finished = state.plans.filter { !$0.state.isLive }.count
        var drop = finished - max(0, settings.historyLimit)
        guard drop > 0 else { return }
        state.plans.removeAll { p in
            guard drop > 0, !p.state.isLive else { return false }
            drop -= 1
            return true
        }
    }
}
