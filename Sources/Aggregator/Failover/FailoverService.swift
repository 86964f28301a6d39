import Foundation
import Logging
import Metrics
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// The thin service around the ``FailoverController``: once per correlation window (and at once when an
/// agent acks) it gathers the inputs from the store, steps the controller, persists its state, signs and
/// routes the directives, and logs what happened. Operators freeze and thaw it through the HTTP API.
///
/// The controller's state is saved after every step that changed it and restored on start, so
/// generations never go backwards and a rollout resumes at its stage after a restart.
///
/// Only the leader plans, saves and sends (``Leadership``): each save is fenced by its term, so a leader
/// whose term ended cannot commit, and without a commit nothing is sent. A new leader continues from the
/// state and acks the store holds. Acks that reach a follower are recorded in the store for the leader.
public final class FailoverService: Service, Sendable {
    let store: any FleetStoring
    let leadership: Leadership
    /// The term the controller was restored for; nil while following.
    private let ledTerm: Mutex<UInt64?>
    /// While following: what was last forwarded to each host connected here, and when.
    private let forwarded = Mutex<[String: (generation: UInt64, at: Date)]>([:])
    /// The hosts reporting here: a follower forwards to those only.
    let reporters: RecentReporters?
    let signer: CommandSigner?
    let router: RouterServer?
    let interval: Duration
    let staleAfter: Int
    let logger: Logger
    private let controller: Mutex<FailoverController>
    private let pendingAcks = Mutex<[(host: String, ack: FailoverAck, at: Date)]>([])
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>

    /// - Parameters:
    ///   - signer: signs directives; without one (no signing key) nothing is sent, plans are only shown.
    ///   - interval: the step period (the correlation window).
    public init(
        store: any FleetStoring, settings: FailoverSettings, signer: CommandSigner?, router: RouterServer?, interval: Duration,
        staleAfter: Int, logger: Logger, leadership: Leadership = .sole, reporters: RecentReporters? = nil
    ) throws(StoreError) {
        self.reporters = reporters
        self.store = store
        self.leadership = leadership
        // The state is read below: it is the one to lead with if this aggregator leads already.
        ledTerm = Mutex(leadership.current.leading)
        self.signer = signer
        self.router = router
        self.interval = interval
        self.staleAfter = staleAfter
        self.logger = logger
        var settings = settings
        if signer == nil, settings.mode == .auto {
            logger.critical("failover runs in advise mode: no signing key (run: regwatch-aggregator keys generate)")
            settings.mode = .advise
        }
        controller = Mutex(FailoverController(settings: settings, state: try store.failoverState() ?? FailoverState()))
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Acks kept between two steps; more are dropped (an agent flooding acks cannot grow memory, and a
    /// host's later ack or report tells the same).
    static let maxPendingAcks = 10_000

    /// Called by ingest for every `failover_ack`; the step that follows reads it.
    public func receive(ack: FailoverAck, from host: String, at: Date = Date()) {
        let kept = pendingAcks.withLock { pending in
            guard pending.count < Self.maxPendingAcks else { return false }
            pending.append((host, ack, at))
            return true
        }
        if kept { wake.yield() }
    }

    public var generation: UInt64 { controller.withLock { $0.generation } }
    public var summaries: [FailoverPlan.Summary] { controller.withLock { $0.summaries } }
    public var plans: [FailoverPlan] { controller.withLock { $0.plans } }
    public var isFrozen: Bool { controller.withLock { $0.isFrozen } }
    /// The operator's freeze, if any.
    public var freezeState: FailoverState.Freeze? { controller.withLock { $0.state.frozen } }

    /// Operator freeze: no new generations, no sends. Persisted at once.
    public func freeze(reason: String, at now: Date = Date()) throws(StoreError) {
        let epoch = try leaderEpoch()
        let (state, earlier) = controller.withLock { c in
            let earlier = c.state.frozen
            c.freeze(reason: reason, at: now)
            return (c.state, earlier)
        }
        try store.saveFailover(state, now: now, epoch: epoch)
        Self.publish(state)
        if let earlier {
            // The first freeze's time and reason stand: they say how long the fleet has been held.
            logger.notice("failover already frozen; the first freeze stands", metadata: [
                "since": "\(RFC3339.format(earlier.since))", "reason": "\(earlier.reason)", "ignored.reason": "\(reason)",
            ])
        } else {
            logger.warning("failover frozen by an operator", metadata: ["reason": "\(reason)"])
        }
    }

    /// Operator thaw; the next step runs at once.
    public func thaw(at now: Date = Date()) throws(StoreError) {
        let epoch = try leaderEpoch()
        let state = controller.withLock { c in
            c.thaw(at: now)
            return c.state
        }
        try store.saveFailover(state, now: now, epoch: epoch)
        Self.publish(state)
        logger.notice("failover thawed by an operator")
        wake.yield()
    }

    /// The term this aggregator leads with the controller restored for it; an operator's change goes
    /// to the leader only (a follower's controller is not the one that plans).
    private func leaderEpoch() throws(StoreError) -> UInt64 {
        guard let epoch = leadership.current.leading, ledTerm.withLock({ $0 }) == epoch else {
            throw .notLeader(path: store.location, leader: (try? store.currentTerm())?.holder)
        }
        return epoch
    }

    public func run() async throws {
        Self.publish(controller.withLock { $0.state })
        // At 0 from the start, so the first rollback after a restart is an increase a rule can see.
        Counter(label: MetricNames.failoverRollbacksTotal).increment(by: 0)
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    private func loop() async {
        // Steps run on the store's threads: they wait on the database (``StoreThreads`` says why).
        var acks = await StoreThreads.run { [store] in (try? store.lastFailoverAcks()) ?? [:] }
        let wake = self.wake, interval = self.interval
        // A tick per interval; acks and thaws wake the loop in between.
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                wake.yield()
            }
        }
        defer { ticker.cancel() }
        for await _ in wakes {
            if Task.isCancelled || Task.isShuttingDownGracefully { break }
            acks = await StoreThreads.run { [acks] in
                var next = acks
                self.step(acks: &next, now: Date())
                return next
            }
        }
    }

    /// One step: record acks, gather inputs, step the controller, persist, send.
    func step(acks: inout [String: FailoverInputs.Ack], now: Date) {
        let received: [(host: String, ack: FailoverAck, at: Date)] = pendingAcks.withLock { p in
            let taken = p
            p.removeAll()
            return taken
        }
        let known = leadership.current.epoch
        for (host, ack, at) in received {
            // Refused for its term alone (the agent obeyed a newer one): not the plan's fault. The term is
            // raised below and the host gets the directive again; recorded, it would halt the plan.
            if ack.outcome == .rejected, ack.appliedEpoch > known {
                logger.warning("failover command refused for an old term", metadata: [
                    "host.id": "\(host)", "generation": "\(ack.generation)", "agent.epoch": "\(ack.appliedEpoch)", "epoch": "\(known)",
                ])
                continue
            }
            acks[host] = .init(ack, at: at)
            do { try store.recordFailoverAck(host: host, ack: ack, at: at) } catch {
                logger.error("cannot record a failover ack", metadata: ["host.id": "\(host)", "error": "\(error)"])
            }
            let meta: Logger.Metadata = ["host.id": "\(host)", "generation": "\(ack.generation)", "outcome": "\(ack.outcome.rawValue)", "reason": "\(ack.reason)"]
            switch ack.outcome {
            case .applied, .ignored: logger.notice("failover ack", metadata: meta)
            case .rejected, .failed, .rolledBack: logger.warning("failover ack", metadata: meta)
            }
        }
        guard var epoch = leadership.current.leading else {
            ledTerm.withLock { $0 = nil }
            forward(now: now)
            return
        }
        // Agents obeyed a newer term than this database has (restored from a backup, or a new database):
        // lead on above it, or they refuse every command of this term.
        if let seen = received.map(\.ack.appliedEpoch).max(), seen > epoch {
            do {
                let raised = try store.raiseTerm(to: seen + 1)
                leadership.lead(epoch: raised)
                ledTerm.withLock { if $0 == epoch { $0 = raised } }
                logger.warning("agents obeyed a newer term than the database holds; term raised", metadata: ["from": "\(epoch)", "to": "\(raised)"])
                epoch = raised
            } catch {
                logger.error("cannot raise the leadership term", metadata: ["error": "\(error)"])
            }
        }
        forwarded.withLock { $0 = [:] }
        // Other aggregators record acks too: a shared store is read for them each step.
        if ledTerm.withLock({ $0 }) != epoch || store.isShared {
            do {
                if ledTerm.withLock({ $0 }) != epoch {
                    // A new term here: continue from the state the store holds, whoever saved it.
                    let stored = try store.failoverState() ?? FailoverState()
                    controller.withLock { $0 = FailoverController(settings: $0.settings, state: stored) }
                    logger.notice("failover state restored for a new term", metadata: ["epoch": "\(epoch)", "generation": "\(stored.generation)"])
                }
                acks = try store.lastFailoverAcks()
                ledTerm.withLock { $0 = epoch }
            } catch {
                logger.error("failover skipped a step: cannot read its state", metadata: ["error": "\(error)"])
                return
            }
        }
        let inputs: FailoverInputs
        do {
            let recoveryHold = controller.withLock { $0.settings.recoveryHold }
            inputs = try Self.inputs(store: store, acks: acks, recoveryHold: recoveryHold, staleAfter: staleAfter, now: now)
        } catch {
            logger.error("failover skipped a step: cannot read fleet state", metadata: ["error": "\(error)"])
            return
        }
        let (actions, state, changed) = controller.withLock { c in
            let before = c.state
            let actions = c.step(inputs, now: now)
            return (actions, c.state, c.state != before)
        }
        if changed {
            do { try store.saveFailover(state, now: now, epoch: epoch) } catch {
                if case .deposed(_, _, let current) = error {
                    leadership.follow(epoch: current)
                    ledTerm.withLock { $0 = nil }
                    logger.error("failover stopped: this aggregator's term has ended; nothing saved or sent", metadata: ["epoch": "\(epoch)", "current": "\(current)"])
                    return
                }
                // Nothing is sent with a state that is not on disk: a restart would re-issue its generations.
                logger.error("failover state not saved; sends held back", metadata: ["error": "\(error)"])
                return
            }
        }
        Self.publish(state)
        perform(actions, epoch: epoch)
    }

    /// A follower's step: the leader's committed targets, to the hosts connected here that have not
    /// applied them, signed with the leader's term (``FailoverController/followerSends(_:now:lastSent:)``).
    func forward(now: Date) {
        guard let signer, let router, let reporters, store.isShared else { return }
        let sends: [(host: String, directive: FailoverDirective)]
        let epoch: UInt64
        do {
            guard let state = try store.failoverState(), let term = try store.currentTerm() else { return }
            epoch = term.epoch
            let hosts = try store.failoverHosts(now: now, staleAfter: staleAfter, acks: try store.lastFailoverAcks())
            let follower = FailoverController(settings: controller.withLock { $0.settings }, state: state)
            sends = follower.followerSends(FailoverInputs(hosts: hosts), now: now, lastSent: forwarded.withLock { $0 })
        } catch {
            logger.error("cannot forward the leader's failover directives: cannot read its state", metadata: ["error": "\(error)"])
            return
        }
        let codec = WireCodec()
        // Connected here: it reported here within two windows, or ten minutes for hosts with long intervals.
        let window = 2 * interval.seconds
        for (host, var directive) in sends where reporters.contains(host, now: now, within: max(window, 600)) {
            directive.epoch = epoch
            do {
                let frame = try codec.encode(Envelope(host: WireProtocol.aggregatorSender, seq: directive.generation, sentAt: now, body: try signer.sign(directive)))
                // Only hosts connected here take it; the others are some other aggregator's to serve.
                guard router.trySend(to: host, payload: frame) else { continue }
                forwarded.withLock { $0[host] = (directive.generation, now) }
                logger.info("failover directive forwarded for the leader", metadata: [
                    "host.id": "\(host)", "generation": "\(directive.generation)", "epoch": "\(epoch)",
                ])
            } catch {
                logger.error("cannot sign or encode a failover directive", metadata: ["host.id": "\(host)", "error": "\(error)"])
            }
        }
    }

    /// The controller's inputs as the store has them at `now`.
    static func inputs(
        store: any FleetStoring, acks: [String: FailoverInputs.Ack], recoveryHold: TimeInterval, staleAfter: Int, now: Date
    ) throws(StoreError) -> FailoverInputs {
        FailoverInputs(
            hosts: try store.failoverHosts(now: now, staleAfter: staleAfter, acks: acks),
            outages: try store.activeOutageStates(),
            recovered: try store.recoveredOutages(since: now.addingTimeInterval(-recoveryHold - 60)),
            probes: try store.latestStates(now: now, staleAfter: staleAfter).map(FailoverInputs.Probe.init))
    }

    /// What the controller would plan now, from the database alone (`regwatch-aggregator failover plan`):
    /// the persisted state stepped once in `advise` mode on a copy; nothing is saved or sent.
    /// - Parameter thawed: plan as if an operator had just thawed (no freeze, no blocked maps): what a
    ///   thaw would start.
    public static func preview(
        store: any FleetStoring, settings: FailoverSettings, staleAfter: Int, thawed: Bool = false, now: Date = Date()
    ) throws(StoreError) -> [FailoverPlan] {
        var settings = settings
        settings.mode = .advise
        var controller = FailoverController(settings: settings, state: try store.failoverState() ?? FailoverState())
        if thawed { controller.thaw(at: now) }
        let inputs = try inputs(store: store, acks: try store.lastFailoverAcks(), recoveryHold: settings.recoveryHold, staleAfter: staleAfter, now: now)
        _ = controller.step(inputs, now: now)
        return controller.plans.filter(\.state.isLive)
    }

    /// Logs and sends `actions`; every directive carries `epoch`, the term that committed it.
    func perform(_ actions: [FailoverAction], epoch: UInt64) {
        let codec = WireCodec()
        // A halted generation whose canaries went back in several groups yields one action per group.
        let rolledBack = Set(actions.compactMap { if case .rolledBack(let g, _) = $0 { g } else { nil } })
        if !rolledBack.isEmpty { Counter(label: MetricNames.failoverRollbacksTotal).increment(by: rolledBack.count) }
        for action in actions {
            switch action {
            case .planned(let plan):
                logger.notice("failover generation planned", metadata: [
                    "generation": "\(plan.generation)", "kind": "\(plan.kind.rawValue)", "state": "\(plan.state.rawValue)",
                    "reason": "\(plan.reason)", "mirrors": "\(Self.describe(plan.mirrors))",
                    "canaries": "\(plan.canaries.joined(separator: ","))", "hosts": "\(plan.hosts.count)",
                ])
            case .send(let host, var directive):
                guard let signer, let router else { continue }
                directive.epoch = epoch
                do {
                    let command = try signer.sign(directive)
                    let frame = try codec.encode(Envelope(host: WireProtocol.aggregatorSender, seq: directive.generation, sentAt: Date(), body: command))
                    let queued = router.trySend(to: host, payload: frame)
                    logger.info("failover directive sent", metadata: [
                        "host.id": "\(host)", "generation": "\(directive.generation)", "queued": "\(queued)",
                        "mirrors": "\(Self.describe(directive.mirrors))",
                    ])
                } catch {
                    logger.error("cannot sign or encode a failover directive", metadata: ["host.id": "\(host)", "error": "\(error)"])
                }
            case .stageAdvanced(let g, let to):
                logger.notice("failover canaries verified", metadata: ["generation": "\(g)", "state": "\(to.rawValue)"])
            case .halted(let g, let reason):
                logger.error("failover rollout halted", metadata: ["generation": "\(g)", "reason": "\(reason)"])
            case .rolledBack(let g, let rollback):
                logger.warning("failover canaries rolled back", metadata: ["generation": "\(g)", "rollback": "\(rollback)"])
            case .completed(let g):
                logger.notice("failover generation complete", metadata: ["generation": "\(g)"])
            case .superseded(let g, let by):
                logger.info("failover generation superseded", metadata: ["generation": "\(g)", "by": "\(by.map(String.init) ?? "-")"])
            case .deferred(let g, let hosts, let until):
                logger.warning("failover change deferred by the hourly budget", metadata: [
                    "generation": "\(g.map(String.init) ?? "-")", "hosts": "\(hosts.joined(separator: ","))", "until": "\(RFC3339.format(until))",
                ])
            }
        }
    }

    /// `registry=[url,…]` pairs for logs and tables.
    public static func describe(_ mirrors: [String: [String]]) -> String {
        mirrors.keys.sorted().map { "\($0)=[\(mirrors[$0]!.joined(separator: ","))]" }.joined(separator: " ")
    }
}
