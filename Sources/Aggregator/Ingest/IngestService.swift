import Foundation
import Logging
import Metrics
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Takes what agents send on the ROUTER, validates it and writes it to the ``FleetStore`` in one
/// transaction per inbound batch (group commit: everything that arrived while the previous transaction
/// ran is committed together), then acknowledges pull events, only after their commit.
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

    let router: RouterServer
    let store: FleetStore
    let isEnrolled: @Sendable (String) -> Bool
    let logger: Logger
    private let dispatcher: MessageDispatcher
    /// What the dispatcher's handlers collect between commits, shared with them by reference.
    private final class State: Sendable {
        let pending = Mutex(IngestBatch())
        let stats = Mutex(Statistics())
    }

    private let state = State()
    private let metrics = IngestMetrics()

    /// - Parameter isEnrolled: whether a host id is currently enrolled (checked for CURVE peers).
    public init(router: RouterServer, store: FleetStore, isEnrolled: @escaping @Sendable (String) -> Bool = { _ in true }, logger: Logger) {
        self.router = router
        self.store = store
        self.isEnrolled = isEnrolled
        self.logger = logger
        let state = state
        dispatcher = MessageDispatcher(handlers: [
            .report: { message, _ in
                guard case .report(let env) = message else { return }
                guard env.body.host.id == env.host else {
                    state.stats.withLock { $0.reportsRejected += 1 }
                    logger.warning("report names another host than its envelope", metadata: ["host.id": "\(env.host)", "claimed": "\(env.body.host.id.prefix(64))"])
                    return
                }
                state.pending.withLock { $0.append(report: env.body, hostID: env.host, seq: env.seq, receivedAt: Date()) }
            },
            .pullEvents: { message, _ in
                guard case .pullEvents(let env) = message, !env.body.events.isEmpty else { return }
                state.pending.withLock { $0.append(events: env.body.events, hostID: env.host) }
            },
        ], logger: logger)
    }

    public var statistics: Statistics { state.stats.withLock { $0 } }
    public var dispatcherStatistics: MessageDispatcher.Stats { dispatcher.statistics }

    public func run() async throws {
        for await messages in router.inbound.batched.cancelOnGracefulShutdown() {
            for message in messages {
                // Without CURVE there is no bound id: the routing id must at least match the envelope.
                let peer = message.authenticatedHost ?? message.peer
                if message.authenticatedHost != nil, !isEnrolled(peer) {
                    state.stats.withLock { $0.reportsRejected += 1 }
                    metrics.dropped.increment()
                    continue
                }
                if case .rejected = dispatcher.dispatch(message.payload, authenticatedPeer: peer) {
                    metrics.dropped.increment()
                }
            }
            commitPending()
        }
        commitPending()
    }

    /// Commits what the handlers collected, then acknowledges the committed events.
    func commitPending() {
        let batch = state.pending.withLock { b -> IngestBatch in
            defer { b = IngestBatch() }
            return b
        }
        guard !batch.isEmpty else { return }
        let result: IngestResult
        do {
            result = try store.commit(batch)
        } catch {
            // Nothing is acknowledged: agents resend their events, reports are replaced by the next ones.
            state.stats.withLock { $0.commitFailures += 1 }
            metrics.dropped.increment(by: Int64(batch.reports.count))
            logger.error("cannot store a batch; events stay unacknowledged and will be resent", metadata: ["error": "\(error)", "reports": "\(batch.reports.count)"])
            return
        }
        metrics.record(batch: batch, result: result)
        let codec = WireCodec()
        var sent = 0, dropped = 0
        for (host, seqs) in result.committedSeqs where !seqs.isEmpty {
            guard let frame = try? codec.encode(Envelope(host: "aggregator", seq: 0, sentAt: Date(), body: EventsAck(seqs: seqs))) else { continue }
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

/// The ingest path's Prometheus series (names from ``MetricNames``); the executable picks the backend.
struct IngestMetrics: Sendable {
    let ingested = Counter(label: MetricNames.reportsIngestedTotal)
    let dropped = Counter(label: MetricNames.reportsDroppedTotal)
    let authFailures = Counter(label: MetricNames.authFailuresTotal)
    /// One histogram per phase, made once: looking a metric up per observation would cost more than recording it.
    let phaseTimers: [String: Timer] = Dictionary(uniqueKeysWithValues: PhaseTimings.phaseNames.map {
        ($0, Timer(label: MetricNames.probeDuration, dimensions: [("phase", $0)]))
    })

    func record(batch: IngestBatch, result: IngestResult) {
        ingested.increment(by: Int64(result.reportsStored))
        if result.reportsOutdated > 0 { dropped.increment(by: Int64(result.reportsOutdated)) }
        var authFailed = 0
        for entry in batch.reports where entry.report.cycleStartedAt.timeIntervalSinceNow > -3600 {
            for probe in entry.report.probes {
                if probe.errorClass == .authFailed { authFailed += 1 }
                for (phase, ms) in probe.phases.durations {
                    phaseTimers[phase]?.recordNanoseconds(Int64(ms * 1_000_000))
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

    /// Each phase's own duration (the timings are cumulative), for the phases that were measured.
    var durations: [(String, Double)] {
        var out: [(String, Double)] = []
        if let dns = dnsMs { out.append(("resolve", dns)) }
        if let c = connectMs { out.append(("connect", max(0, c - (dnsMs ?? 0)))) }
        if let t = tlsMs, let c = connectMs { out.append(("tls", max(0, t - c))) }
        if let f = ttfbMs, let before = tlsMs ?? connectMs { out.append(("processing", max(0, f - before))) }
        if let total = totalMs { out.append(("total", total)) }
        return out
    }
}
