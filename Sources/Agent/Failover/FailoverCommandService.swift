import FoundationEssentials
import Logging
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Takes signed failover commands from the aggregator one at a time: the ``CommandGate`` decides, the
/// agent's own hourly budget is checked, the ``FailoverApplier`` writes, reloads and verifies, the new
/// generation is persisted (fsync) and only then acknowledged. Every refusal is acked with its reason and
/// logged, and nothing is written for it.
///
/// Commands are handled in arrival order on this service's task, never concurrently: two applies
/// interleaving on the same files is exactly what the all-or-nothing applier cannot survive.
public final class FailoverCommandService: Service, Sendable {
    let gate: CommandGate
    let applier: FailoverApplier
    let generationFile: AppliedGenerationFile
    let changes: ChangeHistoryFile
    let settings: AgentConfig.Failover
    let hostID: String
    /// Paths in ack reasons are shown as the host names them.
    let hostRoot: HostRoot
    let logger: Logger
    let acknowledge: @Sendable (FailoverAck) -> Void
    /// The generation in force and the term that issued it, as in `stateDir/applied-generation`; only
    /// this service's task writes it.
    private let applied: Mutex<CommandVersion>
    private let commands: AsyncStream<SignedFailoverCommand>
    private let continuation: AsyncStream<SignedFailoverCommand>.Continuation

    /// - Parameter acknowledge: sends an ack to the aggregator (best effort: the next report carries the
    ///   applied generation anyway).
    /// - Throws: when `stateDir/applied-generation` exists but cannot be read: starting from 0 would let
    ///   old commands be replayed.
    public init(
        config: AgentConfig, gate: CommandGate, applier: FailoverApplier, logger: Logger,
        acknowledge: @escaping @Sendable (FailoverAck) -> Void
    ) throws(AppliedGenerationFile.Failure) {
        self.gate = gate
        self.applier = applier
        generationFile = AppliedGenerationFile(stateDir: config.stateDir)
        changes = ChangeHistoryFile(stateDir: config.stateDir)
        settings = config.failover
        hostID = config.host.id
        hostRoot = config.hostRoot
        self.logger = logger
        self.acknowledge = acknowledge
        let version = try generationFile.readVersion()
        applied = Mutex(version)
        // A handful queued is plenty: the aggregator re-sends until the host converges.
        (commands, continuation) = AsyncStream.makeStream(of: SignedFailoverCommand.self, bufferingPolicy: .bufferingNewest(8))
    }

    /// The generation in force on this host: reported with every report.
    public var appliedGeneration: UInt64 { applied.withLock { $0.generation } }

    /// Queues a command received from the aggregator.
    public func submit(_ command: SignedFailoverCommand) {
        continuation.yield(command)
    }

    public func run() async throws {
        for await command in commands.cancelOnGracefulShutdown() {
            acknowledge(await handle(command, now: Date()))
        }
    }

    /// Decides and applies one command; returns the ack to send.
    public func handle(_ command: SignedFailoverCommand, now: Date) async -> FailoverAck {
        var ack = await decide(command, now: now)
        ack.reason = hostRoot.shown(ack.reason)
        ack.appliedEpoch = applied.withLock { $0.epoch }
        return ack
    }

    private func decide(_ command: SignedFailoverCommand, now: Date) async -> FailoverAck {
        let obeyed = applied.withLock { $0 }
        let current = obeyed.generation
        switch gate.evaluate(command, applied: obeyed, now: now) {
        case .confirm(let version):
            do { try generationFile.write(version.generation, epoch: version.epoch) } catch {
                return FailoverAck(generation: version.generation, outcome: .failed, reason: "cannot keep epoch \(version.epoch): \(error)", appliedGeneration: current)
            }
            applied.withLock { $0 = version }
            logger.notice("failover generation confirmed by a new aggregator term", metadata: ["generation": "\(version.generation)", "epoch": "\(version.epoch)"])
            return FailoverAck(generation: version.generation, outcome: .ignored, reason: "generation \(version.generation) is already applied; epoch \(version.epoch) kept", appliedGeneration: current)
        case .ignore(let g, let reason):
            logger.debug("failover command ignored", metadata: ["generation": "\(g)", "reason": "\(reason)"])
            return FailoverAck(generation: g, outcome: .ignored, reason: reason, appliedGeneration: current)
        case .reject(let g, let reason):
            return reject(g ?? 0, reason)
        case .accept(let directive):
            let g = directive.generation
            guard settings.enabled else { return reject(g, "failover is disabled on this host (failover.enabled: false)") }
            let recent = changes.recent(now: now)
            guard recent.count < settings.maxChangesPerHour else {
                return reject(g, "change budget spent: \(recent.count) changes in the last hour (failover.maxChangesPerHour: \(settings.maxChangesPerHour))")
            }
            logger.notice("applying failover generation", metadata: [
                "generation": "\(g)", "epoch": "\(directive.epoch)", "reason": "\(directive.reason)",
                "mirrors": "\(directive.mirrors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.joined(separator: ","))" }.joined(separator: " "))",
            ])
            let outcome = await applier.apply(directive)
            guard outcome.applied else {
                let reason = outcome.detail.joined(separator: "; ")
                let rolledBack = outcome.detail.first?.hasPrefix("rolled back") == true
                logger.error("failover generation not applied", metadata: ["generation": "\(g)", "reason": "\(reason)"])
                return FailoverAck(generation: g, outcome: rolledBack ? .rolledBack : .failed, reason: reason, appliedGeneration: current)
            }
            Failpoint.hit("apply.before-persist")
            do {
                try generationFile.write(g, epoch: directive.epoch)
            } catch {
                // The files are the new ones; the aggregator re-sends this generation and the re-apply
                // finds them current. Until the number is on disk the host does not claim it.
                logger.error("failover applied but its generation could not be persisted", metadata: ["generation": "\(g)", "error": "\(error)"])
                return FailoverAck(generation: g, outcome: .failed, reason: "applied, but \(error)", appliedGeneration: current)
            }
            applied.withLock { $0 = CommandVersion(epoch: directive.epoch, generation: g) }
            do { try changes.record(now) } catch {
                logger.warning("cannot record the change time", metadata: ["error": "\(error)"])
            }
            let detail = outcome.detail.joined(separator: "; ")
            logger.notice("failover generation applied", metadata: ["generation": "\(g)", "epoch": "\(directive.epoch)", "detail": "\(detail)"])
            return FailoverAck(generation: g, outcome: .applied, reason: detail, appliedGeneration: g)
        }
    }

    private func reject(_ generation: UInt64, _ reason: String) -> FailoverAck {
        logger.warning("failover command rejected", metadata: ["generation": "\(generation)", "reason": "\(reason)", "host.id": "\(hostID)"])
        return FailoverAck(generation: generation, outcome: .rejected, reason: reason, appliedGeneration: appliedGeneration)
    }
}
