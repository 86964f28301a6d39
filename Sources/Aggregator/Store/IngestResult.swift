/// What one `FleetStore.commit` wrote, returned only after the transaction committed.
///
/// `committedSeqs` is what ingest acknowledges to each agent (`EventsAck`). It holds every event seq of
/// the batch, the newly inserted ones and the duplicates: a duplicate is already stored, and until it is
/// acknowledged the agent would keep resending it from its spool.
public struct IngestResult: Sendable, Equatable {
    /// Per host id, the event seqs now in the database, in batch order.
    public var committedSeqs: [String: [UInt64]] = [:]
    /// Reports whose contents became the host's latest state.
    public var reportsStored = 0
    /// Reports not newer (by `cycleStartedAt`) than the host's stored one: they refresh `lastSeen` only.
    public var reportsOutdated = 0
    public var eventsInserted = 0
    public var eventsDuplicate = 0
    /// Pull events the reporting agents' spools dropped since their previous stored reports.
    public var eventsDroppedByAgents = 0

    /// Newly stored events per (result, class): what `regwatch_pulls_total` counts, resends excluded.
    public var insertedByOutcome: [OutcomeKey: Int] = [:]

    public struct OutcomeKey: Hashable, Sendable {
        public var result: String
        public var errorClass: String
    }

    public init() {}
}
