import Foundation
import Metrics
import RegwatchShared
import Synchronization

/// Whether this aggregator leads, and in which term: what correlation, failover and `/healthz` read.
/// Only ``LeaderElectionService`` changes it (and failover, when the store says its term has ended).
public final class Leadership: Sendable {
    public struct Term: Sendable, Equatable {
        /// The epoch of the term this aggregator leads; nil while it follows.
        public var leading: UInt64?
        /// The latest epoch this aggregator knows of (its own while it leads).
        public var epoch: UInt64
        public var isLeader: Bool { leading != nil }
    }

    private let state = Mutex(Term(leading: nil, epoch: 0))

    /// Starts as a follower of no known term (the gauges at 0 until the first check).
    public init() {
        set(Term(leading: nil, epoch: 0))
    }

    public var current: Term { state.withLock { $0 } }

    func lead(epoch: UInt64) {
        set(Term(leading: epoch, epoch: epoch))
    }

    /// Stops leading (lost the lock, or the store refused a write of its term); `epoch` when a newer one is known.
    func follow(epoch: UInt64? = nil) {
        let now = state.withLock { s in Term(leading: nil, epoch: max(s.epoch, epoch ?? 0)) }
        set(now)
    }

    private func set(_ term: Term) {
        state.withLock { $0 = term }
        Gauge(label: MetricNames.leader).record(term.isLeader ? 1 : 0)
        Gauge(label: MetricNames.leaderEpoch).record(Int64(bitPattern: term.epoch))
    }
}

extension Leadership {
    /// For a service used alone (tests, tools): always the leader of term 0.
    public static var sole: Leadership {
        let l = Leadership()
        l.lead(epoch: 0)
        return l
    }
}
