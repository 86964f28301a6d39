import FoundationEssentials
import Logging
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Delivers pull events at least once: every event from the sources is numbered and written to the
/// ``EventSpool`` before it is sent, sent in batches, and sent again every `resendAfter` until the
/// aggregator acknowledges it (``acknowledge(_:)``, called by ``AgentInbox``) after its commit.
///
/// Fail static: with the aggregator unreachable, sending stops at the bounded outbox and the spool keeps
/// filling up to its byte bound (oldest dropped, counted); a reconnect triggers an immediate resend.
public final class EventPublisher: Service, Sendable {
    let hostID: String
    let spool: EventSpool
    let sink: PullEventSink
    let client: DealerClient
    let settings: AgentConfig.Events
    let logger: Logger
    /// Closed while the agent joins: events stay in the spool until the aggregator admits it.
    let gate: EnrollmentGate?
    /// When each pending event was last handed to the transport.
    private let lastSent = Mutex<[UInt64: ContinuousClock.Instant]>([:])
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>
    /// Rung when events enter the spool: wakes ``tick()`` from its idle sleep.
    private let spooled = WakeSignal()
    private let counters = Mutex(Counters())

    public struct Counters: Sendable, Equatable {
        public var batchesSent = 0
        public var eventsSent = 0
        public var resent = 0
        public var acknowledged = 0
        public var outboxFull = 0
    }

    public init(hostID: String, spool: EventSpool, sink: PullEventSink, client: DealerClient, settings: AgentConfig.Events, logger: Logger, gate: EnrollmentGate? = nil) {
        self.gate = gate
        self.hostID = hostID
        self.spool = spool
        self.sink = sink
        self.client = client
        self.settings = settings
        self.logger = logger
        (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public var statistics: Counters { counters.withLock { $0 } }

    public func run() async throws {
        let pending = spool.statistics.pending
        if pending > 0 {
            logger.info("resending spooled pull events from a previous run", metadata: ["events": "\(pending)", "spool": "\(spool.path)"])
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.spoolIncoming() }
            group.addTask { await self.watchConnection() }
            group.addTask { await self.tick() }
            group.addTask { await self.sendLoop() }
            await withGracefulShutdownHandler {
                await group.next()
            } onGracefulShutdown: {
                self.wake.finish()
            }
            group.cancelAll()
        }
    }

    /// The aggregator committed these events: they leave the spool.
    public func acknowledge(_ seqs: [UInt64]) {
        spool.acknowledge(seqs)
        lastSent.withLock { m in for s in seqs { m.removeValue(forKey: s) } }
        counters.withLock { $0.acknowledged += seqs.count }
    }

    private func spoolIncoming() async {
        var dropped = spool.statistics.dropped
        var lastSaid: ContinuousClock.Instant?
        for await events in sink.events {
            spool.append(events)
            spooled.ring()
            wake.yield()
            // Said at most once a minute, with what was dropped since; the reports carry the running count.
            let now = spool.statistics.dropped
            if now > dropped, lastSaid.map({ $0.duration(to: .now) >= .seconds(60) }) ?? true {
                logger.warning("spool full: dropped the oldest pull events", metadata: [
                    "dropped": "\(now - dropped)", "dropped.total": "\(now)", "spool.max_bytes": "\(spool.maxBytes)",
                ])
                dropped = now
                lastSaid = .now
            }
        }
    }

    /// A new connection (aggregator restarted, network back): everything pending goes out now.
    private func watchConnection() async {
        for await event in client.events {
            if case .connected = event {
                lastSent.withLock { $0.removeAll() }
                wake.yield()
            }
        }
    }

    /// Resends come due while events are pending; with none pending it sleeps until the spool gets some,
    /// so an idle agent has no timer here.
    private func tick() async {
        let period = max(Duration.milliseconds(100), settings.resendAfter / 2)
        while !Task.isCancelled {
            if spool.statistics.pending == 0 { await spooled.wait() }
            try? await Task.sleep(for: period)
            if spool.statistics.pending > 0 { wake.yield() }
        }
    }

    private func sendLoop() async {
        let codec = WireCodec()
        var seq: UInt64 = 0
        for await _ in wakeups {
            // Sending while disconnected would only park copies of the spool in the outbox; resends wait
            // for the connection, and a backlog in the outbox waits for the socket to drain.
            guard client.statistics.state == .connected, client.queued < 4, gate?.isAdmitted ?? true else { continue }
            let now = ContinuousClock.now
            let resendAfter = settings.resendAfter
            while true {
                let due = lastSent.withLock { sent in
                    spool.pending(limit: settings.batchMaxEvents, maxBytes: 1 << 20) { s in
                        guard let at = sent[s] else { return true }
                        return now - at >= resendAfter
                    }
                }
                guard !due.isEmpty else { break }
                seq += 1
                guard let frame = try? codec.encode(Envelope(host: hostID, seq: seq, sentAt: Date(), body: PullEventBatch(events: due))) else { break }
                guard client.trySend(frame) else {
                    counters.withLock { $0.outboxFull += 1 }
                    break
                }
                let resent = lastSent.withLock { sent in
                    var resent = 0
                    for e in due {
                        if sent[e.seq] != nil { resent += 1 }
                        sent[e.seq] = now
                    }
                    return resent
                }
                counters.withLock {
                    $0.batchesSent += 1
                    $0.eventsSent += due.count
                    $0.resent += resent
                }
                if due.count < settings.batchMaxEvents || client.queued >= 4 { break }
            }
            // Forget send times of events that left the spool by being dropped.
            let pendingCount = spool.statistics.pending
            lastSent.withLock { sent in
                if sent.count > 2 * pendingCount + 64 {
                    let keep = spool.pendingSeqs
                    sent = sent.filter { keep.contains($0.key) }
                }
            }
        }
    }
}
