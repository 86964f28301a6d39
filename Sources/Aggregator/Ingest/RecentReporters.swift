import Foundation
import Synchronization

/// The hosts whose reports reached this aggregator lately, so a follower forwards the leader's
/// directives only to agents connected here rather than to every host of the fleet (libzmq's ROUTER
/// drops a message for a peer it does not have, silently).
public final class RecentReporters: Sendable {
    private let heard = Mutex<[String: Date]>([:])

    public init() {}

    func record(_ host: String, at now: Date) {
        heard.withLock { $0[host] = now }
    }

    /// Whether `host` reported here within `window` before `now`; forgets hosts silent for longer.
    public func contains(_ host: String, now: Date, within window: TimeInterval) -> Bool {
        heard.withLock { h in
            guard let at = h[host] else { return false }
            guard now.timeIntervalSince(at) <= window else {
                h[host] = nil
                return false
            }
            return true
        }
    }
}
