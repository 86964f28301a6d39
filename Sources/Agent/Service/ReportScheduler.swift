import FoundationEssentials
import Logging
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Runs a check cycle every `interval` and publishes the result as a ``Report``.
///
/// Each agent starts at a random offset within the first tenth of the interval and keeps a little
/// jitter on every tick, so a fleet restarted together does not probe (or report) in lockstep.
/// Reports are fire-and-forget: the newest one wins, a full outbox drops one (counted and logged).
public struct ReportScheduler: Service {
    let config: AgentConfig
    let cycle: CheckCycle
    let client: DealerClient
    let logger: Logger
    let stats: Stats
    let eventSink: PullEventSink?
    let appliedGeneration: @Sendable () -> UInt64
    /// The pull-event spool's counts for each report (nil: no spool, as in tests of the report path).
    let spool: (@Sendable () -> SpoolStatus)?
    /// Closed while the agent joins: reports wait in ``held`` (the newest ``heldLimit``) until admitted.
    let gate: EnrollmentGate?
    let held = Held()
    static let heldLimit = 16

    /// Reports made while the aggregator does not admit this agent yet.
    final class Held: Sendable {
        let frames = Mutex<[[UInt8]]>([])
    }

    /// Counters the agent exposes; a class so the service (a value) can update them.
    public final class Stats: Sendable {
        let dropped = AtomicCounter()
        public var reportsDropped: Int { dropped.value }
        public init() {}
    }

    public init(
        config: AgentConfig, cycle: CheckCycle, client: DealerClient, logger: Logger, stats: Stats = Stats(), eventSink: PullEventSink? = nil,
        appliedGeneration: @escaping @Sendable () -> UInt64 = { 0 }, gate: EnrollmentGate? = nil,
        spool: (@Sendable () -> SpoolStatus)? = nil
    ) {
        self.gate = gate
        self.spool = spool
        self.eventSink = eventSink
        self.appliedGeneration = appliedGeneration
        self.config = config
        self.cycle = cycle
        self.client = client
        self.logger = logger
        self.stats = stats
    }

    /// Stops at once on graceful shutdown: the wait between rounds (up to a whole interval) is cancelled.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                if let gate = self.gate {
                    // Admitted: what waited goes out at once, not at the next cycle.
                    group.addTask {
                        var seen = 0
                        while !Task.isCancelled {
                            seen = await gate.waitForAdmission(after: seen)
                            if Task.isCancelled { return }
                            self.flushHeld()
                        }
                    }
                }
                await self.loop()
                group.cancelAll()
            }
        }
    }

    /// Sends the held reports, oldest first, while admitted.
    private func flushHeld() {
        guard gate?.isAdmitted ?? true else { return }
        let frames = held.frames.withLock { f in defer { f = [] }; return f }
        for frame in frames { publish(frame) }
    }

    private func publish(_ frame: [UInt8]) {
        if !client.trySend(frame) {
            stats.dropped.increment()
            logger.warning("report dropped: the outbox to the aggregator is full", metadata: ["host.id": "\(config.host.id)", "dropped": "\(stats.reportsDropped)"])
        }
    }

    private func loop() async {
        let lastCycle = LastCycleFile(stateDir: config.stateDir)
        let interval = config.interval
        let intervalSeconds = interval.seconds
        var seq: UInt64 = 0
        let codec = WireCodec()
        try? await Task.sleep(for: .milliseconds(Int.random(in: 0...max(1, Int(intervalSeconds * 100)))))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let started = Date()
            let result = await cycle.run()
            if Task.isShuttingDownGracefully { break }
            lastCycle.write(Date())
            seq += 1
            let report = Report(
                host: config.host, agentVersion: RegwatchVersion.current, cycleStartedAt: started, intervalSeconds: intervalSeconds,
                probes: result.probes, runtimes: result.runtimes, appliedGeneration: appliedGeneration(),
                mirrorPools: Dictionary(uniqueKeysWithValues: config.registries.map { ($0.name, $0.mirrors) }),
                eventSources: eventSink?.statusList ?? [], spool: spool?()
            )
            do {
                let frame = try codec.encode(Envelope(host: config.host.id, seq: seq, sentAt: Date(), body: report))
                if let gate, !gate.isAdmitted {
                    held.frames.withLock { f in
                        f.append(frame)
                        if f.count > Self.heldLimit { f.removeFirst(f.count - Self.heldLimit) }
                    }
                    // Admitted between the check and the append: out now, not at the next admission.
                    if gate.isAdmitted { flushHeld() }
                } else {
                    flushHeld()
                    publish(frame)
                }
            } catch {
                logger.error("cannot encode report", metadata: ["error": "\(error)"])
            }
            // Start-up is over after two cycles: its code need not stay resident (``StartupPages``).
            if seq == 2 { StartupPages.release() }
            let jitter = Double.random(in: -0.05...0.05) * intervalSeconds
            let wait = max(0.1, intervalSeconds + jitter - Date().timeIntervalSince(started))
            try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
        }
    }
}

/// A lock-free counter.
final class AtomicCounter: Sendable {
    private let storage = Synchronization.Atomic<Int>(0)
    func increment() { storage.add(1, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}
