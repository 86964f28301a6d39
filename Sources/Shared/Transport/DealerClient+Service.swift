import ServiceLifecycle

/// The dealer runs in the agent's `ServiceGroup`: connects with the group, closes on graceful shutdown.
extension DealerClient: Service {
    public func run() async throws {
        if !isStarted { try start() }
        try? await gracefulShutdown()
        await shutdown()
    }
}
