import Foundation
import Logging
import RegwatchShared
import ServiceLifecycle

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

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                self.check(now: Date())
                try? await Task.sleep(for: self.interval)
            }
        }
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
