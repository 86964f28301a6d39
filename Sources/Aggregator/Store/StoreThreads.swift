import NIOPosix

/// Threads of their own for store calls made from async code. A store call blocks until the database
/// answers (GRDB's and the PostgreSQL session's alike); made on the cooperative pool, which has one
/// thread per core, two such calls stall every task of the process (the HTTP API, `/metrics`, the
/// leader's lock check) for as long as a database that was cut off takes to time out.
public enum StoreThreads {
    /// Four: the API, correlation, failover and the gauges can each wait on the database at once.
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        return pool
    }()

    /// Runs `body` on a store thread; the calling task is suspended meanwhile, not blocked.
    public static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            // The pool is never shut down, so every submitted body runs.
            pool.submit { _ in continuation.resume(returning: Result { () throws(E) -> T in try body() }) }
        }
        return try result.get()
    }
}
