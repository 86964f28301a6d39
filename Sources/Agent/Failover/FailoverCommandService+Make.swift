import FoundationEssentials
import Logging
import RegwatchShared

extension FailoverCommandService {
    /// The service as `regwatch-agent run` uses it: the real reloader (SIGHUP or systemctl, per config),
    /// dockerd verified through `GET /info` when Docker is managed, acks sent to the aggregator.
    public static func make(config: AgentConfig, verifier: CommandVerifier?, client: DealerClient?, logger: Logger) throws -> FailoverCommandService {
        var dockerMirrors: (@Sendable () async throws -> [String])?
        if let docker = config.runtime.docker {
            let engine = DockerEngine(socket: docker.socket, runner: CurlMultiRunner())
            dockerMirrors = { try await engine.effectiveMirrors() }
        }
        let applier = FailoverApplier(config: config, reloader: ProcessReloader(dockerPidFile: config.runtime.docker?.pidFile), dockerMirrors: dockerMirrors)
        let codec = WireCodec()
        let hostID = config.host.id
        do {
            return try FailoverCommandService(
                config: config, gate: CommandGate(verifier: verifier, config: config), applier: applier, logger: logger,
                acknowledge: { ack in
                    guard let client, let frame = try? codec.encode(Envelope(host: hostID, seq: 0, sentAt: Date(), body: ack)) else { return }
                    if !client.trySend(frame) { logger.warning("failover ack dropped: the outbox is full", metadata: ["generation": "\(ack.generation)"]) }
                })
        } catch {
            throw ConfigError(file: error.path, key: "stateDir", message: "\(error.reason): refusing to start without the applied failover generation (replays would be accepted)")
        }
    }
}
