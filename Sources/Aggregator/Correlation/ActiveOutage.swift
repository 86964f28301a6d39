import Foundation

/// An open outage as the engine tracks it, and as the aggregator persists it so that a restart resumes
/// the same outages (no second `opened`, no lost recovery hold).
public struct ActiveOutage: Codable, Sendable, Equatable {
    /// The latest candidate seen for this outage (its size and evidence as of `lastSeenAt`).
    public var candidate: OutageCandidate
    /// The first window of the streak that opened it.
    public var startedAt: Date
    /// The evaluation at which it opened.
    public var openedAt: Date
    /// The last evaluation that found it.
    public var lastSeenAt: Date
    /// Set while it is absent: the first evaluation of the current absence. Reset when it reappears.
    public var absentSince: Date?

    public init(candidate: OutageCandidate, startedAt: Date, openedAt: Date? = nil, lastSeenAt: Date? = nil, absentSince: Date? = nil) {
        self.candidate = candidate
        self.startedAt = startedAt
        self.openedAt = openedAt ?? startedAt
        self.lastSeenAt = lastSeenAt ?? openedAt ?? startedAt
        self.absentSince = absentSince
    }

    public var key: OutageKey { candidate.key }
}
