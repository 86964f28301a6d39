import CZeroMQ
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The bounded queue between any task that sends and the transport's I/O thread.
///
/// Senders append under a lock. They wake the I/O thread through an eventfd only when it has said it is
/// going to sleep, so under load (the thread busy draining) sending costs no system call at all.
/// Capacity counts messages still held by the I/O thread (e.g. waiting for the socket to accept them).
final class Outbox: Sendable {
    struct Item: Sendable {
        /// The ROUTER's routing-id frame; nil on a DEALER.
        var peer: [UInt8]?
        var payload: [UInt8]
        var bytes: Int { payload.count + (peer?.count ?? 0) }
    }

    private struct State {
        var items: [Item] = []
        var count = 0
        var bytes = 0
        var closed = false
        /// The I/O thread is (about to be) blocked in poll and needs the eventfd to wake.
        var sleeping = false
        var signalled = false
        /// ``wake()`` was called: the next ``prepareToSleep()`` returns false once.
        var kicked = false
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

    /// Wakes the I/O thread for work that is not a message (a disconnect, an identity change).
    func wake() {
        let wake = state.withLock { s -> Bool in
            s.kicked = true
            guard s.sleeping, !s.signalled else { return false }
            s.signalled = true
            return true
        }
        if wake { signal() }
    }

    func tryEnqueue(_ item: Item) -> EnqueueResult {
        let size = item.bytes
        let (result, wake) = state.withLock { s -> (EnqueueResult, Bool) in
            if s.closed { return (.closed, false) }
            if s.count >= maxMessages || (s.bytes + size > maxBytes && s.count > 0) { return (.full, false) }
            s.items.append(item)
            s.count += 1
            s.bytes += size
            guard s.sleeping, !s.signalled else { return (.queued, false) }
            s.signalled = true
            return (.queued, true)
        }
        if wake { signal() }
        return result
    }

    /// Enqueues, waiting for room when the queue is full. Throws ``TransportError/closed`` after shutdown.
    func enqueue(_ item: Item) async throws {
        while true {
            switch tryEnqueue(item) {
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
        state.withLock { s in
            guard !s.items.isEmpty else { return [] }
            let items = s.items
            s.items = []
            s.items.reserveCapacity(min(items.count, 4096))
            return items
        }
    }

    /// I/O thread: about to block in poll. Returns false (do not sleep) when items arrived meanwhile.
    func prepareToSleep() -> Bool {
        state.withLock { s in
            if !s.items.isEmpty || s.closed || s.kicked {
                s.kicked = false
                return false
            }
            s.sleeping = true
            return true
        }
    }

    /// I/O thread: back from poll.
    func wokeUp() {
        let drain = state.withLock { s -> Bool in
            s.sleeping = false
            let was = s.signalled
            s.signalled = false
            return was
        }
        if drain {
            var value: UInt64 = 0
            _ = read(wakeFD, &value, 8)
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
        let (waiters, wake) = state.withLock { s -> ([CheckedContinuation<Void, any Error>], Bool) in
            s.closed = true
            let w = s.waiters
            s.waiters = []
            let wake = !s.signalled
            s.signalled = true
            return (w, wake)
        }
        for w in waiters { w.resume(throwing: TransportError.closed) }
        if wake { signal() }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }
}
