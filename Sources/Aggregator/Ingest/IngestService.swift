import Foundation
import Logging
import Metrics
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Takes what agents send on the ROUTER, validates it and writes it to the ``FleetStore`` in batched
/// transactions (group commit), then acknowledges pull events, only after their commit.
///
/// Decoding runs in ``run()``; committing runs on a thread of its own (`regwatch-commit`), so the two
/// overlap and SQLite's blocking calls never hold a thread of Swift's cooperative pool. The committer
/// takes everything that arrived while its previous transaction ran; when that is little (under
/// ``CommitPolicy/groupReports``), it first waits up to ``CommitPolicy/linger`` after the oldest pending
/// message for more, so a light steady stream (100k agents every 30 s is 3.3k reports/s) costs about
/// thirteen transactions per second instead of one per wake-up (`regwatch-ingest-bench`: 25 ms instead
/// of 10 ms took the aggregator from 52 % to 47 % of a core at that rate, 100 ms a few points more; an
/// event's acknowledgement waits as long, far inside the agent's resend interval). Decoding stops while
/// ``CommitPolicy/maxPendingReports`` wait for a commit, which bounds memory and passes back-pressure to
/// the transport as before.
///
/// A message is accepted only when the host id in its envelope is the one enrolled for the sending
/// key (checked by the dispatcher against the ZAP-bound id), the report inside names that same host,
/// and the key is still enrolled: a revoked key's open connection is refused from the next message on.
public final class IngestService: Service, Sendable {
    public struct Statistics: Sendable, Equatable {
        public var batches = 0
        public var reportsStored = 0
        public var reportsRejected = 0
        public var reportsOutdated = 0
        public var eventsInserted = 0
        public var eventsDuplicate = 0
        public var acksSent = 0
        public var acksDropped = 0
        public var commitFailures = 0
    }

    /// When the committer commits.
    public struct CommitPolicy: Sendable {
        /// A pending batch of at least this many reports and events is committed at once.
        public var groupReports = 256
        /// A smaller one waits at most this long after its oldest message arrived.
        public var linger: Duration = .milliseconds(100)
        /// Decoding pauses while this many wait for a commit.
        public var maxPendingReports = 16_384
        /// On a shared database (several aggregators), once commits have failed this long, the agents whose
        /// messages could not be stored are disconnected, so they move to an aggregator that can store them.
        public var handOverAfter: Duration = .seconds(5)

        public init() {}
    }

    let router: RouterServer
    let store: any FleetStoring
    let isEnrolled: @Sendable (String) -> Bool
    let logger: Logger
    let policy: CommitPolicy
    /// Takes what joining peers send (nil without CURVE: nobody joins an insecure aggregator).
    let enrollment: EnrollmentService?
    private let dispatcher: MessageDispatcher
    /// What the dispatcher's handlers collect between commits, shared with them by reference.
    private final class State: Sendable {
        let pending = Mutex(Pending())
        let stats = Mutex(Statistics())
        /// Held for a whole commit: batches are committed one at a time, in arrival order.
        let committing = Mutex(())
        /// Wakes the committer (new messages, shutdown) and a decoder waiting for room.
        let signal = NSCondition()
    }

    /// The batch being collected, with the monotonic time (ns) its first message arrived.
    struct Pending: Sendable {
        var batch = IngestBatch()
        var count = 0
        var firstAt: UInt64 = 0
        /// Bumped each time the committer takes the batch.
        var generation: UInt64 = 0
        var closed = false
    }

    /// Since when commits fail because the database does not answer, and when the last one did (nil while
    /// they succeed): the hand-over clock (``CommitPolicy/handOverAfter``).
    private let failing = Mutex<(since: ContinuousClock.Instant, last: ContinuousClock.Instant)?>(nil)

    private let state = State()
    private let metrics = IngestMetrics()

    /// - Parameter isEnrolled: whether a host id is currently enrolled (checked for CURVE peers).
    public init(
        router: RouterServer, store: any FleetStoring, isEnrolled: @escaping @Sendable (String) -> Bool = { _ in true },
        policy: CommitPolicy = .init(), failoverAcks: (@Sendable (_ host: String, FailoverAck) -> Void)? = nil,
        enrollment: EnrollmentService? = nil, reporters: RecentReporters? = nil, logger: Logger
    ) {
        self.router = router
        self.enrollment = enrollment
        self.store = store
        self.isEnrolled = isEnrolled
        self.policy = policy
        self.logger = logger
        let state = state
        var handlers: [MessageType: MessageDispatcher.Handler] = [
            .report: { message, _ in
                guard case .report(let env) = message else { return }
                guard env.body.host.id == env.host else {
                    state.stats.withLock { $0.reportsRejected += 1 }
                    Counter(label: MetricNames.reportsDroppedTotal).increment()
                    logger.warning("report names another host than its envelope", metadata: ["host.id": "\(env.host)", "claimed": "\(env.body.host.id.prefix(64))"])
                    return
                }
                let now = Date()
                reporters?.record(env.host, at: now)
                state.pending.withLock { p in
                    if p.count == 0 { p.firstAt = DispatchTime.now().uptimeNanoseconds }
                    p.batch.append(report: env.body, hostID: env.host, seq: env.seq, receivedAt: now)
                    p.count += 1
                }
            },
            .pullEvents: { message, _ in
                guard case .pullEvents(let env) = message, !env.body.events.isEmpty else { return }
                state.pending.withLock { p in
                    if p.count == 0 { p.firstAt = DispatchTime.now().uptimeNanoseconds }
                    p.batch.append(events: env.body.events, hostID: env.host)
                    p.count += env.body.events.count
                }
            },
        ]
        if let failoverAcks {
            handlers[.failoverAck] = { message, _ in
                if case .failoverAck(let env) = message { failoverAcks(env.host, env.body) }
            }
        }
        if let enrollment {
            handlers[.rotate] = { message, peer in
                if case .rotate(let env) = message, let peer { enrollment.receiveRotate(env.body, host: peer) }
            }
        }
        dispatcher = MessageDispatcher(handlers: handlers, logger: logger)
    }

    public var statistics: Statistics { state.stats.withLock { $0 } }

    public func run() async throws {
        let committer = IOThread(name: "regwatch-commit") { [self] in commitLoop() }
        // Enrollment is looked up once per peer and inbound batch (the messages of a batch arrived together).
        var enrolled: [String: Bool] = [:]
        for await messages in router.inbound.batched.cancelOnGracefulShutdown() {
            let before = state.pending.withLock { ($0.count, $0.generation) }
            enrolled.removeAll(keepingCapacity: true)
            for message in messages {
                if let enrollment, let bound = message.authenticatedHost, bound != message.peer || JoiningPeer.isJoining(bound) {
                    enrollment.receiveJoining(peer: message.peer, userID: message.authenticatedHost, payload: message.payload)
                    continue
                }
                if message.authenticatedHost.map({ $0 != message.peer }) ?? false {
                    // Only with a test's own authenticator and no enrollment: a wrong routing id is never taken.
                    metrics.dropped.increment()
                    continue
                }
                // Without CURVE there is no bound id: the routing id must at least match the envelope.
                let peer = message.authenticatedHost ?? message.peer
                if message.authenticatedHost != nil {
                    let ok = enrolled[peer] ?? {
                        let ok = isEnrolled(peer)
                        enrolled[peer] = ok
                        return ok
                    }()
                    if !ok {
                        state.stats.withLock { $0.reportsRejected += 1 }
                        metrics.dropped.increment()
                        continue
                    }
                }
                if case .rejected = dispatcher.dispatch(message.payload, authenticatedPeer: peer) {
                    metrics.dropped.increment()
                }
            }
            handOver(before: before)
        }
        close()
        await committer.finished()
        commitPending()
    }

    /// Tells the committer to stop (``run()`` commits the rest itself).
    private func close() {
        state.signal.lock()
        state.pending.withLock { $0.closed = true }
        state.signal.broadcast()
        state.signal.unlock()
    }

    /// Wakes the committer when it has reason to look (the batch was empty or taken since `before`, or
    /// has just grown past ``CommitPolicy/groupReports``), so a lingering committer is not woken for every
    /// message; then waits while too much is pending (the committer is behind).
    private func handOver(before: (count: Int, generation: UInt64)) {
        let (count, generation) = state.pending.withLock { ($0.count, $0.generation) }
        let wake = count > 0 && (before.count == 0 || generation != before.generation || (before.count < policy.groupReports && count >= policy.groupReports))
        guard wake || count >= policy.maxPendingReports else { return }
        state.signal.lock()
        defer { state.signal.unlock() }
        state.signal.signal()
        while state.pending.withLock({ $0.count >= policy.maxPendingReports && !$0.closed }) {
            state.signal.wait()
        }
    }

    /// The committer thread: waits for messages, lingers while a small batch may still grow, commits.
    private func commitLoop() {
        let linger = UInt64(policy.linger.components.seconds) * 1_000_000_000 + UInt64(policy.linger.components.attoseconds / 1_000_000_000)
        let signal = state.signal
        while true {
            signal.lock()
            var closed = false
            while true {
                let (count, firstAt, isClosed) = state.pending.withLock { ($0.count, $0.firstAt, $0.closed) }
                closed = isClosed
                if closed { break }
                if count == 0 { signal.wait(); continue }
                if count >= policy.groupReports { break }
                let now = DispatchTime.now().uptimeNanoseconds
                if now >= firstAt + linger { break }
                _ = signal.wait(until: Date(timeIntervalSinceNow: Double(firstAt + linger - now) / 1e9))
            }
            signal.unlock()
            if closed { return }
            commitPending()
        }
    }

    /// Commits what the handlers collected, then acknowledges the committed events.
    func commitPending() {
        state.committing.withLock { _ in commitPendingLocked() }
    }

    private func commitPendingLocked() {
        let batch = state.pending.withLock { p -> IngestBatch in
            defer { p.batch = IngestBatch(); p.count = 0; p.generation &+= 1 }
            return p.batch
        }
        // A decoder waiting for room may go on.
        state.signal.lock()
        state.signal.broadcast()
        state.signal.unlock()
        guard !batch.isEmpty else { return }
        let started = ContinuousClock.now
        let result: IngestResult
        do {
            result = try store.commit(batch)
            // Counters and phase histograms are recorded off this thread: it is the one that limits
            // throughput (SQLite has a single writer), and the histograms take a lock per observation.
            let metrics = metrics
            Task.detached(priority: .utility) { metrics.record(batch: batch, result: result) }
        } catch {
            // Nothing is acknowledged: agents resend their events, reports are replaced by the next ones.
            state.stats.withLock { $0.commitFailures += 1 }
            metrics.dropped.increment(by: Int64(batch.reports.count))
            logger.error("cannot store a batch; events stay unacknowledged and will be resent", metadata: ["error": "\(error)", "reports": "\(batch.reports.count)"])
            handOver(batch, error: error, failingSince: started)
            return
        }
        failing.withLock { $0 = nil }
        let codec = WireCodec()
        var sent = 0, dropped = 0
        for (host, seqs) in result.committedSeqs where !seqs.isEmpty {
            guard let frame = try? codec.encode(Envelope(host: WireProtocol.aggregatorSender, seq: 0, sentAt: Date(), body: EventsAck(seqs: seqs))) else { continue }
            if router.trySend(to: host, payload: frame) { sent += 1 } else { dropped += 1 }
        }
        state.stats.withLock { s in
            s.batches += 1
            s.reportsStored += result.reportsStored
            s.reportsOutdated += result.reportsOutdated
            s.eventsInserted += result.eventsInserted
            s.eventsDuplicate += result.eventsDuplicate
            s.acksSent += sent
            s.acksDropped += dropped
        }
    }
}

extension IngestService {
    /// After ``CommitPolicy/handOverAfter`` of commits failing because a shared database does not answer,
    /// disconnects the senders of a batch that could not be stored: their agents move to another
    /// aggregator (one that can still reach the database) and re-send their unacknowledged events there.
    /// A batch the database refused (a bad value) hands nobody over: the next aggregator would fail alike.
    /// A single aggregator on SQLite keeps its agents, who have nowhere else to go.
    /// - Parameter started: when the failed commit began: a database cut off answers nothing, so the
    ///   commit failed only when its answer timed out, and the clock runs from the start.
    fileprivate func handOver(_ batch: IngestBatch, error: StoreError, failingSince started: ContinuousClock.Instant) {
        guard store.isShared, case .unavailable = error else { return }
        let now = ContinuousClock.now
        let since = failing.withLock { f -> ContinuousClock.Instant in
            // A failure long after the last one starts a new spell rather than continuing an old one.
            if let current = f, now - current.last < policy.handOverAfter {
                f = (current.since, now)
            } else {
                f = (started, now)
            }
            return f!.since
        }
        guard now - since >= policy.handOverAfter else { return }
        let hosts = Set(batch.reports.map(\.hostID) + batch.events.map(\.hostID))
        for host in hosts { router.disconnect(peer: host, reason: "this aggregator cannot store its messages") }
        if !hosts.isEmpty {
            logger.warning("handing agents over to other aggregators: this one cannot store their messages", metadata: [
                "agents": "\(hosts.count)", "failing.for": "\(now - since)",
            ])
        }
    }
}

/// The ingest path's Prometheus series (names from ``MetricNames``); the executable picks the backend.
struct IngestMetrics: Sendable {
    let ingested = Counter(label: MetricNames.reportsIngestedTotal)
    let dropped = Counter(label: MetricNames.reportsDroppedTotal)
    let authFailures = Counter(label: MetricNames.authFailuresTotal)
    let agentEventsDropped = Counter(label: MetricNames.agentEventsDroppedTotal)
    /// One histogram per phase (in ``PhaseTimings/phaseNames`` order), made once: looking a metric up
    /// per observation would cost more than recording it.
    let phaseTimers: [Timer] = PhaseTimings.phaseNames.map { Timer(label: MetricNames.probeDuration, dimensions: [("phase", $0)]) }

    func record(batch: IngestBatch, result: IngestResult) {
        ingested.increment(by: Int64(result.reportsStored))
        if result.reportsOutdated > 0 { dropped.increment(by: Int64(result.reportsOutdated)) }
        if result.eventsDroppedByAgents > 0 { agentEventsDropped.increment(by: Int64(result.eventsDroppedByAgents)) }
        var authFailed = 0
        let recent = Date().addingTimeInterval(-3600)
        for entry in batch.reports where entry.report.cycleStartedAt > recent {
            for probe in entry.report.probes {
                if probe.errorClass == .authFailed { authFailed += 1 }
                probe.phases.forEachDuration { phase, ms in
                    phaseTimers[phase].recordNanoseconds(Int64(ms * 1_000_000))
                }
            }
        }
        // Pull totals count each (host, seq) once: duplicates of already stored events are skipped.
        for (key, count) in result.insertedByOutcome {
            Counter(label: MetricNames.pullsTotal, dimensions: [("result", key.result), ("class", key.errorClass)]).increment(by: Int64(count))
            if key.errorClass == ErrorClass.authFailed.rawValue { authFailed += count }
        }
        if authFailed > 0 { authFailures.increment(by: Int64(authFailed)) }
    }
}

extension PhaseTimings {
    /// The `phase` label values of `regwatch_probe_duration_seconds` (blackbox_exporter's names, plus `total`).
    static let phaseNames = ["resolve", "connect", "tls", "processing", "total"]

    /// Each phase's own duration (the timings are cumulative), for the phases that were measured:
    /// `body(index into phaseNames, milliseconds)`, without building a list per probe.
    @inline(__always)
    func forEachDuration(_ body: (Int, Double) -> Void) {
        if let dns = dnsMs { body(0, dns) }
        if let c = connectMs { body(1, max(0, c - (dnsMs ?? 0))) }
        if let t = tlsMs, let c = connectMs { body(2, max(0, t - c)) }
        if let f = ttfbMs, let before = tlsMs ?? connectMs { body(3, max(0, f - before)) }
        if let total = totalMs { body(4, total) }
    }
}
