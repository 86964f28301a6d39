import CZeroMQ
import Synchronization

/// Runs a transport's poll loop on a dedicated OS thread, so blocking libzmq calls never occupy a
/// thread of Swift's cooperative pool. ``finished()`` returns once the loop has returned.
public final class IOThread: Sendable {
    private final class Completion: Sendable {
        let state = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    }

    private let completion = Completion()

    public init(name: String, body: @escaping @Sendable () -> Void) {
        let completion = completion
        OSThread.detach(name: name) {
            body()
            let waiters = completion.state.withLock { s in
                s.done = true
                defer { s.waiters = [] }
                return s.waiters
            }
            for w in waiters { w.resume() }
        }
    }

    /// Waits for the loop to end; any number of callers may wait.
    public func finished() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = completion.state.withLock { s in
                if !s.done { s.waiters.append(c) }
                return s.done
            }
            if done { c.resume() }
        }
    }
}

/// Monotonic milliseconds for poll timeouts and reconnect deadlines.
func monotonicMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
