import Foundation

/// What changed in the set of open outages at one evaluation: what the caller persists, alerts on and
/// hands to the failover controller.
///
/// Times are those of the observation, not of the decision: `opened` carries the first window of the
/// streak that opened it (when the problem was first seen, not `openAfter - 1` windows later) and
/// `closed` the first window of the absence that closed it (when it stopped, not when the recovery hold
/// ran out). The decision time is the `now` the caller passed to `evaluate`.
public enum OutageTransition: Sendable, Equatable {
    /// The candidate held for `openAfter` consecutive windows; `at` is when the streak began.
    case opened(OutageCandidate, at: Date)
    /// An open outage changed in class or size (affected or total hosts); `at` is the evaluation time.
    case updated(OutageCandidate, at: Date)
    /// An open outage stayed absent for the recovery hold; `at` is when it was first absent.
    case closed(OutageKey, at: Date)

    public var key: OutageKey {
        switch self {
        case .opened(let c, _), .updated(let c, _): c.key
        case .closed(let k, _): k
        }
    }

    public var at: Date {
        switch self {
        case .opened(_, let at), .updated(_, let at), .closed(_, let at): at
        }
    }
}
