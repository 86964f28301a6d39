/// The agent's pull-event spool as of a report: what waits for the aggregator, and what a full spool
/// cost. Sent in every report so a host losing pull events shows up before anyone misses them.
public struct SpoolStatus: Codable, Sendable, Hashable {
    /// Events written and not yet acknowledged.
    public var pending: Int
    /// Events dropped (oldest first) because the spool reached its byte bound, since the agent started.
    public var dropped: Int

    public init(pending: Int, dropped: Int) {
        self.pending = pending
        self.dropped = dropped
    }
}
