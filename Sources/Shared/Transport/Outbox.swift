import CZeroMQ
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The bounded queue between any task that sends and the transport's I/O thread.
///
/// Senders append under a lock and wake the I/O thread through an eventfd only when the queue goes from
/// empty to non-empty, so a burst costs one wake-up. The I/O thread takes everything in one swap.
/// Capacity counts messages still held by the I/O thread (e.g. waiting for the socket to accept them).
final class Outbox: Sendable {
    struct Item: Sendable {
        var frames: [[UInt8]]
        var bytes: Int
    }

    private struct State {
        var items: [Item] = []
        var count = 0
        var bytes = 0
        var closed = false
        var wakePending = false
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }

    enum EnqueueResult: Equatable { case queued, full, closed }

    private let state = Mutex(State())
    let maxMessages: Int
    let maxBytes: Int
    let wakeFD: Int32

    init(maxMessages: Int, maxBytes: Int) {
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    }

    deinit { Glibc.close(wakeFD) }

    func tryEnqueue(_ frames: [[UInt8]]) -> EnqueueResult {
        let size = frames.reduce(0) { $0 + $1.count }
        let (result, wake) = state.withLock { s -> (EnqueueResult, Bool) in
            if s.closed { return (.closed, false) }
            if s.count >= maxMessages || (s.bytes + size > maxBytes && s.count > 0) { return (.full, false) }
            s.items.append(Item(frames: frames, bytes: size))
            s.count += 1
            s.bytes += size
            if s.wakePending { return (.queued, false) }
            s.wakePending = true
            return (.queued, true)
        }
        if wake { signal() }
        return result
    }

    /// Enqueues, waiting for room when the queue is full. Throws ``TransportError/closed`` after shutdown.
    func enqueue(_ frames: [[UInt8]]) async throws {
        while true {
            switch tryEnqueue(frames) {
            case .queued: return
            case .closed: throw TransportError.closed
            case .full:
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if s.closed || s.count < maxMessages / 2 { return true }
                        s.waiters.append(c)
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
        }
    }

    /// I/O thread: takes every queued item.
    func takeAll() -> [Item] {
        drainWake()
        return state.withLock { s in
            s.wakePending = false
            let items = s.items
            s.items = []
            s.items.reserveCapacity(min(items.count, 4096))
            return items
        }
    }

    /// I/O thread: these items left the queue (sent or dropped); wake waiting senders below half capacity.
    func release(count: Int, bytes: Int) {
        guard count > 0 else { return }
        let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.count -= count
            s.bytes -= bytes
            guard !s.waiters.isEmpty, s.count < maxMessages / 2 || s.count == 0 else { return [] }
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.resume() }
    }

    var depth: Int { state.withLock { $0.count } }

    func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.closed = true
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.resume(throwing: TransportError.closed) }
        signal()
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    func signal() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func drainWake() {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
    }
}
