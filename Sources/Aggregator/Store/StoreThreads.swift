import NIOPosix

/// Threads of their own for store calls made from async code. A store call blocks until the database
/// answers (GRDB's and the PostgreSQL session's alike); made on the cooperative pool, which has one
/// thread per core, two such calls stall every task of the process (the HTTP API, `/metrics`, the
/// leader's lock check) for as long as a database that was cut off takes to time out.
public enum StoreThreads {
    /// Whose threads: the HTTP API's requests (as many as clients send) queue on their own, so probes of
    /// `/healthz` and dashboards cannot hold up correlation and failover, nor the other way round.
    public enum Lane: Sendable {
        case services
        case api
    }

    /// Correlation, failover, the gauges and the enrollment stamps can each wait on the database at once.
    static let services = started(NIOThreadPool(numberOfThreads: 4))
    static let api = started(NIOThreadPool(numberOfThreads: 4))

    private static func started(_ pool: NIOThreadPool) -> NIOThreadPool {
        pool.start()
        return pool
    }

    /// Runs `body` on a store thread of `lane`; the calling task is suspended meanwhile, not blocked.
    public static func run<T: Sendable, E: Error>(_ lane: Lane = .services, _ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let pool = lane == .api ? api : services
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            // The pools are never shut down, so every submitted body runs.
            pool.submit { _ in continuation.resume(returning: Result { () throws(E) -> T in try body() }) }
        }
        return try result.get()
    }
}
