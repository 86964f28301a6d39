import ServiceLifecycle

/// The router runs in the executable's `ServiceGroup`: started with the group, closed on graceful shutdown.
extension RouterServer: Service {
    public func run() async throws {
        if boundEndpoint == nil { try start() }
        try? await gracefulShutdown()
        await shutdown()
    }
}
