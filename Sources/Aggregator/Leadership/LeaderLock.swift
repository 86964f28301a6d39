/// The lock whose holder leads: exactly one aggregator of those sharing a database holds it.
///
/// Both calls block briefly (a round trip) and never throw: an error means "not held", which is the
/// safe answer for a leader (it stops planning) and for a candidate (it tries again next check).
public protocol LeaderLock: Sendable {
    /// Takes the lock if nobody holds it; true when this process holds it now.
    func acquire() -> Bool
    /// Whether this process still holds the lock (its session is alive); false also when unreachable.
    func stillHeld() -> Bool
    /// Lets the lock go (a shutdown, or a leader that gave up).
    func release()
}

/// One aggregator on an SQLite file is the only one there can be: it always leads.
public struct SoleLeaderLock: LeaderLock {
    public init() {}
    public func acquire() -> Bool { true }
    public func stillHeld() -> Bool { true }
    public func release() {}
}
