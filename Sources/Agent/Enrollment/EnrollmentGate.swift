import Synchronization

/// Whether the aggregator admits this agent as its host id yet. Until it does, reports wait in memory
/// and pull events in the spool: a joining connection may carry nothing but `join`.
public final class EnrollmentGate: Sendable {
    private struct State {
        var admitted: Bool
        /// How many times ``admit()`` was called: lets a waiter sleep until the next admission.
        var admissions = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state: Mutex<State>

    public init(admitted: Bool) {
        state = Mutex(State(admitted: admitted))
    }

    public var isAdmitted: Bool { state.withLock { $0.admitted } }

    public func admit() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.admitted = true
            s.admissions += 1
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Back to joining (the aggregator no longer knows the key).
    public func close() {
        state.withLock { $0.admitted = false }
    }

    /// Returns once admitted (at once if it is), or when the task is cancelled.
    public func waitUntilAdmitted() async {
        await wait { $0.admitted }
    }

    /// Returns the admission count once it is above `seen` (at once if it already is), or when the task is
    /// cancelled: a loop that acts on each admission sleeps in between instead of polling.
    public func waitForAdmission(after seen: Int) async -> Int {
        await wait { $0.admissions > seen }
        return state.withLock { $0.admissions }
    }

    private func wait(until ready: @Sendable (State) -> Bool) async {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if ready(s) || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
