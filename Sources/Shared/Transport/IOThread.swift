import CZeroMQ
import Foundation

/// Runs a transport's poll loop on a dedicated OS thread, so blocking libzmq calls never occupy a
/// thread of Swift's cooperative pool. `finished` resumes when the loop returns.
final class IOThread: Sendable {
    private let done = AsyncStream<Void>.makeStream()

    init(name: String, body: @escaping @Sendable () -> Void) {
        let continuation = done.continuation
        let thread = Thread {
            rw_set_thread_name(String(name.prefix(15)))
            body()
            continuation.yield()
            continuation.finish()
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Waits for the loop to end.
    func finished() async {
        for await _ in done.stream {}
    }
}

/// Monotonic milliseconds for poll timeouts and reconnect deadlines.
func monotonicMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
