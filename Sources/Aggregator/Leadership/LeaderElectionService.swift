import Foundation
import Logging
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Keeps ``Leadership`` true to the leader lock: every `interval` a follower tries to take the lock and,
/// once it has it, starts the next term in the store; a leader checks it still holds the lock and stops
/// leading at the first check it does not. So a leader cut off from the database stops planning within
/// one interval, while the server frees its lock only once it notices the session is gone.
public final class LeaderElectionService: Service, Sendable {
    let lock: any LeaderLock
    let store: any FleetStoring
    let holder: String
    let interval: Duration
    let leadership: Leadership
    let logger: Logger

    /// - Parameter holder: how this aggregator names itself in the store's term (host and HTTP address).
    public init(lock: any LeaderLock, store: any FleetStoring, holder: String, interval: Duration, leadership: Leadership, logger: Logger) {
        self.lock = lock
        self.store = store
        self.holder = holder
        self.interval = interval
        self.leadership = leadership
        self.logger = logger
    }

    /// The checks run on a thread of their own: store calls of other services block threads of the
    /// cooperative pool while the database does not answer, and a leader's check must not wait for them.
    public func run() async throws {
        let stop = StopFlag()
        let finished = StopFlag()
        OSThread.detach(name: "rw-leader") { [self] in
            while !stop.isSet {
                check(now: Date())
                stop.wait(for: interval)
            }
            finished.set()
        }
        await cancelWhenGracefulShutdown {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in stop.onSet { c.resume() } }
            } onCancel: {
                stop.set()
            }
        }
        stop.set()
        // Joined whatever the task's cancellation: the lock is released below only once no check can
        // take it again.
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in finished.onSet { c.resume() } }
        if leadership.current.isLeader { logger.notice("leadership given up at shutdown", metadata: ["epoch": "\(leadership.current.epoch)"]) }
        leadership.follow()
        lock.release()
    }

    /// One check: keep, lose or take the lead.
    func check(now: Date) {
        let term = leadership.current
        if let epoch = term.leading {
            guard !lock.stillHeld() else { return }
            leadership.follow()
            logger.error("leadership lost: the leader lock is no longer held; correlation and failover planning stop here", metadata: ["epoch": "\(epoch)"])
            return
        }
        guard lock.acquire() else {
            if let known = try? store.currentTerm(), known.epoch > term.epoch { leadership.follow(epoch: known.epoch) }
            return
        }
        do {
            let epoch = try store.beginTerm(holder: holder, now: now)
            leadership.lead(epoch: epoch)
            logger.notice("leading: correlation and failover planning run here", metadata: ["epoch": "\(epoch)", "holder": "\(holder)"])
        } catch {
            // Without a term there is no epoch to sign with: let another try.
            lock.release()
            logger.error("took the leader lock but cannot start a term; released it", metadata: ["error": "\(error)"])
        }
    }
}

/// Tells the election thread to stop, waking its sleep; ``onSet(_:)`` runs its closure once it is set.
final class StopFlag: Sendable {
    private struct State {
        var set = false
        var waiters: [@Sendable () -> Void] = []
    }
    private let state = Mutex(State())
    /// Wakes ``wait(for:)``; a signal with nobody waiting makes the next wait return at once.
    private let wake = DispatchSemaphore(value: 0)

    var isSet: Bool { state.withLock { $0.set } }

    func set() {
        let waiters = state.withLock { s -> [@Sendable () -> Void] in
            guard !s.set else { return [] }
            s.set = true
            defer { s.waiters = [] }
            return s.waiters
        }
        wake.signal()
        for w in waiters { w() }
    }

    func onSet(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            if s.set { return true }
            s.waiters.append(body)
            return false
        }
        if now { body() }
    }

    /// Sleeps `duration` on the monotonic clock (a wall-clock step must not stretch a leader's checks),
    /// or until set.
    func wait(for duration: Duration) {
        guard !isSet else { return }
        _ = wake.wait(timeout: .now() + .nanoseconds(Int(duration.seconds * 1e9)))
    }
}
